/**
 * `deno task segment`: runs a trained network on any photo. For each photo it
 * writes the class mask at the photo's size in the dataset's colours (usable
 * as a training mask), a figure with the photo, the class map and an overlay,
 * and prints the share of each class.
 *
 * A tool rather than an exercise: it is no lesson of the tutorial, it uses
 * the checkpoint of any of them. The architecture comes from the
 * checkpoint's `model.json`; the pixel work after the network is
 * `lib/segment_pixels.js`, the same file the page in `web/` runs, so both give
 * the same mask.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../engine/mod.ts";
import { loadCheckpoint } from "../lib/checkpoint.ts";
import { runMain, UserError } from "../lib/errors.ts";
import { nextStep } from "../lib/exercise_flags.ts";
import { threshold } from "../exercises/bin_test.ts";
import { argmaxClasses } from "../exercises/semaseg_test.ts";
import { writeFigure } from "../lib/figure.ts";
import { type FlagDefs, flagTyped, kebab, parseFlags, TRAIN_FLAGS } from "../lib/flags.ts";
import { predictViewsAveraged } from "../lib/flip_average.ts";
import {
  decodeImage,
  encodeImage,
  type RasterImage,
  resizeBilinear,
  resizeNearest,
  writeFileAtomic,
} from "../lib/image_io.ts";
import { registerCustomLayers } from "../lib/custom_layers.js";
import { isPhotoName, PHOTO_FORMATS } from "../lib/photo_formats.ts";
import { coveringOutputSize } from "../lib/input_size.ts";
import { checkSize } from "../lib/network.ts";
import { claimOutputFile, isProjectFile, noteInputs } from "../lib/output_files.ts";
import { basename, dirname, extname, join, relative, resolve, shownPath } from "../lib/path.ts";
import { isSyntheticSet } from "../lib/data_dir.ts";
import { trainedOn } from "../lib/trained_on.ts";
import { classesOf } from "../lib/classes.js";
import {
  classMapToPhoto,
  classShares,
  formatShares,
  paintMask,
  paintOverlay,
} from "../lib/segment_pixels.js";

const FLAGS = {
  model: {
    type: "string",
    default: "unetlike",
    help: "Exercise whose checkpoint to use, checkpoints/<model>: bin, semaseg, nearest, " +
      "transposeconv, concat, unet, unetlike, segnet, or <name>_tuned for a tuned recipe's",
  },
  checkpoint: {
    type: "string",
    path: "folder",
    help: "Checkpoint folder; default checkpoints/<model>",
  },
  out: {
    type: "string",
    default: "answers/segment",
    path: "output folder",
    help: "Folder for the masks and figures",
  },
  size: {
    type: "int",
    default: 0,
    min: 0,
    max: 1024,
    help: "Input size: the same weights at another size (0: the size it was trained at)",
  },
  flipAverage: {
    type: "boolean",
    default: false,
    help: "Predict on the mean over the 8 flips and quarter-turns of each photo",
  },
  backend: TRAIN_FLAGS.backend,
} as const satisfies FlagDefs;

const USAGE = "deno task segment [flags] PHOTO_OR_FOLDER...";
/** Longest side of a panel in the figure; larger photos are shown scaled down. */
const FIGURE_SIDE = 512;

/** One photo to segment and where its results go. */
export interface PhotoJob {
  /** The photo's path. */
  photo: string;
  /** The mask to write (PNG). */
  mask: string;
  /** The figure to write (PNG). */
  figure: string;
}

/** What {@linkcode run} did for one photo. */
export interface SegmentedPhoto extends PhotoJob {
  /** Photo width and height. */
  width: number;
  /** Photo height. */
  height: number;
  /** Share of each class, by index. */
  shares: number[];
  /** Milliseconds from reading the file to the mask in memory. */
  ms: number;
}

/**
 * Splits the command line into flags (with their values) and the photo or
 * folder arguments, so that `lib/flags.ts` parses the flags.
 *
 * @param args The arguments.
 * @param defs The flags; a non-boolean one takes the next argument unless written `--flag=value`.
 * @returns The flag arguments and the rest, in order; everything after `--` is a path.
 *
 * @example
 * ```ts
 * import { splitArguments } from "./segment.ts";
 * import { assertEquals } from "../lib/assert.ts";
 * const defs = { size: { type: "int", help: "" }, flip: { type: "boolean", help: "" } } as const;
 * assertEquals(splitArguments(["a.jpg", "--size", "64", "--flip", "b"], defs),
 *   { flags: ["--size", "64", "--flip"], paths: ["a.jpg", "b"] });
 * ```
 */
