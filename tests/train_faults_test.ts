/**
 * Training that would go on silently wrong (issue 11, items 2, 5 and 6):
 * divergence, masks that are all background, and a batch-norm layer that
 * would see one value per channel. Each stops before harm, in one line.
 */
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-cpu";
import { assert, assertEquals, assertRejects, assertThrows } from "../lib/assert.ts";
import { loadCheckpoint, saveCheckpoint } from "../lib/checkpoint.ts";
import { buildModel } from "../tools/networks.ts";
import { join } from "../lib/path.ts";
import { assertBatchNormCanTrain, trainModel, WEIGHT_CHECK_EVERY } from "../lib/train.ts";
import { firstNonFiniteWeight } from "../lib/weights.ts";
import { crossEntropy } from "./lessons.ts";

await tf.setBackend("cpu");

/** Conv + BN + conv 1x1 + softmax at 8x8. */
function tinyModel(seed: number): tf.LayersModel {
  const input = tf.input({ shape: [8, 8, 3] });
  let x = tf.layers.conv2d({
    filters: 4,
    kernelSize: 3,
    padding: "same",
    activation: "relu",
    kernelInitializer: tf.initializers.glorotUniform({ seed }),
  }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization().apply(x) as tf.SymbolicTensor;
  x = tf.layers.conv2d({
    filters: 3,
    kernelSize: 1,
    kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }),
  }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.activation({ activation: "softmax" }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: x });
}

function tinyData(count: number) {
  return tf.tidy(() => {
    const masks = tf.randomUniformInt([count, 8, 8], 0, 3, 3) as tf.Tensor3D;
    const images = tf.randomUniform([count, 8, 8, 3], 0, 1, "float32", 4) as tf.Tensor4D;
    return { images, masks };
  });
}

/** Checks a rejection: a UserError of exactly one line equal to `message`. */
async function assertOneLine(promise: Promise<unknown>, message: string): Promise<void> {
  await assertRejects(() => promise, (error: Error) => {
    assertEquals(error.name, "UserError");
    assertEquals(error.message, message);
    assert(!error.message.includes("\n"), "one line");
    return true;
  });
}

Deno.test("trainModel() stops at the first non-finite loss; the checkpoint on disk stays the last good one", async () => {
  const dir = join(await Deno.makeTempDir({ prefix: "diverge_" }), "run");
  const model = tinyModel(1);
  const data = tinyData(4);
  const state = { model: "tiny", size: 8, classes: 3, optimizer: "sgd" };
  const seen: number[] = [];
  let message = "";
  await assertRejects(
    () =>
      trainModel(model, data, {
        loss: crossEntropy,
        iters: 50,
        lr: 1e6,
        progress: { quiet: true },
        onIteration: async (iteration, loss, optimizer) => {
          assert(Number.isFinite(loss), `onIteration never sees a non-finite loss (${loss})`);
          seen.push(iteration);
          await saveCheckpoint(dir, model, { ...state, iteration }, optimizer);
        },
      }),
    (error: Error) => {
      message = error.message;
      return error.name === "UserError";
    },
  );
  const lastGood = seen.at(-1)!;
  assert(lastGood >= 1 && lastGood < 50, `diverged after iteration ${lastGood}`);
  assert(
    [
      `Training diverged at iteration ${lastGood + 1}: the loss is NaN; lower the learning rate ` +
      "(--lr 1000000 now, try --lr 0.01, the tutorial's); any checkpoint saved before it is kept",
      `Training diverged at iteration ${lastGood + 1}: the loss is Infinity; lower the learning ` +
      "rate (--lr 1000000 now, try --lr 0.01, the tutorial's); any checkpoint saved before it is kept",
      // The step after the last good loss may already have made a weight infinite.
      `Cannot save checkpoint ${dir} at iteration ${lastGood + 1}: weight `,
    ].some((expected) => message.startsWith(expected)),
    message,
  );
  assert(!message.includes("\n"), "one line");
  assert((await firstNonFiniteWeight(model)) !== undefined, "the weights in memory did diverge");
  // The checkpoint on disk is the last one saved, with finite weights.
  const loaded = await loadCheckpoint(dir);
  assertEquals(loaded.state.iteration, lastGood);
  assertEquals(await firstNonFiniteWeight(loaded.model), undefined);
  tf.dispose(loaded.optimizerState!.map((weight) => weight.tensor));
  loaded.model.dispose();
  tf.dispose([data.images, data.masks]);
  model.dispose();
  await Deno.remove(join(dir, ".."), { recursive: true });
});

Deno.test("trainModel() names the iteration whose loss is NaN", async () => {
  const model = tinyModel(2);
  const data = tinyData(4);
  // NaN photos: the first loss is NaN.
  const nan = tf.fill([4, 8, 8, 3], NaN) as tf.Tensor4D;
  await assertOneLine(
    trainModel(model, { images: nan, masks: data.masks }, {
      loss: crossEntropy,
      iters: 10,
      lr: 0.03,
      progress: { quiet: true },
    }),
    "Training diverged at iteration 1: the loss is NaN; lower the learning rate (--lr 0.03 " +
      "now, try --lr 0.003); any checkpoint saved before it is kept",
  );
  tf.dispose([nan, data.images, data.masks]);
  model.dispose();
});

