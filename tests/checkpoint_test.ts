import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-cpu";
import { assert, assertEquals, assertRejects } from "../lib/assert.ts";
import { loadCheckpoint, saveCheckpoint, type TrainingState } from "../lib/checkpoint.ts";
import { UserError } from "../lib/errors.ts";
import { join } from "../lib/path.ts";
import { trainModel } from "../lib/train.ts";
import { crossEntropy } from "./lessons.ts";

await tf.setBackend("cpu");

function tinyModel(seed: number): tf.LayersModel {
  const input = tf.input({ shape: [4, 4, 3] });
  let x = tf.layers.conv2d({
    filters: 3,
    kernelSize: 3,
    padding: "same",
    kernelInitializer: tf.initializers.glorotUniform({ seed }),
  }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization().apply(x) as tf.SymbolicTensor;
  x = tf.layers.activation({ activation: "softmax" }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: x });
}

const STATE: TrainingState = { iteration: 5, model: "tiny", size: 4, classes: 3, optimizer: "sgd" };

function maxDifference(first: tf.Tensor, second: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(first, second))).dataSync()[0]!);
}

Deno.test("saveCheckpoint() writes the standard tfjs files that load back the same model", async () => {
  const dir = await Deno.makeTempDir();
  const model = tinyModel(1);
  const images = tf.randomUniform([2, 4, 4, 3], 0, 1, "float32", 3) as tf.Tensor4D;
  const masks = tf.randomUniformInt([2, 4, 4], 0, 3, 4) as tf.Tensor3D;
  const result = await trainModel(model, { images, masks }, {
    loss: crossEntropy,
    iters: 5,
    progress: { quiet: true },
  });
  await saveCheckpoint(join(dir, "run"), model, STATE, result.optimizer);
  const names = [];
  for await (const entry of Deno.readDir(join(dir, "run"))) names.push(entry.name);
  assertEquals(names.sort(), [
    "model.json",
    "optimizer.bin",
    "optimizer.json",
    "training_state.json",
    "weights.bin",
  ]);
  const modelJson = JSON.parse(await Deno.readTextFile(join(dir, "run", "model.json")));
  assertEquals(modelJson.format, "layers-model");
  assertEquals(modelJson.weightsManifest[0].paths, ["weights.bin"]);

  const loaded = await loadCheckpoint(join(dir, "run"), { model: "tiny", size: 4 });
  assertEquals(loaded.state, STATE);
  const expected = model.predict(images) as tf.Tensor;
  const actual = loaded.model.predict(images) as tf.Tensor;
  assert(maxDifference(expected, actual) < 1e-6);
  // Optimizer state: the iteration count and one momentum per trainable weight.
  assertEquals(loaded.optimizerState!.length, 1 + model.trainableWeights.length);
  assertEquals(loaded.optimizerState![0]!.tensor.dataSync()[0], 5);
  const momentum = (await result.optimizer.getWeights())[1]!.tensor;
  assert(maxDifference(momentum, loaded.optimizerState![1]!.tensor) === 0);
  tf.dispose([expected, actual, images, masks, ...loaded.optimizerState!.map((w) => w.tensor)]);
  result.optimizer.dispose();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("saveCheckpoint() leaves the previous checkpoint when a save fails midway", async () => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "run");
  const first = tinyModel(1);
  await saveCheckpoint(path, first, STATE);
  const broken = tf.train.momentum(0.1, 0.9);
  broken.getWeights = () => Promise.reject(new Error("disk full"));
  await assertRejects(
    saveCheckpoint(path, tinyModel(2), { ...STATE, iteration: 9 }, broken),
    /disk full/,
  );
  const loaded = await loadCheckpoint(path);
  assertEquals(loaded.state.iteration, 5);
  const probe = tf.ones([1, 4, 4, 3]);
  assert(
    maxDifference(first.predict(probe) as tf.Tensor, loaded.model.predict(probe) as tf.Tensor) <
      1e-6,
  );
  const leftovers = [];
  for await (const entry of Deno.readDir(dir)) leftovers.push(entry.name);
  assertEquals(leftovers, ["run"]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("loadCheckpoint() recovers the previous checkpoint after a crash between renames", async () => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "run");
  await saveCheckpoint(path, tinyModel(1), STATE);
  await Deno.rename(path, `${path}.previous`); // the state a crash after the first rename leaves
  const loaded = await loadCheckpoint(path);
  assertEquals(loaded.path, `${path}.previous`);
  assertEquals(loaded.state.iteration, 5);
  await saveCheckpoint(path, tinyModel(1), { ...STATE, iteration: 6 });
  assertEquals((await loadCheckpoint(path)).state.iteration, 6);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("loadCheckpoint() names the command to run for a missing or mismatched checkpoint", async () => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "run");
  const command = "deno task semaseg_loss";
  await assertRejects(
    loadCheckpoint(path, { command }),
    (error: Error) =>
      error instanceof UserError &&
      error.message === `No checkpoint at ${path}: run \`${command}\` first to train one`,
  );
  await saveCheckpoint(path, tinyModel(1), STATE);
  await assertRejects(
    loadCheckpoint(path, { model: "semaseg", command }),
    (error: Error) =>
      error instanceof UserError &&
      error.message.includes("trained for network tiny, not semaseg") &&
      error.message.includes(command),
  );
  await assertRejects(
    loadCheckpoint(path, { model: "tiny", size: 64, command }),
    (error: Error) =>
      error instanceof UserError &&
      error.message.includes(
        `at input size 4, not 64: test with --size 4, or train one at 64 into a new folder ` +
          `with \`${command} --checkpoint <new folder> --size 64\``,
      ),
  );
  await Deno.remove(dir, { recursive: true });
});
