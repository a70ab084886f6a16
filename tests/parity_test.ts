/**
 * Step-by-step parity with PyTorch (tools/parity.ts) on small sizes: every
 * network starts in both frameworks from the same weights and trains on the
 * same minibatches of the real photos; losses, weights and batch-norm
 * statistics must stay within the tolerances, on each wasm configuration
 * (oneDNN, OpenBLAS only, neither) against the same PyTorch runs. It needs Python with torch: CI
 * installs it (`.ci/run`) and sets SEGMENT_REQUIRE_PYTORCH=1, so there the
 * test fails when torch is missing; elsewhere it is left out with the reason.
 * unet runs at its smallest input, 188, with minibatches of one image (in
 * float64 a minibatch of four costs tens of seconds per iteration); `deno
 * task parity` checks it at its protocol.
 */
import * as tf from "@tensorflow/tfjs";
import { assert, assertEquals, assertRejects } from "../lib/assert.ts";
import { UserError } from "../lib/errors.ts";
import { setupBackend } from "../engine/mod.ts";
import { type Dataset, loadDataset } from "../lib/dataset.ts";
import { requireImori } from "./imori.ts";
import type { ModelName } from "../tools/networks.ts";
import {
  checkParity,
  formatParity,
  MEASURES,
  type ParityOptions,
  type ParityReference,
  type ParityResult,
  pytorchReference,
  run,
  TOLERANCES,
} from "../tools/parity.ts";
import { findPyTorch, pytorchLayers, runPyTorch } from "../tools/pytorch.ts";
import { Mynet as transposeconvNet } from "../exercises/transposeconv.ts";
import { CLASSES } from "../exercises/semaseg_dataset.ts";
import { BINARY } from "../exercises/bin_dataset.ts";

const required = Deno.env.get("SEGMENT_REQUIRE_PYTORCH") === "1";
const found = await findPyTorch().then(() => true, () => false);
const ignore = !found && !required;
const MODELS: ModelName[] = [
  "bin",
  "semaseg",
  "nearest",
  "transposeconv",
  "concat",
  "unetlike",
  "segnet",
];

/**
 * The wasm configurations parity is checked on: what learners get with
 * oneDNN, with OpenBLAS only, and with neither (most machines, and the page).
 */
const CONFIGURATIONS = [
  { label: "wasm+onednn", options: { blas: true, dnnl: true } },
  { label: "wasm+openblas", options: { blas: true, dnnl: false } },
  { label: "wasm", options: { blas: false, dnnl: false } },
] as const;

/**
 * The seed of each network's parity run: 0, except SegNet's. SegNet routes
 * its decoder by each pooling window's maximum, a discontinuous function of
 * the weights: at seed 0 and 32 px one window of its third pooling holds two
 * values 6.4e-6 apart (2.4e-6 relative; 4 images x 4 x 4 x 256 windows), and
 * pure wasm's forward pass, 1.3e-5 from the cpu backend's there (oneDNN and
 * OpenBLAS are as far from it elsewhere), takes the other cell: its first
 * loss is then 3.3e-4 from PyTorch's instead of 1e-7. A discontinuity of the
 * network, not an error of a kernel; at seeds 1-5 the first loss of every
 * configuration is within 6.1e-6 of PyTorch float64's (measured with each).
 */
function seedOf(name: ModelName): number {
  return name === "segnet" ? 1 : 0;
}

/** PyTorch's runs by network, made by the first configuration and reused by the others. */
const references = new Map<string, ParityReference>();

async function referenceFor(
  name: ModelName,
  train: Dataset,
  options: ParityOptions,
): Promise<ParityReference> {
  const key = `${name} ${options.size} ${options.batchSize} ${options.iters} ${options.seed}`;
  if (!references.has(key)) references.set(key, await pytorchReference(name, train, options));
  return references.get(key)!;
}

async function setupConfiguration(configuration: (typeof CONFIGURATIONS)[number]): Promise<void> {
  const label = await setupBackend("wasm", { quiet: true, ...configuration.options });
  // CI installs oneDNN and OpenBLAS: a configuration that silently became another is a failure.
  assertEquals(label, configuration.label);
}

for (const configuration of CONFIGURATIONS) {
  Deno.test({
    name:
      `checkParity() finds every network within tolerance of PyTorch, step by step, on ${configuration.label}`,
    ignore,
    async fn() {
      await findPyTorch(); // throws the install hint when required and missing
      await setupConfiguration(configuration);
      const dir = await requireImori();
      const size = 32;
      const sets = {
        binary: await loadDataset(dir, { split: "train", size, mode: BINARY, flips: true }),
        classes: await loadDataset(dir, { split: "train", size, mode: CLASSES, flips: true }),
      };
      try {
        for (const name of MODELS) {
          const train = sets[name === "bin" ? "binary" : "classes"];
          const options = { size, batchSize: 4, iters: 5, threads: 1, seed: seedOf(name) };
          const reference = await referenceFor(name, train, options);
          const result = await checkParity(name, train, { ...options, reference });
          assertEquals(result.losses.ours.length, 5);
          assertEquals(result.checks.map((check) => check.iteration), [3, 5]);
          assert(result.checks[0]!.ours.length > 0);
          assertEquals(result.failures, [], `${configuration.label}: ${formatParity(result)}`);
          assert(result.errors.ours.firstLoss <= TOLERANCES.floor.firstLoss, name);
        }
      } finally {
        tf.dispose([
          sets.binary.images,
          sets.binary.masks,
          sets.classes.images,
          sets.classes.masks,
        ]);
      }
    },
  });

  Deno.test({
    name:
      `checkParity() finds unet within tolerance of PyTorch at 188, one image per minibatch, on ${configuration.label}`,
    ignore,
    async fn() {
      await findPyTorch(); // throws the install hint when required and missing
      await setupConfiguration(configuration);
      const dir = await requireImori();
      const size = 188;
      const train = await loadDataset(dir, { split: "train", size, mode: CLASSES, flips: true });
      try {
        const options = { size, batchSize: 1, iters: 5, threads: 1 };
        const reference = await referenceFor("unet", train, options);
        const result = await checkParity("unet", train, { ...options, reference });
        assertEquals(result.losses.ours.length, 5);
        assertEquals(result.failures, [], `${configuration.label}: ${formatParity(result)}`);
        assert(result.errors.ours.firstLoss <= TOLERANCES.floor.firstLoss);
      } finally {
        tf.dispose([train.images, train.masks]);
      }
    },
  });
}

