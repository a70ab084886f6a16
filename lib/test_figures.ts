/**
 * The test of an exercise: predict every test photo, write a figure per
 * photo with titled panels, and print the metrics line last.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { type Dataset, loadSplit, type MaskMode } from "./dataset.ts";
import { evaluateModel, formatMetricsLine, type Metrics } from "./evaluate.ts";
import { writeFigure } from "./figure.ts";
import { inputSize, rebuildAtSize } from "./network.ts";
import { paintClasses } from "./palette.ts";
import { photoFigurePath } from "./output_files.ts";
import type { TrainedRun } from "./train_and_save.ts";

/** Options of {@linkcode testAndShow}. */
export interface TestAndShowOptions {
  /** The exercise, e.g. `bin_test`: names the figures `<out>/<class folder>/<name>_<photo>.png`. */
  name: string;
  /** Binarization or classes: how the test masks are read. */
  mode: MaskMode;
  /** Folder of the figures. */
  out: string;
  /** Probability at or above which a pixel is a newt (one-channel models). @default 0.5 */
  threshold?: number;
  /** Test on the mean prediction over the 8 flips and quarter-turns. @default false */
  flipAverage?: boolean;
  /** Test at this input size with the same weights (0: the model's). @default 0 */
  testSize?: number;
  /** The network's builder, needed for `testSize`. */
  build?: (size: number) => tf.LayersModel;
  /** The command to run next and why, printed just before the metrics line. */
  next?: string;
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
 * `prediction` (painted classes) and `ground truth`. A network whose output
 * is smaller than its input (UNet) is shown on the centre of the photo that
 * its output covers.
 *
 * @param model The trained model, input `[batch, size, size, 3]` in [0, 1].
 * @param dataDir The dataset folder.
 * @param options Names, folders, threshold and test size.
 * @returns The metrics and the figure paths.
 * @throws {UserError} When the test split cannot be read, or `testSize` cannot work.
 *
 * @example
 * ```ts ignore
 * // In exercises/semaseg_test.ts: writes answers/semaseg_test_<photo>.png and ends with
 * // test mIoU 0.712 (background 0.80, akahara 0.70, madara 0.64) pixel accuracy 0.861
 * const tested = await testAndShow(model, dataDir, { name: "semaseg_test", mode: "classes", out });
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
  const test = await loadSplit(dataDir, "test", { mode: options.mode, size });
  try {
    return await showTest(atSize, test, options);
  } finally {
    test.images.dispose();
    test.masks.dispose();
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
    threshold: options.threshold ?? 0.5,
    flipAverage: options.flipAverage,
  });
  const figures: string[] = [];
  try {
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
          const grey = (map: tf.Tensor2D) =>
            tf.expandDims(tf.cast(map, "float32"), 2) as tf.Tensor3D; // [out, out, 1]
          return [
            input,
            { title: "predicted", image: pick(evaluation.probabilities) as tf.Tensor3D },
            { title: "after binarization", image: grey(classMap) },
            { title: "ground truth", image: grey(truth) },
          ];
        }
        return [
          input,
          { title: "prediction", image: paintClasses(classMap) },
          { title: "ground truth", image: paintClasses(truth) },
        ];
      });
      try {
        await writeFigure(path, panels, { title: `${options.name}: ${data.names[index]}` });
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