Deno.test("trainModel() stops within WEIGHT_CHECK_EVERY iterations of a weight turning non-finite while the loss stays finite", async () => {
  const model = tinyModel(3);
  const data = tinyData(4);
  // A batch norm's moving mean is not read in training, so the loss stays finite after it breaks:
  // as with a kernel that reads stale weights, only the weights show it.
  const movingMean = model.weights.find((weight) => weight.originalName.endsWith("moving_mean"))!;
  const seen: number[] = [];
  await assertOneLine(
    trainModel(model, data, {
      loss: crossEntropy,
      iters: 40,
      lr: 0.01,
      progress: { quiet: true },
      onIteration: (iteration) => {
        seen.push(iteration);
        if (iteration === 3) movingMean.write(tf.fill(movingMean.shape as number[], NaN));
      },
    }),
    `Training diverged at iteration ${WEIGHT_CHECK_EVERY}: weight ${movingMean.originalName} ` +
      "is not finite; lower the learning rate (--lr 0.01 now, try --lr 0.001); any checkpoint " +
      "saved before it is kept",
  );
  // onIteration (which saves checkpoints) never saw an iteration with the broken weight checked.
  assertEquals(seen.at(-1), WEIGHT_CHECK_EVERY - 1);
  tf.dispose([data.images, data.masks]);
  model.dispose();
});

Deno.test("trainModel() checks the weights of a run stopped between two checks", async () => {
  const model = tinyModel(3);
  const data = tinyData(4);
  const movingMean = model.weights.find((weight) => weight.originalName.endsWith("moving_mean"))!;
  const stop = new AbortController();
  await assertOneLine(
    trainModel(model, data, {
      loss: crossEntropy,
      iters: 40,
      lr: 0.01,
      progress: { quiet: true },
      signal: stop.signal,
      onIteration: (iteration) => {
        if (iteration === 3) movingMean.write(tf.fill(movingMean.shape as number[], NaN));
        if (iteration === 4) stop.abort(); // as Ctrl+C does, before the check at 10
      },
    }),
    `Training diverged by iteration 4: weight ${movingMean.originalName} is not finite; lower ` +
      "the learning rate (--lr 0.01 now, try --lr 0.001); any checkpoint saved before it is kept",
  );
  tf.dispose([data.images, data.masks]);
  model.dispose();
});

Deno.test("trainModel() refuses masks that are all background", async () => {
  const model = tinyModel(3);
  const data = tinyData(4);
  const background = tf.zerosLike(data.masks) as tf.Tensor3D;
  await assertOneLine(
    trainModel(model, { images: data.images, masks: background }, {
      loss: crossEntropy,
      progress: { quiet: true },
    }),
    "Cannot train: every pixel of the 4 training masks is background (class 0), so there is " +
      "nothing to learn; check the masks (a newt is painted akahara red (128, 0, 0) or madara " +
      "green (0, 128, 0), or stored as class index 1 or 2)",
  );
  tf.dispose([background, data.images, data.masks]);
  model.dispose();
});

Deno.test("trainModel() refuses a batch norm that would see one value per channel", async () => {
  const input = tf.input({ shape: [4, 4, 3] });
  let x = tf.layers.conv2d({ filters: 2, kernelSize: 1 }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.maxPooling2d({ poolSize: 4 }).apply(x) as tf.SymbolicTensor; // [batch, 1, 1, 2]
  x = tf.layers.batchNormalization({ name: "deepest_bn" }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.upSampling2d({ size: [4, 4] }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.activation({ activation: "sigmoid" }).apply(x) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: x });
  const images = tf.randomUniform([2, 4, 4, 3]) as tf.Tensor4D;
  const masks = tf.ones([2, 4, 4], "int32") as tf.Tensor3D;
  const before = model.getWeights().map((weight) => Array.from(weight.dataSync()));
  await assertOneLine(
    trainModel(model, { images, masks }, {
      loss: crossEntropy,
      batchSize: 1,
      iters: 3,
      progress: { quiet: true },
    }),
    "Cannot train at --batch-size 1: batch-norm layer deepest_bn would see one value per " +
      "channel (its input is 1x1 per image at input size 4x4), so in training it would output " +
      "a constant and save a variance of 0; use --batch-size 2 or more, or a larger --size",
  );
  assertEquals(
    model.getWeights().map((weight) => Array.from(weight.dataSync())),
    before,
    "refused before training",
  );
  const result = await trainModel(model, { images, masks }, {
    loss: crossEntropy,
    batchSize: 2,
    iters: 2,
    progress: { quiet: true },
  });
  assertEquals(result.losses.length, 2);
  result.optimizer.dispose();
  tf.dispose([images, masks]);
  model.dispose();
});

Deno.test("unetlike at --size 16 --batch-size 1 is refused before training; 32 or batch 2 is not", () => {
  const model = buildModel("unetlike", { size: 16 });
  assertThrows(
    () => assertBatchNormCanTrain(model, 1),
    Error,
    "would see one value per channel (its input is 1x1 per image at input size 16x16)",
  );
  assertBatchNormCanTrain(model, 2);
  model.dispose();
  const larger = buildModel("unetlike", { size: 32 });
  assertBatchNormCanTrain(larger, 1);
  larger.dispose();
});