Deno.test("checkParity() refuses a PyTorch reference run for another protocol", async () => {
  await setupBackend("cpu", { quiet: true });
  const images = tf.zeros([4, 16, 16, 3]) as tf.Tensor4D;
  const masks = tf.zeros([4, 16, 16], "int32") as tf.Tensor3D;
  const train = { images, masks } as unknown as Dataset;
  const other = JSON.stringify({
    name: "bin",
    size: 16,
    batchSize: 4,
    iters: 2,
    lr: 0.01,
    seed: 0,
  });
  const reference = { protocol: other, initial: [], exact: {}, torch32: {} } as never;
  try {
    await assertRejects(
      () => checkParity("bin", train, { size: 16, iters: 2, seed: 1, reference }),
      /The PyTorch reference was run for .*"seed":0.*, not .*"seed":1/,
    );
  } finally {
    tf.dispose([images, masks]);
  }
});

Deno.test({
  name:
    "a tfjs transposed-conv kernel goes to PyTorch without a flip: a flipped one changes the loss",
  ignore,
  async fn() {
    await setupBackend("wasm");
    const dir = await requireImori();
    const size = 16;
    const train = await loadDataset(dir, { split: "train", size, mode: CLASSES, flips: true });
    const model = transposeconvNet(size, { seed: 3 });
    try {
      const layers = pytorchLayers(model);
      const flipped = layers.map((layer) => {
        if (layer.kind !== "convT") return layer;
        const [inC, outC, height, width] = layer.shapes[0]! as [number, number, number, number];
        const kernel = tf.tidy(() =>
          tf.reverse(tf.tensor4d(layer.values[0]!, [inC, outC, height, width]), [2, 3])
        );
        const values = [kernel.dataSync() as Float32Array, layer.values[1]!];
        kernel.dispose();
        return { ...layer, values };
      });
      const firstLoss = async (initWeights: typeof layers) =>
        (await runPyTorch({
          model: "transposeconv",
          classes: 3,
          size,
          train,
          iters: 1,
          batchSize: 4,
          lr: 0.01,
          momentum: 0.9,
          seed: 3,
          threads: 1,
          bnStats: "moving",
          initWeights,
          float64: true,
        })).losses[0]!;
      const straight = await firstLoss(layers);
      const wrong = await firstLoss(flipped);
      const reference = await checkParity("transposeconv", train, {
        size,
        batchSize: 4,
        iters: 1,
        seed: 3,
        threads: 1,
      });
      assertEquals(reference.failures, [], formatParity(reference));
      assert(Math.abs(straight - reference.losses.pytorch64[0]!) < 1e-5 * straight);
      assert(
        Math.abs(wrong - straight) > 1e-4 * straight,
        `a flipped kernel gave loss ${wrong}, the same as ${straight}`,
      );
    } finally {
      model.dispose();
      tf.dispose([train.images, train.masks]);
    }
  },
});

Deno.test({
  name: "deno task parity prints each network and writes the results as JSON",
  ignore,
  async fn() {
    const dir = await requireImori();
    const root = await Deno.makeTempDir({ prefix: "parity_test_" });
    try {
      const json = `${root}/out/parity.json`;
      const results = await run([
        "--models",
        "bin,nearest",
        "--iters",
        "4",
        "--size",
        "16",
        "--batch-size",
        "2",
        "--data",
        dir,
        "--backend",
        "wasm",
        "--torch-threads",
        "1",
        "--json",
        json,
      ]);
      const written = JSON.parse(await Deno.readTextFile(json)) as ParityResult[];
      assertEquals(written, results);
      assertEquals(written.map((result) => [result.model, result.size, result.batch]), [
        ["bin", 16, 2],
        ["nearest", 16, 2],
      ]);
      for (const result of written) {
        assertEquals(Object.keys(result.errors.ours), [...MEASURES]);
        assertEquals(result.losses.pytorch64.length, 4);
        assertEquals(result.failures, [], formatParity(result));
      }
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test("deno task parity refuses an unknown model before looking for PyTorch", async () => {
  await assertRejects(
    () => run(["--models", "bin,vgg"]),
    (error: Error) => error instanceof UserError && error.message.includes('Unknown model "vgg"'),
  );
});
