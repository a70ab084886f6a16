/**
 * Checkpoints cut short, damaged or of another run (issue 11, item 4): each
 * is refused in one line naming the file, the bytes it has and needs, and the
 * command that rewrites it; nothing on disk is changed by the refusal.
 */
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-cpu";
import { assert, assertEquals, assertRejects } from "../lib/assert.ts";
import { loadCheckpoint, saveCheckpoint, type TrainingState } from "../lib/checkpoint.ts";
import { join } from "../lib/path.ts";
import { trainModel } from "../lib/train.ts";
import { crossEntropy } from "./lessons.ts";

await tf.setBackend("cpu");

const COMMAND = "deno task nearest";
const STATE: TrainingState = {
  iteration: 5,
  model: "tiny",
  size: 8,
  classes: 3,
  optimizer: "sgd",
  settings: { lr: 0.01, loss: "ce" },
};

/** Conv (3x3x3x4 + 4) + BN (4 x 4) + conv 1x1 (4x3 + 3): 108 + 4 + 16 + 12 + 3 = 143 floats. */
function tinyModel(): tf.LayersModel {
  const input = tf.input({ shape: [8, 8, 3] });
  let x = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: "same" }).apply(
    input,
  ) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization().apply(x) as tf.SymbolicTensor;
  x = tf.layers.conv2d({ filters: 3, kernelSize: 1 }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.activation({ activation: "softmax" }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: x });
}

/** A checkpoint with optimizer state, after 5 iterations; returns its folder. */
async function savedCheckpoint(): Promise<string> {
  const dir = join(await Deno.makeTempDir({ prefix: "checkpoint_faults_" }), "nearest");
  const model = tinyModel();
  const images = tf.randomUniform([2, 8, 8, 3], 0, 1, "float32", 3) as tf.Tensor4D;
  const masks = tf.randomUniformInt([2, 8, 8], 0, 3, 4) as tf.Tensor3D;
  const result = await trainModel(model, { images, masks }, {
    loss: crossEntropy,
    iters: 5,
    progress: { quiet: true },
  });
  await saveCheckpoint(dir, model, STATE, result.optimizer);
  result.optimizer.dispose();
  tf.dispose([images, masks]);
  model.dispose();
  return dir;
}