export function splitArguments(
  args: string[],
  defs: FlagDefs,
): { flags: string[]; paths: string[] } {
  const takesValue = new Set(
    Object.entries(defs).filter(([, def]) => def.type !== "boolean").map(([name]) =>
      `--${kebab(name)}`
    ),
  );
  const flags: string[] = [], paths: string[] = [];
  for (let index = 0; index < args.length; index++) {
    const arg = args[index]!;
    if (arg === "--") {
      paths.push(...args.slice(index + 1));
      break;
    }
    if (!arg.startsWith("-") || arg === "-") {
      paths.push(arg);
      continue;
    }
    flags.push(arg);
    if (takesValue.has(arg) && index + 1 < args.length) flags.push(args[++index]!);
  }
  return { flags, paths };
}

/**
 * The photos of a folder and its subfolders, as the dataset reader takes
 * them: JPEG, PNG or WebP by extension in any case, hidden files and folders (names
 * starting with ".") skipped, symbolic links followed (each folder once). PNGs
 * this project wrote (masks and figures of an earlier run into this folder,
 * marked `Software: imori-semaseg`) are not photos and are left out.
 *
 * @param dir The folder.
 * @param skipped Receives each left-out file this project wrote.
 * @returns Paths, sorted.
 *
 * @example
 * ```ts
 * import { listPhotos } from "./segment.ts";
 * import { assertEquals } from "../lib/assert.ts";
 * const dir = await Deno.makeTempDir();
 * for (const name of ["b.JPG", "a.png", ".hidden.jpg", "notes.txt"]) {
 *   await Deno.writeTextFile(`${dir}/${name}`, "");
 * }
 * assertEquals(await listPhotos(dir), [`${dir}/a.png`, `${dir}/b.JPG`]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function listPhotos(
  dir: string,
  skipped: (path: string) => void = () => {},
): Promise<string[]> {
  const found: string[] = [];
  const seen = new Set<string>();
  const walk = async (folder: string) => {
    const real = await Deno.realPath(folder);
    if (seen.has(real)) return;
    seen.add(real);
    const entries: string[] = [];
    for await (const entry of Deno.readDir(folder)) {
      if (!entry.name.startsWith(".")) entries.push(entry.name);
    }
    for (const name of entries.sort()) {
      const path = join(folder, name);
      const info = await Deno.stat(path).catch(() => undefined); // a broken link is skipped
      if (info?.isDirectory) await walk(path);
      else if (info?.isFile && isPhotoName(name)) {
        if (await isProjectFile(path)) skipped(path);
        else found.push(path);
      }
    }
  };
  await walk(dir);
  return found;
}

/**
 * The photos named on the command line, each with the mask and figure it
 * gets: `<out>/<stem>_mask.png` and `<out>/<stem>_figure.png`, under the
 * photo's subfolder for a folder argument.
 *
 * @param paths Photos and folders.
 * @param out The output folder.
 * @returns One job per photo.
 * @throws {UserError} For a path that does not exist, a folder with no photos,
 * or two photos that would write the same files.
 *
 * @example
 * ```ts
 * import { planJobs } from "./segment.ts";
 * import { assertEquals } from "../lib/assert.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.mkdir(`${dir}/madara`);
 * await Deno.writeTextFile(`${dir}/madara/m1.jpg`, "");
 * assertEquals(await planJobs([dir], "out"), [{
 *   photo: `${dir}/madara/m1.jpg`,
 *   mask: "out/madara/m1_mask.png",
 *   figure: "out/madara/m1_figure.png",
 * }]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function planJobs(paths: string[], out: string): Promise<PhotoJob[]> {
  const jobs: PhotoJob[] = [];
  for (const path of paths) {
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(path);
    } catch (error) {
      const reason = error instanceof Deno.errors.NotFound
        ? "no such file or folder"
        : (error instanceof Error ? error.message.split("\n")[0] : String(error));
      throw new UserError(`Cannot read photo ${path}: ${reason}; check the path`);
    }
    let ours = 0; // masks and figures an earlier run wrote into this folder
    const photos = info.isDirectory ? await listPhotos(path, () => ours++) : [path];
    if (ours > 0) {
      console.log(`segment: ${path}: left out ${ours} masks and figures written by this project`);
    }
    if (photos.length === 0) {
      throw new UserError(
        `No photos in folder ${path}: expected ${PHOTO_FORMATS} files (.jpg, .jpeg, .png, .webp ` +
          `in any case; hidden files and this project's masks and figures are skipped)`,
      );
    }
    for (const photo of photos) {
      const folder = info.isDirectory ? relative(path, dirname(photo)) : "";
      const stem = basename(photo, extname(photo));
      jobs.push({
        photo,
        mask: join(out, folder, `${stem}_mask.png`),
        figure: join(out, folder, `${stem}_figure.png`),
      });
    }
  }
  noteInputs(jobs.map((job) => job.photo)); // no output of this run may replace one
  const byMask = new Map<string, string>();
  for (const job of jobs) {
    const other = byMask.get(job.mask);
    if (other !== undefined) {
      throw new UserError(
        `Photos ${other} and ${job.photo} would both write ${job.mask}; ` +
          `segment them in separate runs with different --out folders`,
      );
    }
    byMask.set(job.mask, job.photo);
  }
  return jobs;
}

/** Exercises that train a checkpoint, each into `checkpoints/<name>`. */
const TRAINERS = [
  "bin_loss",
  "semaseg_loss",
  "nearest",
  "transposeconv",
  "concat",
  "unet",
  "unetlike",
  "segnet",
];

