/**
 * Checkpoints in the standard TensorFlow.js layers format (`model.json` +
 * `weights.bin`, loadable in a browser with `tf.loadLayersModel`), written
 * through Deno file I/O, plus `training_state.json` and the optimizer's
 * state (`optimizer.json` + `optimizer.bin`) so that training can resume.
 *
 * A save is atomic: everything is written to a temporary folder beside the
 * checkpoint, the old checkpoint is renamed to `<dir>.previous`, the new one
 * renamed into place, and the old one removed. An interrupted save leaves the
 * previous checkpoint readable (at `<dir>` or, if it stopped between the two
 * renames, at `<dir>.previous`, which {@linkcode loadCheckpoint} falls back to).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { UserError } from "./errors.ts";
import { basename, dirname, join } from "./path.ts";
import type { OptimizerWeight } from "./train.ts";

/** What was trained, saved beside the weights as `training_state.json`. */
export interface TrainingState {
  /** Iterations done. */
  iteration: number;
  /** Network name, e.g. `bin` or `semaseg`. */
  model: string;
  /** Input height and width in pixels. */
  size: number;
  /** Output channels (1 for a sigmoid model). */
  classes: number;
  /** Optimizer name, `sgd` or `adam`. */
  optimizer: string;
  /** Anything else worth keeping: learning rate, batch size, seed, schedule. */
  settings?: Record<string, string | number | boolean>;
}

/** What {@linkcode loadCheckpoint} expects, to refuse a checkpoint of another run. */
export interface CheckpointExpectation {
  /** The network the caller will use.
   * @default {any} */
  model?: string;
  /** The input size the caller will use.
   * @default {any} */
  size?: number;
  /** The command that trains the checkpoint, named in errors.
   * @default {"the training script"} */
  command?: string;
}

