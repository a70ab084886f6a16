/**
 * Backend selection: names, the one-line announcement, refusals that say what
 * to install, OpenBLAS and oneDNN on and off, and telling a software GPU from a real one.
 * Every network's training step on each backend is checked in the project's
 * `tests/networks_backend_test.ts`.
 */
import * as tf from "@tensorflow/tfjs";
import { assert, assertEquals, assertRejects } from "./assert.ts";
import { BACKEND_NAMES, isSoftwareAdapter, setupBackend } from "./backend.ts";
import { openBlas } from "./blas.ts";
import { openDnnl } from "./dnnl.ts";
import { BackendError } from "./errors.ts";

/** Runs `f` and returns what it printed with console.log. */
async function printed(f: () => Promise<unknown>): Promise<string[]> {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...args: unknown[]) => lines.push(args.join(" "));
  try {
    await f();
  } finally {
    console.log = log;
  }
  return lines;
}

Deno.test("BACKEND_NAMES lists auto first and every backend of --backend", () => {
  assertEquals(BACKEND_NAMES, ["auto", "tensorflow", "webgpu", "wasm", "cpu"]);
});

Deno.test("setupBackend() activates cpu and says so in one line", async () => {
  const lines = await printed(async () => assertEquals(await setupBackend("cpu"), "cpu"));
  assertEquals(tf.getBackend(), "cpu");
  assertEquals(lines.length, 1);
  assert(lines[0]!.startsWith("backend: cpu"), String(lines[0]));
});

Deno.test({
  name: "setupBackend() with auto picks a working backend and says why others were skipped",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    let name = "";
    const lines = await printed(async () => {
      name = await setupBackend("auto");
    });
    assertEquals(lines.length, 1);
    assert(lines[0]!.startsWith(`backend: ${name}`), String(lines[0]));
    assertEquals(tf.getBackend(), name.split("+")[0]);
    if (name !== "tensorflow") {
      assert(lines[0]!.includes("skipped tensorflow ("), String(lines[0]));
    }
    if (name.startsWith("wasm")) {
      assert(
        /webgpu \((no GPU adapter|software adapter only|this Deno has no WebGPU)/.test(lines[0]!),
        String(lines[0]),
      );
    }
    await setupBackend("cpu", { quiet: true });
  },
});

Deno.test("setupBackend() refuses tensorflow when tfjs-node is not installed, saying how to install it", async () => {
  try {
    import.meta.resolve("@tensorflow/tfjs-node");
    return; // installed here: nothing to refuse
  } catch {
    // not in the import map: expected
  }
  await assertRejects(
    () => setupBackend("tensorflow", { quiet: true }),
    (error: Error) => {
      assert(error instanceof BackendError);
      assert(error.message.includes("not installed"), error.message);
      assert(error.message.includes("deno install --allow-scripts"), error.message);
      return true;
    },
  );
});

Deno.test("setupBackend() refuses an unknown backend name", async () => {
  await assertRejects(
    () => setupBackend("tpu" as never, { quiet: true }),
    BackendError,
  );
});

Deno.test("setupBackend() uses OpenBLAS for wasm unless SEGMENT_NO_BLAS is set", async () => {
  const blas = openBlas();
  const previous = Deno.env.get("SEGMENT_NO_BLAS");
  try {
    Deno.env.delete("SEGMENT_NO_BLAS");
    const expected = typeof blas === "string" ? "wasm" : "wasm+openblas";
    assertEquals(await setupBackend("wasm", { quiet: true, dnnl: false }), expected);
    Deno.env.set("SEGMENT_NO_BLAS", "1");
    assertEquals(await setupBackend("wasm", { quiet: true, dnnl: false }), "wasm");
  } finally {
    if (previous === undefined) Deno.env.delete("SEGMENT_NO_BLAS");
    else Deno.env.set("SEGMENT_NO_BLAS", previous);
    if (typeof blas !== "string") blas.close();
    await setupBackend("cpu", { quiet: true });
  }
});

Deno.test("setupBackend() runs wasm's convolutions on oneDNN unless SEGMENT_NO_DNNL is set", async () => {
  const dnnl = openDnnl();
  const previous = Deno.env.get("SEGMENT_NO_DNNL");
  try {
    Deno.env.delete("SEGMENT_NO_DNNL");
    const lines = await printed(() => setupBackend("wasm"));
    if (typeof dnnl === "string") {
      assert(!lines[0]!.startsWith("backend: wasm+onednn"), String(lines[0]));
      return;
    }
    assert(lines[0]!.startsWith("backend: wasm+onednn (oneDNN 2."), String(lines[0]));
    assertEquals(
      await setupBackend("wasm", { quiet: true, blas: false, dnnl: true }),
      "wasm+onednn",
    );
    assertEquals(await setupBackend("wasm", { quiet: true, blas: false }), "wasm");
    Deno.env.set("SEGMENT_NO_DNNL", "1");
    assert(!(await setupBackend("wasm", { quiet: true })).endsWith("onednn"));
  } finally {
    if (previous === undefined) Deno.env.delete("SEGMENT_NO_DNNL");
    else Deno.env.set("SEGMENT_NO_DNNL", previous);
    if (typeof dnnl !== "string") dnnl.close();
    await setupBackend("cpu", { quiet: true });
  }
});

Deno.test("isSoftwareAdapter() tells llvmpipe and SwiftShader from a GPU", () => {
  assert(isSoftwareAdapter({ info: { description: "llvmpipe (LLVM 15.0.6, 256 bits)" } }));
  assert(isSoftwareAdapter({ info: { description: "Google SwiftShader" } }));
  assert(isSoftwareAdapter({ info: { description: "", isFallbackAdapter: true } }));
  assert(!isSoftwareAdapter({ info: { description: "AMD Radeon RX 7900 XTX" } }));
});

Deno.test("the wasm backend's heap running out past 4 GB is a BackendError that says what to do", async () => {
  // In a process of its own: the wasm module's allocator is not used again after it fails.
  const script = `
    import * as tf from "@tensorflow/tfjs";
    import { setupBackend } from "${new URL("./backend.ts", import.meta.url)}";
    await setupBackend("wasm", { quiet: true });
    const kept = [];
    try {
      for (let i = 0; i < 64; i++) kept.push(tf.zeros([64 * 2 ** 20])); // 256 MB each
      console.log("no error");
    } catch (error) {
      console.log(error.name + ": " + error.message);
    }
  `;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--config", new URL("../deno.json", import.meta.url).pathname, script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(output.stdout);
  assert(
    /^UserError: Out of memory: a tensor of 0\.3 GB \[67108864\] did not fit .*--batch-size or --size\.$/m
      .test(text),
    `${text}\n${new TextDecoder().decode(output.stderr)}`,
  );
});

Deno.test("setupBackend() refuses a SEGMENT_THREADS that is not a thread count, naming it", async () => {
  const previous = Deno.env.get("SEGMENT_THREADS");
  try {
    for (const value of ["abc", "0", "-1", "1.5"]) {
      Deno.env.set("SEGMENT_THREADS", value);
      await assertRejects(
        () => setupBackend("cpu", { quiet: true }),
        (error: Error) =>
          error instanceof BackendError &&
          error.message.startsWith(`SEGMENT_THREADS=${value} is not a thread count`),
      );
    }
    // A count given in the options wins over the environment.
    assertEquals(await setupBackend("cpu", { quiet: true, threads: 1 }), "cpu");
  } finally {
    if (previous === undefined) Deno.env.delete("SEGMENT_THREADS");
    else Deno.env.set("SEGMENT_THREADS", previous);
  }
});