/**
 * The checkpoint folder of `--model` (or `--checkpoint`) and the command that
 * trains it: `bin` and `semaseg` are trained by their `_loss` exercise,
 * `<name>_tuned` by `deno task <name> --recipe tuned`.
 */
function checkpointOf(
  model: string,
  checkpoint: string | undefined,
): { dir: string; command: string } {
  const trainer = model === "bin" || model === "semaseg" ? `${model}_loss` : model;
  const base = trainer.replace(/_tuned$/, "");
  if (!TRAINERS.includes(base)) {
    if (checkpoint !== undefined) return { dir: checkpoint, command: "its training command" };
    throw new UserError(
      `No exercise trains a checkpoint named ${model}: pass --model bin, semaseg, nearest, ` +
        `transposeconv, concat, unet, unetlike or segnet (or <name>_tuned), or --checkpoint <folder>`,
    );
  }
  const command = trainer === base ? `deno task ${base}` : `deno task ${base} --recipe tuned`;
  return { dir: checkpoint ?? join("checkpoints", trainer), command };
}

/**
 * The command that trains the checkpoint in `dir`, from the network (and recipe) its
 * `training_state.json` records, or the name its `model.json` gives the network; with the
 * `--data` it was trained on last, and `--checkpoint` unless `dir` is that command's own
 * folder, each quoted for the shell. `undefined` when neither file names a network.
 */
async function trainerOf(dir: string): Promise<string | undefined> {
  const read = (name: string) =>
    Deno.readTextFile(join(dir, name)).then((text) => JSON.parse(text), () => undefined);
  const state = await read("training_state.json").catch(() => undefined);
  const network = typeof state?.model === "string"
    ? state.model
    : (await read("model.json").catch(() => undefined))?.modelTopology?.config?.name;
  if (typeof network !== "string") return undefined;
  const trainer = network === "bin" || network === "semaseg" ? `${network}_loss` : network;
  if (!TRAINERS.includes(trainer)) return undefined;
  const tuned = state?.settings?.recipe === "tuned";
  const own = join("checkpoints", tuned ? `${trainer}_tuned` : trainer);
  // On the photos it was trained on last, so that training it again is the same run
  const data = trainedOn(state?.settings).at(-1);
  return nextStep(
    `deno task ${trainer}` + (tuned ? " --recipe tuned" : ""),
    data === undefined ? undefined : shownPath(data),
    { checkpoint: resolve(dir) === resolve(own) ? undefined : dir },
  );
}

/** The same network and weights at another input size, from its own `model.json` topology. */
async function atInputSize(
  model: tf.LayersModel,
  size: number,
  describe: string,
): Promise<tf.LayersModel> {
  const topology = model.toJSON(null, false) as tf.serialization.ConfigDict;
  const layers = (topology.config as tf.serialization.ConfigDict).layers as {
    class_name: string;
    config: { batch_input_shape?: (number | null)[] };
  }[];
  for (const layer of layers) {
    if (layer.class_name === "InputLayer") {
      const channels = layer.config.batch_input_shape?.[3] ?? 3;
      layer.config.batch_input_shape = [null, size, size, channels];
    }
  }
  try {
    const rebuilt = await tf.models.modelFromJSON(topology);
    rebuilt.setWeights(model.getWeights());
    return rebuilt;
  } catch (error) {
    const reason = error instanceof Error ? error.message.split("\n")[0] : String(error);
    throw new UserError(
      `${describe} cannot take input size ${size} (${reason}); pass another --size, ` +
        `or leave it out to use the size it was trained at`,
    );
  }
}

