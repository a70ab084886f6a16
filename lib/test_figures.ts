/**
 * The figures of an exercise: the training photos beside their masks (the
 * dataset exercises), and the test: predict every test photo, write a figure
 * per photo with titled panels, and print the metrics line last. How masks
 * are read, how probabilities become classes and how classes are painted are
 * the exercises' lessons, handed in as functions.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { countClasses, type Dataset, loadSplit, type MaskMode } from "./dataset.ts";
import { type Classify, evaluateModel, formatMetricsLine, type Metrics } from "./evaluate.ts";
import { classLegend, writeFigure } from "./figure.ts";
import { inputSize, rebuildAtSize } from "./network.ts";
import { photoFigurePath } from "./output_files.ts";
import type { TrainedRun } from "./train_and_save.ts";

/** An exercise's painting of a class map `[h, w]`: a picture `[h, w, 3]` (or `[h, w, 1]` grey) in [0, 1]. */
export type Paint = (classMap: tf.Tensor2D) => tf.Tensor3D;

/** Options of {@linkcode showDataset}. */
export interface ShowDatasetOptions {
  /** The exercise, e.g. `bin_dataset`: names the figures `<out>/<class folder>/<name>_<photo>.png`. */
  name: string;
  /** Folder of the figures. */
  out: string;
  /** Title of the mask panel. */
  title: string;
  /** The mask's picture: the exercise's painting of its classes. */
  paint: Paint;
}

/**
 * Writes a figure per photo of a loaded split, the photo beside its mask as
 * the exercise paints it, then one line per class: in how many photos, and
 * what share of the pixels. The dataset exercises' output.
 *
 * @param data The split (its tensors stay the caller's).
 * @param options Names, folder, title and painting of the mask.
 * @returns The figures written.
 *
 * @example
 * ```ts ignore
 * // In exercises/bin_dataset.ts: answers/<class>/bin_dataset_<photo>.png, then the class shares.
 * await showDataset(dataset, { name: "bin_dataset", out: "answers", title: "mask", paint: grey });
 * ```
 */
export async function showDataset(data: Dataset, options: ShowDatasetOptions): Promise<string[]> {
  const figures: string[] = [];
  const legend = await classLegend(data.classNames, options.paint); // one key for every figure
  for (const [index, photo] of data.names.entries()) {
    const [image, mask] = tf.tidy(() => [
      tf.squeeze(tf.slice(data.images, index, 1), [0]) as tf.Tensor3D, // [size, size, 3]
      options.paint(tf.squeeze(tf.slice(data.masks, index, 1), [0]) as tf.Tensor2D), // [size, size, 3]
    ]);
    const path = photoFigurePath(options.out, options.name, photo, data.folders?.[index]);
    try {
      await writeFigure(path, [{ title: "input", image }, { title: options.title, image: mask }], {
        legend,
      });
    } finally {
      tf.dispose([image, mask]);
    }
    figures.push(path);
    console.log(`Wrote ${path}`);
  }
  for (const { name, images, share } of countClasses(data.masks, data.classNames)) {
    const percent = (share * 100).toFixed(1);
    console.log(`${name}: in ${images} of ${data.names.length} photos, ${percent}% of pixels`);
  }
  return figures;
}

/** Options of {@linkcode testAndShow}. */
export interface TestAndShowOptions {
  /** The exercise, e.g. `bin_test`: names the figures `<out>/<class folder>/<name>_<photo>.png`. */
  name: string;
  /** How the test masks are read: `BINARY` of bin_dataset, `CLASSES` of semaseg_dataset. */
  mode: MaskMode;
  /** Folder of the figures. */
  out: string;
  /** Probabilities to classes: `threshold` of bin_test, `argmaxClasses` of semaseg_test. */
  classify: Classify;
  /** A class map `[h, w]` to a picture `[h, w, 3 or 1]`: `paintClasses` of semaseg_dataset. */
  paint: Paint;
  /** Test on the mean prediction over the 8 flips and quarter-turns. @default false */
  flipAverage?: boolean;
  /** Test at this input size with the same weights (0: the model's). @default 0 */
  testSize?: number;
  /** The network's builder, needed for `testSize`. */
  build?: (size: number) => tf.LayersModel;
  /** The command to run next and why, printed just before the metrics line. */
  next?: string;
  /** The test split already loaded (by a run that trained first); used when it is at the test
   * size, else the split is read again. The caller disposes it. @default {read from dataDir} */
  testSplit?: Dataset;
}

/** What {@linkcode testAndShow} returns. */
export interface TestedRun {
  /** The metrics. */
  metrics: Metrics;
  /** The metrics line printed last. */
  line: string;
  /** The figure written per test image. */
  figures: string[];
}

