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
import { registerCustomLayers } from "./custom_layers.js";
import { readCheckedWeights, validSpecs, weightBytes } from "./checkpoint_check.js";
import { UserError } from "./errors.ts";
import {
  checkFolderPath,
  checkOnlyCheckpointFiles,
  claimCheckpoint,
  guardWrite,
} from "./output_files.ts";
import { dirname, join } from "./path.ts";
import { firstNonFiniteWeight, type OptimizerWeight } from "./weights.ts";

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
  /** Anything else worth keeping: learning rate, batch size, seed, schedule, and `data`, the
   * dataset folders trained on, oldest first (a single string in older checkpoints: read it
   * with `trainedOn` of `trained_on.ts`). */
  settings?: Record<string, string | number | boolean | string[]>;
  /** The loss of each iteration up to `iteration`, the last one last, for the loss curve of a
   * resumed run; fewer than `iteration` when the run resumed from a checkpoint that kept none.
   * @default {not kept (a checkpoint of an older version)} */
  losses?: number[];
}

/** What {@linkcode loadCheckpoint} expects, to refuse a checkpoint of another run. */
export interface CheckpointExpectation {
  /** The network the caller will use.
   * @default {any} */
  model?: string;
  /** The input size the caller will use.
   * @default {any} */
  size?: number;
  /** The training loss the caller will resume with (`--loss`); checked against the
   * `loss` setting the checkpoint recorded.
   * @default {any} */
  loss?: string;
  /** The optimizer the caller will resume with (`--optimizer`).
   * @default {any} */
  optimizer?: string;
  /** The checkpoint is loaded to continue training (`--resume`), not to test: the
   * messages of a mismatch say how to resume, or to train afresh into another folder, and
   * a damaged optimizer state is refused (to test, it is named in a warning and left out).
   * @default {false} */
  resume?: boolean;
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
  /** The optimizer's state, if it was saved (and is whole); the caller disposes the tensors. */
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
 * Saves a model (and optionally its optimizer's state) as a checkpoint folder,
 * atomically. Weights that are not finite (a diverged run) are refused, so
 * the checkpoint on disk stays the last good one.
 *
 * @param dir The checkpoint folder, e.g. `checkpoints/bin_loss`.
 * @param model The trained model.
 * @param state What was trained and how far.
 * @param optimizer The optimizer whose state `--resume` continues from.
 * @param options `replace`: a checkpoint already in `dir` that this run did not write may be
 *   replaced (`--resume`, `--overwrite`); without it such a checkpoint is refused
 *   ({@linkcode claimCheckpoint}).
 * @returns A promise that resolves when the checkpoint is in place.
 * @throws {UserError} When a weight is NaN or infinite, `dir` holds a checkpoint of another
 *   run (without `replace`) or other files, or the disk is full or not writable (a
 *   checkpoint there is kept).
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
  options: { replace?: boolean } = {},
): Promise<void> {
  const broken = await firstNonFiniteWeight(model);
  if (broken !== undefined) {
    throw new UserError(
      `Cannot save checkpoint ${dir} at iteration ${state.iteration}: weight ${broken} is not ` +
        "finite, so training diverged; lower --lr and train again (the checkpoint there now " +
        "is kept)",
    );
  }
  await claimCheckpoint(dir, options);
  // writeErrorMessage says "free some space" for a full disk; the checkpoint is named when
  // there is one to keep.
  const kept = await exists(join(dir, "model.json")) ? "; the checkpoint there now is kept" : "";
  const fix = `pass --checkpoint <a folder you can write>${kept}`;
  await guardWrite(dir, fix, () => writeCheckpoint(dir, model, state, optimizer));
}

async function writeCheckpoint(
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
    await Deno.writeTextFile(join(temp, "training_state.json"), stateJson(state));
    const previous = `${dir}.previous`;
    if (await exists(dir)) {
      // Files put there during training are not replaced: the whole folder is renamed.
      await checkOnlyCheckpointFiles(dir);
      if (await exists(previous)) await checkOnlyCheckpointFiles(previous);
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

/** `training_state.json`: one field a line, the loss history on one line at the end. */
function stateJson({ losses, ...state }: TrainingState): string {
  const text = JSON.stringify(state, null, 2);
  if (!losses) return text + "\n";
  return `${text.slice(0, -2)},\n  "losses": ${JSON.stringify(losses)}\n}\n`;
}

/**
 * Loads a checkpoint written by {@linkcode saveCheckpoint}, refusing with a
 * one-line {@linkcode UserError} that names the command to run one that is
 * missing, of another run (network, input size, loss, optimizer), or
 * damaged: every file is checked before TensorFlow.js reads it (JSON that
 * parses, `weights.bin` and `optimizer.bin` of the size their manifests
 * need), so a file cut short is named with the bytes it has and needs.
 *
 * @param dir The checkpoint folder.
 * @param expect The network, size, loss and optimizer the caller needs, and
 * the command that trains them.
 * @returns The model, its training state and its optimizer's state.
 * @throws {UserError} When the checkpoint is missing, damaged or of another run.
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
  checkFolderPath(dir, "--checkpoint");
  let path = dir;
  if (
    !(await exists(join(dir, "model.json"))) && await exists(join(`${dir}.previous`, "model.json"))
  ) {
    path = `${dir}.previous`;
  }
  if (!(await exists(join(path, "model.json")))) {
    throw new UserError(`No checkpoint at ${dir}: run \`${command}\` first to train one`);
  }
  const files = new CheckpointFiles(path, replaceFix(command));
  const state = await files.json<TrainingState>(
    "training_state.json",
    (value) =>
      typeof value.model === "string" && typeof value.size === "number" &&
      typeof value.iteration === "number",
  );
  checkExpectation(dir, state, expect, command);
  const modelJson = await files.json<tf.io.ModelJSON>(
    "model.json",
    (value) =>
      typeof value.modelTopology === "object" && value.modelTopology !== null &&
      Array.isArray(value.weightsManifest) &&
      value.weightsManifest.every((group) => validSpecs(group?.weights)),
  );
  // The checks the page makes too (checkpoint_check.js): files, sizes, layer classes, values.
  const { weightSpecs, weightData } = await readCheckedWeights(
    modelJson,
    (name: string) =>
      Deno.readFile(join(path, name)).catch((error) => {
        if (error instanceof Deno.errors.NotFound) return undefined;
        throw new UserError(
          `Checkpoint file ${join(path, name)} cannot be read (${firstLine(error)}); ${files.fix}`,
        );
      }),
    { where: path, fix: files.fix, knownLayer },
  );
  const optimizerState = await readOptimizerState(files, expect.resume === true);
  let model: tf.LayersModel;
  try {
    model = await tf.loadLayersModel(tf.io.fromMemory({
      modelTopology: modelJson.modelTopology,
      weightSpecs,
      weightData,
      format: modelJson.format,
      generatedBy: modelJson.generatedBy,
      convertedBy: modelJson.convertedBy,
    }));
  } catch (error) {
    tf.dispose(optimizerState?.map((weight) => weight.tensor) ?? []);
    const reason = firstLine(error);
    throw new UserError(
      `Checkpoint file ${join(path, "model.json")} is damaged (${reason}); ${files.fix}`,
    );
  }
  return { model, state, optimizerState, path };
}

/** Refuses a checkpoint of another network, input size, loss or optimizer. */
function checkExpectation(
  dir: string,
  state: TrainingState,
  expect: CheckpointExpectation,
  command: string,
): void {
  const afresh = "or train afresh into another folder (leave out --resume and pass " +
    "--checkpoint <new folder>)";
  if (expect.model !== undefined && state.model !== expect.model) {
    throw new UserError(
      expect.resume
        ? `Cannot resume from ${dir}: it was trained for network ${state.model}, not ` +
          `${expect.model}; pass --checkpoint <folder of a ${expect.model} run>, ${afresh}`
        : `Checkpoint ${dir} was trained for network ${state.model}, not ${expect.model}: ` +
          `pass --checkpoint <folder of a ${expect.model} run>, or train one into a new folder ` +
          `with \`${trainInto(command)}\``,
    );
  }
  if (expect.size !== undefined && state.size !== expect.size) {
    throw new UserError(
      expect.resume
        ? `Cannot resume from ${dir}: it was trained at input size ${state.size}, not ` +
          `${expect.size}; resume with --size ${state.size}, ${afresh}`
        : `Checkpoint ${dir} was trained at input size ${state.size}, not ${expect.size}: ` +
          `test with --size ${state.size}, or train one at ${expect.size} into a new folder ` +
          `with \`${trainInto(command)} --size ${expect.size}\``,
    );
  }
  for (const setting of ["loss", "optimizer"] as const) {
    const wanted = expect[setting];
    const saved = setting === "loss" ? state.settings?.loss : state.optimizer;
    if (wanted === undefined || saved === undefined || saved === wanted) continue;
    throw new UserError(
      `Cannot resume from ${dir}: it was trained with --${setting} ${saved}, not ${wanted}; ` +
        `resume with --${setting} ${saved}, ${afresh}`,
    );
  }
}

/**
 * The training command with a new `--checkpoint` folder: what a refusal suggests, so that
 * running it never replaces the checkpoint that was refused.
 */
function trainInto(command: string): string {
  return `${command.replace(/ --checkpoint (?:'[^']*'|\S+)/, "")} --checkpoint <new folder>`;
}

/**
 * How to replace a damaged checkpoint: its training command with `--overwrite` (without it,
 * training into the folder is refused, since a checkpoint is there).
 */
function replaceFix(command: string): string {
  return command.startsWith("deno task ")
    ? `run \`${command} --overwrite\` to train a new one in its place`
    : `train a new one in its place with ${command} and --overwrite`;
}

/** Reads the files of one checkpoint folder, each checked before use. */
class CheckpointFiles {
  /**
   * @param dir The folder.
   * @param fix The end of every message: how to replace a damaged file.
   */
  constructor(readonly dir: string, readonly fix: string) {}

  async read(name: string): Promise<Uint8Array> {
    try {
      return await Deno.readFile(join(this.dir, name));
    } catch (error) {
      const reason = error instanceof Deno.errors.NotFound
        ? "is missing"
        : `cannot be read (${firstLine(error)})`;
      throw new UserError(`Checkpoint file ${join(this.dir, name)} ${reason}; ${this.fix}`);
    }
  }

  /** A JSON file, refused when it does not parse or `valid` says it is not what it should be. */
  async json<T>(name: string, valid: (value: T) => boolean): Promise<T> {
    const bytes = await this.read(name);
    let reason: string;
    try {
      const value = JSON.parse(new TextDecoder().decode(bytes));
      if (typeof value === "object" && value !== null && valid(value)) return value as T;
      reason = "JSON, but not what it should hold";
    } catch (error) {
      reason = `not JSON: ${firstLine(error)}`;
    }
    throw new UserError(
      `Checkpoint file ${join(this.dir, name)} is damaged (${bytes.length} bytes, ${reason}); ` +
        this.fix,
    );
  }

  /** A weights file, refused unless it has exactly the bytes `specs` need. */
  async bytes(
    name: string,
    specs: tf.io.WeightsManifestEntry[],
    manifest: string,
  ): Promise<ArrayBuffer> {
    const bytes = await this.read(name);
    const needed = weightBytes(specs);
    if (needed !== undefined && bytes.byteLength !== needed) {
      throw new UserError(
        `Checkpoint file ${join(this.dir, name)} has ${bytes.byteLength} bytes but its ` +
          `${manifest} needs ${needed} (${
            bytes.byteLength < needed ? "cut short" : "too long"
          }); ${this.fix}`,
      );
    }
    return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  }
}

/** Whether this TensorFlow.js (with the project's custom layers, when registered) has a layer class. */
function knownLayer(className: string): boolean {
  registerCustomLayers(tf); // SegNet's layers: known to every program that loads checkpoints
  return className in tf.serialization.SerializationMap.getMap().classNameMap;
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split("\n")[0] ?? "";
}

/**
 * The optimizer's state, checked: refused when damaged and `resume` (training needs it),
 * else named in a warning and left out (testing and segmenting need only the network).
 */
async function readOptimizerState(
  checked: CheckpointFiles,
  resume: boolean,
): Promise<OptimizerWeight[] | undefined> {
  if (!(await exists(join(checked.dir, "optimizer.json")))) return undefined;
  if (resume) return await decodeOptimizerState(checked);
  const files = new CheckpointFiles(
    checked.dir,
    "only --resume needs it, so the network is used without it",
  );
  try {
    return await decodeOptimizerState(files);
  } catch (error) {
    if (!(error instanceof UserError)) throw error;
    console.warn(`warning: ${error.message}`);
    return undefined;
  }
}

async function decodeOptimizerState(files: CheckpointFiles): Promise<OptimizerWeight[]> {
  const { weights: specs } = await files.json<{ weights: tf.io.WeightsManifestEntry[] }>(
    "optimizer.json",
    (value) => validSpecs(value.weights),
  );
  const buffer = await files.bytes("optimizer.bin", specs, "optimizer.json");
  const decoded = tf.io.decodeWeights(buffer, specs);
  return specs.map((spec) => ({ name: spec.name, tensor: decoded[spec.name]! }));
}