/** Bytes 0-255 to floats in [0, 1], as a figure panel. */
function panel(bytes: ArrayLike<number>, height: number, width: number): tf.Tensor3D {
  return tf.tensor3d(Float32Array.from(bytes, (value) => value / 255), [height, width, 3]);
}

/** The photo, class map and overlay panels, scaled down for the figure when large. */
function figurePanels(
  photo: RasterImage,
  classes: Uint8Array,
  colors: readonly (readonly number[])[],
): { title: string; image: tf.Tensor3D }[] {
  const scale = Math.min(1, FIGURE_SIDE / Math.max(photo.width, photo.height));
  const width = Math.max(1, Math.round(photo.width * scale));
  const height = Math.max(1, Math.round(photo.height * scale));
  const pixels = scale < 1
    ? Uint8Array.from(resizeBilinear(photo, width, height), (value) => Math.round(value * 255))
    : photo.data;
  const shown = scale < 1
    ? resizeNearest(classes, {
      width: photo.width,
      height: photo.height,
      toWidth: width,
      toHeight: height,
    })
    : classes;
  return [
    { title: "photo", image: panel(pixels, height, width) },
    { title: "class map", image: panel(paintMask(shown, colors), height, width) },
    { title: "overlay", image: panel(paintOverlay(pixels, shown, colors), height, width) },
  ];
}

/**
 * Segments photos with a trained checkpoint and writes a mask and a figure per
 * photo, printing one line each.
 *
 * @param args Command-line arguments: flags, then photos or folders.
 * @returns What was written for each photo.
 * @throws {UserError} For a missing or unreadable photo or checkpoint, a folder
 * with no photos, or a size the network cannot take.
 */