/**
 * Loads the test split at the model's input size (or `testSize`), predicts
 * every photo, writes a figure per photo (`<out>/<class folder>/<name>_<photo>.png`, so that
 * photos of the same name in two class folders keep a figure each), and
 * prints the metrics line last, the next command just before it.
 *
 * A one-channel model's figure has `input`, `predicted` (probability, grey),
 * `after binarization` and `ground truth`; a softmax model's has `input`,
 * `prediction` and `ground truth`, each painted by `options.paint`. A network whose output
 * is smaller than its input (UNet) is shown on the centre of the photo that
 * its output covers.
 *
 * @param model The trained model, input `[batch, size, size, 3]` in [0, 1].
 * @param dataDir The dataset folder.
 * @param options Names, folders, the classify and paint lessons, test size.
 * @returns The metrics and the figure paths.
 * @throws {UserError} When the test split cannot be read, or `testSize` cannot work.
 *
 * @example
 * ```ts ignore
 * // In exercises/semaseg_test.ts: writes answers/<class>/semaseg_test_<photo>.png, ends with
 * // test mIoU 0.712 (background 0.80, akahara 0.70, madara 0.64) pixel accuracy 0.861
 * const tested = await testAndShow(model, dataDir, {
 *   name: "semaseg_test", mode: CLASSES, classify: argmaxClasses, paint: paintClasses, out,
 * });
 * ```
 */
export async function testAndShow(
  model: tf.LayersModel,
  dataDir: string,
  options: TestAndShowOptions,
): Promise<TestedRun> {
  const size = options.testSize || inputSize(model);
  let atSize = model;
  if (size !== inputSize(model)) {
    if (!options.build) throw new Error("testAndShow() needs the builder to test at another size");
    // A fully convolutional network takes other sizes with the same weights.
    atSize = rebuildAtSize(model, options.build, size);
    console.log(`test: the trained weights at input size ${size}x${size}`);
  }
  const loaded = options.testSplit?.images.shape[1] === size ? options.testSplit : undefined;
  const test = loaded ?? await loadSplit(dataDir, "test", { mode: options.mode, size });
  try {
    return await showTest(atSize, test, options);
  } finally {
    if (test !== loaded) tf.dispose([test.images, test.masks]);
    if (atSize !== model) atSize.dispose();
  }
}

async function showTest(
  model: tf.LayersModel,
  data: Dataset,
  options: TestAndShowOptions,
): Promise<TestedRun> {
  if (options.flipAverage) {
    console.log("test: mean prediction over the 8 flips and quarter-turns of each photo");
  }
  const evaluation = await evaluateModel(model, data.images, data.masks, {
    classNames: data.classNames,
    classify: options.classify,
    flipAverage: options.flipAverage,
  });
  const figures: string[] = [];
  try {
    const legend = await classLegend(options.mode.classNames, options.paint); // for every figure
    for (let index = 0; index < data.names.length; index++) {
      const path = photoFigurePath(
        options.out,
        options.name,
        data.names[index]!,
        data.folders?.[index],
      );
      const panels = tf.tidy(() => {
        const pick = <T extends tf.Tensor>(tensor: T) =>
          tf.squeeze(tf.slice(tensor, index, 1), [0]) as tf.Tensor; // drop the batch axis
        const classMap = pick(evaluation.classMap) as tf.Tensor2D; // [out, out]
        const truth = pick(evaluation.truth) as tf.Tensor2D; // [out, out]
        // A smaller output (UNet) covers the centre of the photo: show that region,
        // cropped by the same rule as the masks.
        const [outHeight, outWidth] = classMap.shape;
        const [, height, width] = data.images.shape;
        const cropped = outHeight < height || outWidth < width;
        const input = {
          title: cropped ? `input (centre ${outHeight}x${outWidth})` : "input",
          image: tf.slice(pick(data.images), [
            Math.floor((height - outHeight) / 2),
            Math.floor((width - outWidth) / 2),
            0,
          ], [outHeight, outWidth, 3]) as tf.Tensor3D, // [out, out, 3]
        };
        if (evaluation.probabilities.shape[3] === 1) {
          return [
            input,
            { title: "predicted", image: pick(evaluation.probabilities) as tf.Tensor3D },
            { title: "after binarization", image: options.paint(classMap) },
            { title: "ground truth", image: options.paint(truth) },
          ];
        }
        return [
          input,
          { title: "prediction", image: options.paint(classMap) },
          { title: "ground truth", image: options.paint(truth) },
        ];
      });
      try {
        await writeFigure(path, panels, {
          title: `${options.name}: ${data.names[index]}`,
          legend,
        });
      } finally {
        tf.dispose(panels.map((panel) => panel.image));
      }
      figures.push(path);
      console.log(`figure: ${path}`);
    }
  } finally {
    tf.dispose([evaluation.probabilities, evaluation.classMap, evaluation.truth]);
  }
  const line = formatMetricsLine(evaluation.metrics);
  if (options.next) console.log(`next: ${options.next}`);
  console.log(line);
  return { metrics: evaluation.metrics, line, figures };
}

/** What an exercise that trains and then tests returns. */
export interface TrainTestRun {
  /** The model trained or loaded; the caller disposes it. */
  model?: tf.LayersModel;
  /** The training run, unless `--no-train`. */
  trained?: TrainedRun;
  /** The test, unless `--no-test`. */
  tested?: TestedRun;
}
