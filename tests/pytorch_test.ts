/**
 * The PyTorch reference of `deno task bench --pytorch` mirrors the project's
 * networks: same trainable parameter count, same output size, and it trains
 * on the data and minibatches it is given. It needs Python with torch: CI
 * installs it (`.ci/run`) and sets SEGMENT_REQUIRE_PYTORCH=1, so there the
 * test fails when torch is missing; elsewhere it is left out with the reason.
 */
import * as tf from "@tensorflow/tfjs";
import { assert, assertEquals } from "../lib/assert.ts";
import { setupBackend } from "../engine/mod.ts";
import { loadDataset } from "../lib/dataset.ts";
import { buildModel, type ModelName, outputSize } from "../tools/networks.ts";
import { join } from "../lib/path.ts";
import { writeSyntheticDataset } from "../lib/synthetic_files.ts";
import { findPyTorch, runPyTorch } from "../tools/pytorch.ts";
import { BINARY } from "../exercises/bin_dataset.ts";
import { CLASSES } from "../exercises/semaseg_dataset.ts";

const required = Deno.env.get("SEGMENT_REQUIRE_PYTORCH") === "1";
const found = await findPyTorch().then(() => true, () => false);
const MODELS: ModelName[] = [
  "bin",
  "semaseg",
  "nearest",
  "transposeconv",
  "concat",
  "unet",
  "unetlike",
  "segnet",
];

Deno.test({
  name: "the PyTorch reference mirrors every network and trains on the given minibatches",
  ignore: !found && !required,
  async fn() {
    await findPyTorch(); // throws the install hint when required and missing
    await setupBackend("wasm");
    const root = await Deno.makeTempDir({ prefix: "pytorch_test_" });
    try {
      await writeSyntheticDataset(join(root, "data"), { trainPerClass: 1, testPerClass: 1 });
      for (const name of MODELS) {
        const mode = name === "bin" ? BINARY : CLASSES;
        const size = name === "unet" ? 188 : 32; // unet's smallest input (output 4)
        const train = await loadDataset(join(root, "data"), {
          split: "train",
          size,
          mode,
          flips: true,
        });
        const test = await loadDataset(join(root, "data"), { split: "test", size, mode });
        const model = buildModel(name, { size });
        const run = await runPyTorch({
          model: name,
          classes: name === "bin" ? 1 : 3,
          size,
          train,
          testImages: test.images,
          iters: 6,
          batchSize: 2,
          lr: 0.01,
          momentum: 0.9,
          seed: 0,
          threads: 1,
          bnStats: name === "segnet" ? "moving" : "recompute",
        });
        const trainable = model.trainableWeights
          .reduce((sum, weight) => sum + weight.shape.reduce((a: number, b) => a * (b ?? 1), 1), 0);
        assertEquals(run.params, trainable, `${name}: PyTorch's parameter count`);
        const out = outputSize(name, size);
        assertEquals(run.prediction!.shape, [test.images.shape[0], out, out], name);
        assertEquals(run.losses.length, 6);
        assertEquals(run.iterMs.length, 6);
        assert(run.peakRssMb > 10, `${name}: peak RSS ${run.peakRssMb} MiB`);
        assert(run.losses.every(Number.isFinite), `${name}: losses ${run.losses}`);
        const classes = name === "bin" ? 2 : 3;
        const values = await run.prediction!.data();
        assert(values.every((value) => value >= 0 && value < classes), name);
        model.dispose();
        tf.dispose([run.prediction!, train.images, train.masks, test.images, test.masks]);
      }
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