export async function run(args: string[]): Promise<SegmentedPhoto[]> {
  const split = splitArguments(args, FLAGS);
  const flags = parseFlags(split.flags, FLAGS, {
    usage: USAGE,
    summary: "Segments your own photos with a trained network (default: the unetlike one; " +
      "train it with `deno task unetlike`). Writes per photo <out>/<name>_mask.png, the class " +
      "mask at the photo's size in the dataset's colours, and <out>/<name>_figure.png; prints " +
      "the share of each class. Folders are searched for JPEG, PNG and WebP photos.",
  });
  if (split.paths.length === 0) {
    throw new UserError(`Name at least one photo or folder: ${USAGE}`);
  }
  const jobs = await planJobs(split.paths, flags.out);
  for (const job of jobs) {
    // Refused before any work: an output over a photo of this run, or over a file not ours.
    await claimOutputFile(job.mask);
    await claimOutputFile(job.figure);
  }
  registerCustomLayers(tf); // SegNet's layers, for a checkpoint that has them
  const defaults = checkpointOf(flags.model, flags.checkpoint);
  const dir = defaults.dir;
  const backend = await setupBackend(flags.backend as Parameters<typeof setupBackend>[0]);
  // Named in messages: the command that trained this checkpoint, whatever --model says.
  const command = await trainerOf(dir) ?? defaults.command +
      (flags.checkpoint === undefined ? "" : ` --checkpoint ${flags.checkpoint}`);
  const loaded = await loadCheckpoint(dir, { command }).catch((error) => {
    // By name: the checks shared with the page (checkpoint_check.js) throw plain Errors.
    if (error instanceof Error && error.name === "UserError") throw error;
    const reason = error instanceof Error ? error.message.split("\n")[0] : String(error);
    throw new UserError(
      `Cannot load checkpoint ${dir}: ${reason}; run \`${command} --overwrite\` to train a ` +
        "new one in its place",
    );
  });
  tf.dispose(loaded.optimizerState?.map((weight) => weight.tensor) ?? []);
  const trainedSize = loaded.model.inputs[0]!.shape[1]!;
  const size = flags.size || trainedSize;
  const network = loaded.state.model ?? loaded.model.name;
  // Only a size whose output covers the photo as at the trained size (nearest: 33 gives 32).
  checkSize(`network ${network} of ${dir}`, size, coveringOutputSize(loaded.model));
  const model = size === trainedSize
    ? loaded.model
    : await atInputSize(loaded.model, size, `Network ${network} of ${dir}`);
  const [, outputSize, , channels] = model.outputs[0]!.shape as number[];
  const { names, colors } = classesOf(channels!);
  console.log(
    `model: ${network} from ${loaded.path}, trained ${loaded.state.iteration} iterations, ` +
      `input ${size}x${size}` + (size === trainedSize ? "" : ` (trained at ${trainedSize})`) +
      (flags.flipAverage ? ", mean over 8 flips and turns" : "") + `, backend ${backend}`,
  );
  // --model names the default checkpoint folder; with --checkpoint, the checkpoint decides: a
  // --model typed for another network is said to be ignored, not silently overridden.
  if (flagTyped(split.flags, "model") && flags.checkpoint !== undefined) {
    const asked = flags.model.replace(/_tuned$/, "").replace(/_loss$/, "");
    if (asked !== network) {
      console.warn(
        `warning: --model ${flags.model} ignored: ${loaded.path} holds a ${network} network, ` +
          "which is used",
      );
    }
  }
  // A network trained on the built-in synthetic newts (the first command's default) has not seen
  // a photo: say so, since its masks of real photos are rough.
  const lastData = trainedOn(loaded.state.settings).at(-1);
  if (lastData !== undefined && await isSyntheticSet(lastData)) {
    console.log(
      `warning: ${loaded.path} was trained on the built-in synthetic newts (${
        shownPath(lastData)
      }), not on photos: expect rough masks; for photos, train on the Imori set (deno task ` +
        "download, then the exercise with --checkpoint <new folder>)",
    );
  }
  const done: SegmentedPhoto[] = [];
  const unreadable: string[] = [];
  try {
    for (const job of jobs) {
      const started = performance.now();
      let photo: RasterImage;
      try {
        photo = await decodeImage(job.photo, { what: "photo" });
      } catch (error) {
        if (!(error instanceof UserError) || jobs.length === 1) throw error;
        // One unreadable photo of many: say so and go on with the others
        console.error(`error: ${error.message}`);
        unreadable.push(job.photo);
        continue;
      }
      const classMap = tf.tidy(() => {
        const input = tf.tensor4d(resizeBilinear(photo, size, size), [1, size, size, 3]);
        const probabilities = flags.flipAverage
          ? predictViewsAveraged(model, input)
          : model.predict(input) as tf.Tensor4D; // [1, out, out, classes]
        // The lessons of bin_test (threshold at 0.5) and semaseg_test (argmax)
        return channels === 1 ? threshold(probabilities) : argmaxClasses(probabilities); // [1, out, out]
      });
      const classes = classMapToPhoto(await classMap.data(), {
        outputSize: outputSize!,
        inputSize: size,
        width: photo.width,
        height: photo.height,
      });
      classMap.dispose();
      const ms = performance.now() - started;
      const painted = paintMask(classes, colors); // [height, width, 3]
      await writeFileAtomic(
        job.mask,
        await encodeImage({
          data: new Uint8Array(painted.buffer),
          width: photo.width,
          height: photo.height,
          channels: 3,
        }),
      );
      const panels = figurePanels(photo, classes, colors);
      try {
        await writeFigure(job.figure, panels, {
          title: `segment: ${basename(job.photo)} (${network})`,
          legend: names.map((label, index) => ({
            label,
            color: [...colors[index]!] as [number, number, number],
          })),
        });
      } finally {
        tf.dispose(panels.map((one) => one.image));
      }
      const shares = classShares(classes, names.length);
      console.log(
        `${job.photo}: ${formatShares(shares, names)} (${photo.width}x${photo.height}, ` +
          `${ms.toFixed(0)} ms) -> ${job.mask}, ${job.figure}`,
      );
      done.push({ ...job, width: photo.width, height: photo.height, shares, ms });
    }
  } finally {
    if (model !== loaded.model) model.dispose();
    loaded.model.dispose();
  }
  if (done.length > 0) {
    const warm = done.length > 1 ? done.slice(1) : done;
    const mean = warm.reduce((sum, one) => sum + one.ms, 0) / warm.length;
    console.log(
      `segment: ${done.length} photo${done.length === 1 ? "" : "s"}, ${
        mean.toFixed(0)
      } ms per photo` +
        (done.length > 1 ? " (the first, with warm-up, left out)" : "") +
        `; masks and figures in ${flags.out}`,
    );
  }
  if (unreadable.length > 0) {
    throw new UserError(
      `${unreadable.length} of ${jobs.length} photos could not be read (each named above, ` +
        `first ${unreadable[0]}); the others were segmented; fix or remove those and run again`,
    );
  }
  // The page serves one checkpoints folder: the one holding this checkpoint.
  const served = dirname(loaded.path) === "checkpoints" ? undefined : dirname(loaded.path);
  console.log(
    `next: ${
      nextStep(
        "deno task serve  (the same network on a photo you drop in a browser page)",
        undefined,
        { checkpoints: served },
      )
    }`,
  );
  return done;
}

if (import.meta.main) await runMain(async () => void (await run(Deno.args)));