/** A loaded checkpoint. */
export interface LoadedCheckpoint {
  /** The model, ready to predict. */
  model: tf.LayersModel;
  /** Its training state. */
  state: TrainingState;
  /** The optimizer's state, if it was saved; the caller disposes the tensors. */
  optimizerState?: OptimizerWeight[];
  /** The folder actually read (the `.previous` one after an interrupted save). */
  path: string;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

function toBytes(data: tf.io.WeightData | undefined): Uint8Array {
  return new Uint8Array(tf.io.CompositeArrayBuffer.join(data ?? new ArrayBuffer(0)));
}

/**
 * Saves a model (and optionally its optimizer's state) as a checkpoint folder, atomically.
 *
 * @param dir The checkpoint folder, e.g. `checkpoints/bin_loss`.
 * @param model The trained model.
 * @param state What was trained and how far.
 * @param optimizer The optimizer whose state `--resume` continues from.
 * @returns A promise that resolves when the checkpoint is in place.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { loadCheckpoint, saveCheckpoint } from "./checkpoint.ts";
 * import { assertEquals } from "./assert.ts";
 * const input = tf.input({ shape: [2, 2, 3] });
 * const output = tf.layers.conv2d({ filters: 1, kernelSize: 1 }).apply(input);
 * const model = tf.model({ inputs: input, outputs: output as tf.SymbolicTensor });
 * const dir = await Deno.makeTempDir();
 * const state = { iteration: 3, model: "tiny", size: 2, classes: 1, optimizer: "sgd" };
 * await saveCheckpoint(`${dir}/tiny`, model, state);
 * const loaded = await loadCheckpoint(`${dir}/tiny`, { model: "tiny", size: 2 });
 * assertEquals(loaded.state.iteration, 3);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function saveCheckpoint(
  dir: string,
  model: tf.LayersModel,
  state: TrainingState,
  optimizer?: tf.Optimizer,
): Promise<void> {
  await Deno.mkdir(dirname(dir), { recursive: true });
  const temp = `${dir}.partial-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(temp);
  try {
    await model.save(tf.io.withSaveHandler(async (artifacts) => {
      const modelJson = {
        modelTopology: artifacts.modelTopology,
        format: artifacts.format ?? "layers-model",
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy ?? null,
        weightsManifest: [{ paths: ["weights.bin"], weights: artifacts.weightSpecs ?? [] }],
      };
      await Deno.writeTextFile(join(temp, "model.json"), JSON.stringify(modelJson));
      await Deno.writeFile(join(temp, "weights.bin"), toBytes(artifacts.weightData));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" } };
    }));
    if (optimizer) {
      const weights = await optimizer.getWeights();
      try {
        const encoded = await tf.io.encodeWeights(weights);
        await Deno.writeTextFile(
          join(temp, "optimizer.json"),
          JSON.stringify({ className: optimizer.getClassName(), weights: encoded.specs }),
        );
        await Deno.writeFile(join(temp, "optimizer.bin"), toBytes(encoded.data));
      } finally {
        // getWeights() makes a fresh tensor for the iteration count only.
        weights[0]?.tensor.dispose();
      }
    }
    await Deno.writeTextFile(
      join(temp, "training_state.json"),
      JSON.stringify(state, null, 2) + "\n",
    );
    const previous = `${dir}.previous`;
    if (await exists(dir)) {
      await Deno.remove(previous, { recursive: true }).catch(() => {});
      await Deno.rename(dir, previous);
    }
    await Deno.rename(temp, dir);
    await Deno.remove(previous, { recursive: true }).catch(() => {});
  } catch (error) {
    await Deno.remove(temp, { recursive: true }).catch(() => {});
    throw error;
  }
}

/**
 * Loads a checkpoint written by {@linkcode saveCheckpoint}, refusing one that
 * is missing or was trained for another network or input size with a
 * {@linkcode UserError} that names the command to run.
 *
 * @param dir The checkpoint folder.
 * @param expect The network and size the caller needs, and the command that trains them.
 * @returns The model, its training state and its optimizer's state.
 * @throws {UserError} When the checkpoint is missing, unreadable or of another run.
 *
 * @example
 * ```ts
 * import { loadCheckpoint } from "./checkpoint.ts";
 * import { assertRejects } from "./assert.ts";
 * await assertRejects(
 *   loadCheckpoint("no/such/folder", { command: "deno task bin_loss" }),
 *   /run `deno task bin_loss`/,
 * );
 * ```
 */
export async function loadCheckpoint(
  dir: string,
  expect: CheckpointExpectation = {},
): Promise<LoadedCheckpoint> {
  const command = expect.command ?? "the training script";
  let path = dir;
  if (
    !(await exists(join(dir, "model.json"))) && await exists(join(`${dir}.previous`, "model.json"))
  ) {
    path = `${dir}.previous`;
  }
  if (!(await exists(join(path, "model.json")))) {
    throw new UserError(`No checkpoint at ${dir}: run \`${command}\` first to train one`);
  }
  let state: TrainingState;
  let modelJson: tf.io.ModelJSON;
  let weightData: Uint8Array;
  try {
    state = JSON.parse(await Deno.readTextFile(join(path, "training_state.json")));
    modelJson = JSON.parse(await Deno.readTextFile(join(path, "model.json")));
    weightData = await Deno.readFile(join(path, "weights.bin"));
  } catch (error) {
    const reason = error instanceof Error ? error.message.split("\n")[0] : String(error);
    throw new UserError(
      `Cannot read checkpoint ${dir}: ${reason}; run \`${command}\` again to rewrite it`,
    );
  }
  if (expect.model !== undefined && state.model !== expect.model) {
    throw new UserError(
      `Checkpoint ${dir} was trained for network ${state.model}, not ${expect.model}: ` +
        `run \`${command}\` to train ${expect.model}, or pass --checkpoint`,
    );
  }
  if (expect.size !== undefined && state.size !== expect.size) {
    throw new UserError(
      `Checkpoint ${dir} was trained at input size ${state.size}, not ${expect.size}: ` +
        `run \`${command} --size ${expect.size}\`, or test with --size ${state.size}`,
    );
  }
  const model = await tf.loadLayersModel(tf.io.fromMemory({
    modelTopology: modelJson.modelTopology,
    weightSpecs: modelJson.weightsManifest.flatMap((group) => group.weights),
    weightData: weightData.buffer.slice(
      weightData.byteOffset,
      weightData.byteOffset + weightData.byteLength,
    ) as ArrayBuffer,
    format: modelJson.format,
    generatedBy: modelJson.generatedBy,
    convertedBy: modelJson.convertedBy,
  }));
  return { model, state, optimizerState: await readOptimizerState(path), path };
}

async function readOptimizerState(path: string): Promise<OptimizerWeight[] | undefined> {
  if (!(await exists(join(path, "optimizer.json")))) return undefined;
  const { weights: specs } = JSON.parse(await Deno.readTextFile(join(path, "optimizer.json"))) as {
    weights: tf.io.WeightsManifestEntry[];
  };
  const bytes = await Deno.readFile(join(path, "optimizer.bin"));
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  const decoded = tf.io.decodeWeights(buffer as ArrayBuffer, specs);
  return specs.map((spec) => ({ name: spec.name, tensor: decoded[spec.name]! }));
}

/**
 * The default checkpoint folder of an exercise: `checkpoints/<exercise>`.
 *
 * @param exercise The exercise name, e.g. `bin_loss`.
 * @param flag The `--checkpoint` flag, which wins when given.
 * @returns The folder.
 *
 * @example
 * ```ts
 * import { checkpointDir } from "./checkpoint.ts";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(checkpointDir("bin_loss", undefined), "checkpoints/bin_loss");
 * ```
 */
export function checkpointDir(exercise: string, flag: string | undefined): string {
  return flag ?? join("checkpoints", basename(exercise));
}
