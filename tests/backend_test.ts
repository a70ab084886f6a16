/**
 * Backend selection, and every network's training step on wasm (with and
 * without OpenBLAS) against the cpu backend: same loss, same gradients.
 */
import * as tf from "@tensorflow/tfjs";
import { assert, assertEquals, assertRejects } from "../lib/assert.ts";
import { BACKEND_NAMES, isSoftwareAdapter, setupBackend } from "../lib/backend.ts";
import { openBlas } from "../lib/blas.ts";
import { UserError } from "../lib/errors.ts";
import { trainingLoss } from "../lib/train.ts";
import { buildModel, type ModelName } from "../lib/models.ts";

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
      assert(error instanceof UserError);
      assert(error.message.includes("not installed"), error.message);
      assert(error.message.includes("deno install --allow-scripts"), error.message);
      return true;
    },
  );
});

Deno.test("setupBackend() refuses an unknown backend name", async () => {
  await assertRejects(
    () => setupBackend("tpu" as never, { quiet: true }),
    UserError,
  );
});

Deno.test("setupBackend() uses OpenBLAS for wasm unless SEGMENT_NO_BLAS is set", async () => {
  const blas = openBlas();
  const previous = Deno.env.get("SEGMENT_NO_BLAS");
  try {
    Deno.env.delete("SEGMENT_NO_BLAS");
    const expected = typeof blas === "string" ? "wasm" : "wasm+openblas";
    assertEquals(await setupBackend("wasm", { quiet: true }), expected);
    Deno.env.set("SEGMENT_NO_BLAS", "1");
    assertEquals(await setupBackend("wasm", { quiet: true }), "wasm");
  } finally {
    if (previous === undefined) Deno.env.delete("SEGMENT_NO_BLAS");
    else Deno.env.set("SEGMENT_NO_BLAS", previous);
    if (typeof blas !== "string") blas.close();
    await setupBackend("cpu", { quiet: true });
  }
});

Deno.test("isSoftwareAdapter() tells llvmpipe and SwiftShader from a GPU", () => {
  assert(isSoftwareAdapter({ info: { description: "llvmpipe (LLVM 15.0.6, 256 bits)" } }));
  assert(isSoftwareAdapter({ info: { description: "Google SwiftShader" } }));
  assert(isSoftwareAdapter({ info: { description: "", isFallbackAdapter: true } }));
  assert(!isSoftwareAdapter({ info: { description: "AMD Radeon RX 7900 XTX" } }));
});

/** Loss and the gradient of every trainable weight for one training batch. */
async function lossAndGrads(name: ModelName, size: number, batch: number): Promise<Float32Array[]> {
  const model = buildModel(name, { size, seed: 3 });
  const classes = model.outputs[0]!.shape[3] as number;
  const images = tf.randomUniform([batch, size, size, 3], 0, 1, "float32", 5);
  const masks = tf.cast(
    tf.floor(tf.randomUniform([batch, size, size], 0, classes === 1 ? 2 : classes, "float32", 6)),
    "int32",
  ) as tf.Tensor3D;
  const before = tf.memory().numTensors;
  const loss = trainingLoss(model);
  const { value, grads } = tf.variableGrads(() => loss(images as tf.Tensor4D, masks));
  const names = Object.keys(grads); // creation order: layer names differ between builds
  const data = [await value.data() as Float32Array];
  for (const weight of names) data.push(await grads[weight]!.data() as Float32Array);
  tf.dispose([value, ...Object.values(grads)]);
  // The moving statistics of batch norm are replaced, not added.
  assertEquals(tf.memory().numTensors, before, "the training step leaked tensors");
  tf.dispose([images, masks]);
  model.dispose();
  return data;
}

/**
 * The L2 norm of `actual - expected` over the norm of `expected`, all arrays
 * taken as one vector. Per-element comparison is too strict for a whole
 * network: a ReLU input within float rounding of 0 can flip between backends
 * and move one channel's batch-norm gradient, while every kernel is exact.
 */
function relativeDistance(actual: Float32Array[], expected: Float32Array[]): number {
  let difference = 0;
  let norm = 0;
  for (const [index, wanted] of expected.entries()) {
    for (let i = 0; i < wanted.length; i++) {
      difference += (actual[index]![i]! - wanted[i]!) ** 2;
      norm += wanted[i]! ** 2;
    }
  }
  return Math.sqrt(difference / norm);
}

/**
 * Networks with the input size and batch they are checked at: small, as cpu is
 * the reference; unetlike's 1x1 bottleneck needs a batch of 4, as batch norm
 * over 2 values amplifies rounding differences.
 */
const NETWORKS: [ModelName, number, number][] = [
  ["bin", 8, 2],
  ["semaseg", 8, 2],
  ["nearest", 8, 2],
  ["transposeconv", 8, 2],
  ["concat", 8, 2],
  ["unetlike", 16, 4],
];

Deno.test("every network's training step on wasm, with and without OpenBLAS, matches the cpu backend", async (t) => {
  const variants = typeof openBlas() === "string" ? [false] : [true, false];
  if (variants.length === 1) {
    console.log("OpenBLAS is not installed (apt-get install libopenblas0-pthread): wasm only");
  }
  for (const [name, size, batch] of NETWORKS) {
    await t.step(`${name} at ${size}x${size}, batch ${batch}`, async () => {
      await setupBackend("cpu", { quiet: true });
      const expected = await lossAndGrads(name, size, batch);
      for (const blas of variants) {
        await setupBackend("wasm", { quiet: true, blas });
        const actual = await lossAndGrads(name, size, batch);
        assertEquals(actual.length, expected.length);
        const label = blas ? "wasm+openblas" : "wasm";
        const lossError = Math.abs(actual[0]![0]! - expected[0]![0]!) / expected[0]![0]!;
        assert(lossError < 1e-4, `${label}: loss differs from cpu by ${lossError}`);
        const gradError = relativeDistance(actual.slice(1), expected.slice(1));
        assert(gradError < 1e-2, `${label}: gradients differ from cpu by ${gradError}`);
      }
    });
  }
  await setupBackend("cpu", { quiet: true });
});

Deno.test({
  name: "trainModel() repeats its losses for a seed on the default wasm backend",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await setupBackend("wasm", { quiet: true });
    const { trainModel } = await import("../lib/train.ts");
    const images = tf.randomUniform([4, 16, 16, 3], 0, 1, "float32", 5) as tf.Tensor4D;
    const masks = tf.randomUniform([4, 16, 16], 0, 2, "int32", 6) as tf.Tensor3D;
    const losses = async (seed: number) => {
      const model = buildModel("bin", { size: 16, seed });
      const result = await trainModel(model, { images, masks }, {
        iters: 4,
        seed,
        progress: { quiet: true },
      });
      result.optimizer.dispose();
      model.dispose();
      return result.losses;
    };
    const first = await losses(0);
    assertEquals(await losses(0), first);
    assert((await losses(1)).join() !== first.join());
    tf.dispose([images, masks]);
  },
});