/** The checkpoint folder's files and their bytes, to show that a refusal changes nothing. */
async function snapshot(dir: string): Promise<Record<string, number[]>> {
  const files: Record<string, number[]> = {};
  for await (const entry of Deno.readDir(dir)) {
    files[entry.name] = Array.from(await Deno.readFile(join(dir, entry.name)));
  }
  return files;
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

async function cutShort(path: string, bytes: number): Promise<void> {
  await Deno.writeFile(path, (await Deno.readFile(path)).subarray(0, bytes));
}

Deno.test("loadCheckpoint() names a weights.bin cut short, with the bytes it has and needs", async () => {
  const dir = await savedCheckpoint();
  assertEquals((await Deno.stat(join(dir, "weights.bin"))).size, 143 * 4);
  await cutShort(join(dir, "weights.bin"), 300);
  const before = await snapshot(dir);
  const tensors = tf.memory().numTensors;
  await assertOneLine(
    loadCheckpoint(dir, { model: "tiny", size: 8, command: COMMAND }),
    `Checkpoint file ${dir}/weights.bin has 300 bytes but its model.json needs 572 (cut ` +
      `short); run \`${COMMAND} --overwrite\` to train a new one in its place`,
  );
  // Too long is refused too.
  await Deno.writeFile(join(dir, "weights.bin"), new Uint8Array(600));
  await assertOneLine(
    loadCheckpoint(dir, { command: COMMAND }),
    `Checkpoint file ${dir}/weights.bin has 600 bytes but its model.json needs 572 (too ` +
      `long); run \`${COMMAND} --overwrite\` to train a new one in its place`,
  );
  await Deno.remove(join(dir, "weights.bin"));
  await assertOneLine(
    loadCheckpoint(dir, { command: COMMAND }),
    `Checkpoint file ${dir}/weights.bin is missing; run \`${COMMAND} --overwrite\` to train a new one in its place`,
  );
  delete before["weights.bin"];
  assertEquals(await snapshot(dir), before, "the refusals change nothing on disk");
  assertEquals(tf.memory().numTensors, tensors, "no tensors left behind");
  await Deno.remove(join(dir, ".."), { recursive: true });
});

Deno.test("loadCheckpoint() names an optimizer.bin cut short: refused to resume, a warning to test", async () => {
  const dir = await savedCheckpoint();
  // The iteration count and one momentum per trainable weight (143 - 8 moving statistics).
  assertEquals((await Deno.stat(join(dir, "optimizer.bin"))).size, 4 + 135 * 4);
  await cutShort(join(dir, "optimizer.bin"), 100);
  const tensors = tf.memory().numTensors;
  // Testing and segmenting need the network only: it loads, and one warning names the file.
  const warnings: string[] = [];
  const warn = console.warn;
  console.warn = (line: string) => warnings.push(line);
  try {
    const loaded = await loadCheckpoint(dir, { command: COMMAND });
    assertEquals(loaded.optimizerState, undefined);
    loaded.model.dispose();
  } finally {
    console.warn = warn;
  }
  assertEquals(warnings, [
    `warning: Checkpoint file ${dir}/optimizer.bin has 100 bytes but its optimizer.json needs ` +
    "544 (cut short); only --resume needs it, so the network is used without it",
  ]);
  await assertOneLine(
    loadCheckpoint(dir, { command: COMMAND, resume: true }),
    `Checkpoint file ${dir}/optimizer.bin has 100 bytes but its optimizer.json needs 544 (cut ` +
      `short); run \`${COMMAND} --overwrite\` to train a new one in its place`,
  );
  assertEquals(tf.memory().numTensors, tensors, "no tensors left behind");
  await Deno.remove(join(dir, ".."), { recursive: true });
});

Deno.test("loadCheckpoint() names a damaged model.json, optimizer.json or training_state.json", async () => {
  const dir = await savedCheckpoint();
  const text = await Deno.readTextFile(join(dir, "model.json"));
  const cut = text.slice(0, 200);
  await Deno.writeTextFile(join(dir, "model.json"), cut);
  let reason = "";
  try {
    JSON.parse(cut);
  } catch (error) {
    reason = (error as Error).message;
  }
  await assertOneLine(
    loadCheckpoint(dir, { command: COMMAND }),
    `Checkpoint file ${dir}/model.json is damaged (200 bytes, not JSON: ${reason}); run ` +
      `\`${COMMAND} --overwrite\` to train a new one in its place`,
  );
  await Deno.writeTextFile(join(dir, "model.json"), JSON.stringify({ format: "layers-model" }));
  await assertOneLine(
    loadCheckpoint(dir, { command: COMMAND }),
    `Checkpoint file ${dir}/model.json is damaged (25 bytes, JSON, but not what it should ` +
      `hold); run \`${COMMAND} --overwrite\` to train a new one in its place`,
  );
  // Valid JSON whose layers do not fit the weights: TensorFlow.js's refusal, in one line.
  const modelJson = JSON.parse(text);
  modelJson.modelTopology.config.layers[1].config.filters = 5;
  await Deno.writeTextFile(join(dir, "model.json"), JSON.stringify(modelJson));
  await assertRejects(
    () => loadCheckpoint(dir, { command: COMMAND }),
    (error: Error) => {
      assertEquals(error.name, "UserError");
      assert(
        error.message.startsWith(`Checkpoint file ${dir}/model.json is damaged (`),
        error.message,
      );
      assert(
        error.message.endsWith(`); run \`${COMMAND} --overwrite\` to train a new one in its place`),
        error.message,
      );
      assert(!error.message.includes("\n"), "one line");
      return true;
    },
  );
  await Deno.writeTextFile(join(dir, "model.json"), text);
  await Deno.writeTextFile(join(dir, "optimizer.json"), "{");
  await assertRejects(
    () => loadCheckpoint(dir, { command: COMMAND, resume: true }),
    (error: Error) =>
      error.name === "UserError" &&
      error.message.startsWith(
        `Checkpoint file ${dir}/optimizer.json is damaged (1 bytes, not JSON`,
      ),
  );
  await Deno.writeTextFile(join(dir, "training_state.json"), "");
  await assertRejects(
    () => loadCheckpoint(dir, { command: COMMAND }),
    (error: Error) =>
      error.name === "UserError" &&
      error.message.startsWith(`Checkpoint file ${dir}/training_state.json is damaged (0 bytes`),
  );
  await Deno.remove(join(dir, ".."), { recursive: true });
});

Deno.test("--resume from a checkpoint of another network, input size, loss or optimizer says so in one line", async () => {
  const dir = await savedCheckpoint();
  const resume = { model: "tiny", size: 8, loss: "ce", optimizer: "sgd", resume: true };
  const loaded = await loadCheckpoint(dir, { ...resume, command: COMMAND });
  assertEquals(loaded.state, STATE);
  tf.dispose(loaded.optimizerState!.map((weight) => weight.tensor));
  const afresh = "or train afresh into another folder (leave out --resume and pass " +
    "--checkpoint <new folder>)";
  await assertOneLine(
    loadCheckpoint(dir, { ...resume, model: "unetlike", command: COMMAND }),
    `Cannot resume from ${dir}: it was trained for network tiny, not unetlike; pass ` +
      `--checkpoint <folder of a unetlike run>, ${afresh}`,
  );
  await assertOneLine(
    loadCheckpoint(dir, { ...resume, size: 64, command: COMMAND }),
    `Cannot resume from ${dir}: it was trained at input size 8, not 64; resume with --size 8, ` +
      afresh,
  );
  await assertOneLine(
    loadCheckpoint(dir, { ...resume, loss: "ce+dice", command: COMMAND }),
    `Cannot resume from ${dir}: it was trained with --loss ce, not ce+dice; resume with ` +
      `--loss ce, ${afresh}`,
  );
  await assertOneLine(
    loadCheckpoint(dir, { ...resume, optimizer: "adam", command: COMMAND }),
    `Cannot resume from ${dir}: it was trained with --optimizer sgd, not adam; resume with ` +
      `--optimizer sgd, ${afresh}`,
  );
  await Deno.remove(join(dir, ".."), { recursive: true });
});

Deno.test("saveCheckpoint() refuses weights that are not finite and keeps the last good checkpoint", async () => {
  const dir = await savedCheckpoint();
  const before = await snapshot(dir);
  const model = tinyModel();
  const [kernel, ...rest] = model.layers[1]!.getWeights();
  model.layers[1]!.setWeights([tf.fill(kernel!.shape, NaN), ...rest]);
  await assertOneLine(
    saveCheckpoint(dir, model, { ...STATE, iteration: 6 }),
    `Cannot save checkpoint ${dir} at iteration 6: weight ${
      model.layers[1]!.weights[0]!.originalName
    } ` +
      "is not finite, so training diverged; lower --lr and train again (the checkpoint there " +
      "now is kept)",
  );
  assertEquals(await snapshot(dir), before);
  model.dispose();
  await Deno.remove(join(dir, ".."), { recursive: true });
});

Deno.test("a script that loads a cut-short checkpoint exits 1 with one line and no stack trace", async () => {
  const dir = await savedCheckpoint();
  await cutShort(join(dir, "weights.bin"), 300);
  const script = `
    import "@tensorflow/tfjs-backend-cpu";
    import { loadCheckpoint } from "${new URL("../lib/checkpoint.ts", import.meta.url).href}";
    import { runMain } from "${new URL("../lib/errors.ts", import.meta.url).href}";
    await runMain(async () => { await loadCheckpoint(${
    JSON.stringify(dir)
  }, { command: "${COMMAND}" }); });
  `;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["eval", script],
    cwd: new URL("..", import.meta.url).pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr).trim().split("\n")
    .filter((line) => !line.includes("Initialize"));
  assertEquals(output.code, 1);
  assertEquals(stderr, [
    `error: Checkpoint file ${dir}/weights.bin has 300 bytes but its model.json needs 572 ` +
    `(cut short); run \`${COMMAND} --overwrite\` to train a new one in its place`,
  ]);
  await Deno.remove(join(dir, ".."), { recursive: true });
});
