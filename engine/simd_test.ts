/**
 * The engine's WebAssembly SIMD kernels: the committed `simd/kernels.wasm` and
 * `simd/kernels_shared.wasm` are what `deno task build_simd` makes from
 * `simd/kernels.c` (skipped, saying
 * why, without clang-14 and wasm-ld-14; CI installs them), it imports only the
 * backend's memory and writes nothing of its own there, and the pure wasm
 * path runs on it unless switched off. Its kernels are checked against the
 * cpu backend, forward and backward, in `kernels_test.ts`.
 */
import * as tf from "@tensorflow/tfjs";
import { assert, assertEquals } from "./assert.ts";
import { setupBackend } from "./backend.ts";
import { buildSimd, missingSimdTools } from "./simd/build.ts";

const here = new URL("./simd/", import.meta.url).pathname;

/** The ids of a wasm module's sections, in order. */
function sectionIds(bytes: Uint8Array): number[] {
  const ids: number[] = [];
  let at = 8;
  while (at < bytes.length) {
    const id = bytes[at++]!;
    let size = 0;
    for (let shift = 0;; shift += 7) {
      const byte = bytes[at++]!;
      size |= (byte & 0x7f) << shift;
      if (byte < 0x80) break;
    }
    ids.push(id);
    at += size;
  }
  return ids;
}

Deno.test("kernels.wasm is what deno task build_simd makes from kernels.c", async () => {
  const missing = await missingSimdTools();
  if (missing !== null) {
    console.log(`skipped: ${missing}`);
    return;
  }
  const output = await Deno.makeTempFile({ suffix: ".wasm" });
  try {
    for (const shared of [false, true]) {
      const file = shared ? "kernels_shared.wasm" : "kernels.wasm";
      const rebuilt = await buildSimd(`${here}kernels.c`, output, { shared });
      const committed = await Deno.readFile(`${here}${file}`);
      assert(
        rebuilt.length === committed.length && rebuilt.every((byte, i) => byte === committed[i]),
        `engine/simd/${file} differs from a build of kernels.c: run \`deno task build_simd\``,
      );
    }
  } finally {
    await Deno.remove(output);
  }
});

Deno.test("kernels.wasm imports only the backend's memory and has no data of its own", async () => {
  const bytes = await Deno.readFile(`${here}kernels.wasm`);
  const module = await WebAssembly.compile(bytes);
  assertEquals(WebAssembly.Module.imports(module), [
    { module: "env", name: "memory", kind: "memory" },
  ]);
  // The shared flavour takes a shared memory only (and the unshared one an unshared only).
  const shared = await WebAssembly.compile(await Deno.readFile(`${here}kernels_shared.wasm`));
  const memory = new WebAssembly.Memory({ initial: 2, maximum: 4, shared: true });
  new WebAssembly.Instance(shared, { env: { memory } });
  assertEquals(
    WebAssembly.Module.exports(shared).map((entry) => entry.name),
    WebAssembly.Module.exports(module).map((entry) => entry.name),
  );
  assertEquals(
    WebAssembly.Module.exports(module).map((entry) => entry.name).sort(),
    [
      "batch_norm_backward",
      "batch_norm_training",
      "column_sums",
      "conv_backward_filter",
      "conv_backward_input",
      "conv_forward",
      "relu_grad",
      "strided_copy",
      "transpose_taps",
      "winograd_conv",
      "winograd_filter",
      "winograd_filter_grad",
      "winograd_filter_grad_finish",
    ],
  );
  // Section 11 is data, 12 data count: initialised memory would overwrite the backend's heap.
  const ids = sectionIds(bytes);
  assert(!ids.includes(11) && !ids.includes(12), `sections ${ids}`);
});

Deno.test("setupBackend() runs pure wasm on the SIMD kernels unless SEGMENT_NO_SIMD is set", async () => {
  const previous = Deno.env.get("SEGMENT_NO_SIMD");
  const lines: string[] = [];
  const log = console.log;
  console.log = (...args: unknown[]) => lines.push(args.join(" "));
  try {
    Deno.env.delete("SEGMENT_NO_SIMD");
    await setupBackend("wasm", { blas: false });
    Deno.env.set("SEGMENT_NO_SIMD", "1");
    await setupBackend("wasm", { blas: false });
  } finally {
    console.log = log;
    if (previous === undefined) Deno.env.delete("SEGMENT_NO_SIMD");
    else Deno.env.set("SEGMENT_NO_SIMD", previous);
    await setupBackend("cpu", { quiet: true });
  }
  assert(lines[0]!.includes("on the engine's wasm SIMD kernels"), String(lines[0]));
  assert(lines[1]!.includes("without the SIMD kernels: SEGMENT_NO_SIMD is set"), String(lines[1]));
  assertEquals(tf.getBackend(), "cpu");
});
