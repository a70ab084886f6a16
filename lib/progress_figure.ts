/**
 * A picture of training: the prediction for one test photo at a few points
 * of a run (iteration 0, 10%, 25%, 50% and the end), beside the photo and its
 * ground truth, each titled with the iteration and the training loss there.
 * Every training exercise writes one, `<out>/<name>_progress.png`.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { classesOf } from "./classes.js";
import type { Classify } from "./evaluate.ts";
import type { MaskMode } from "./mask_classes.ts";
import { classLegend, type LegendEntry, writeFigure } from "./figure.ts";
import { cropMasks } from "./losses.ts";
import type { Paint } from "./test_figures.ts";

/** The photo to watch and how its prediction is shown; the tensors stay the caller's. */
export interface WatchedPhoto {
  /** Its name, e.g. `akahara_0011`, for the figure's title. */
  name: string;
  /** Shape `[size, size, 3]` in [0, 1], at the model's input size. */
  image: tf.Tensor3D;
  /** Shape `[size, size]`, its class indices. */
  mask: tf.Tensor2D;
  /**
   * Probabilities to classes: the exercise's lesson (threshold or argmax). Without it (the
   * exercises that come before that lesson) the figure shows the probabilities themselves:
   * grey for one channel, each class's colour weighted by its probability for several.
   */
  classify?: Classify;
  /** Classes to a picture: the exercise's lesson. */
  paint: Paint;
  /** How the masks are read: its class names label the figure's key. */
  mode: Pick<MaskMode, "classNames">;
}

/**
 * The iterations a progress figure shows: 0, 10%, 25%, 50% and the last,
 * those before `start` (a resumed run) left out.
 *
 * @param iters The last iteration.
 * @param start Iterations already done.
 * @returns Distinct iterations, increasing.
 *
 * @example
 * ```ts
 * import { watchPoints } from "./progress_figure.ts";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(watchPoints(500), [0, 50, 125, 250, 500]);
 * assertEquals(watchPoints(3), [0, 1, 2, 3]);
 * assertEquals(watchPoints(500, 200), [200, 250, 500]);
 * ```
 */
export function watchPoints(iters: number, start = 0): number[] {
  const points = [0, 0.1, 0.25, 0.5, 1].map((share) => Math.round(share * iters));
  return [...new Set([start, ...points])].filter((point) => point >= start).sort((a, b) => a - b);
}

/**
 * Collects the panels of a progress figure while a model trains: call
 * {@linkcode ProgressFigure.see} at every iteration (it predicts only at the
 * watched ones) and {@linkcode ProgressFigure.write} at the end.
 *
 * @example
 * ```ts ignore
 * const watch = new ProgressFigure(photo, watchPoints(500));
 * watch.see(model, 0); // before training
 * // ... in the loop: watch.see(model, iteration, loss)
 * await watch.write("answers/nearest_progress.png", "nearest");
 * ```
 */
export class ProgressFigure {
  readonly #photo: WatchedPhoto;
  /** The key of the class colours, made at the first write. */
  #legend?: LegendEntry[];
  readonly #points: Set<number>;
  readonly #panels: { title: string; image: tf.Tensor3D }[] = [];

  /**
   * @param photo The photo to watch.
   * @param points The iterations to show, from {@linkcode watchPoints}.
   */
  constructor(photo: WatchedPhoto, points: number[]) {
    this.#photo = photo;
    this.#points = new Set(points);
  }

  /**
   * Predicts the photo (inference mode, as the test does) when `iteration`
   * is watched, and keeps the painted classes.
   *
   * @param model The model being trained.
   * @param iteration The iterations done.
   * @param loss The training loss of that iteration, if any.
   * @param force Show it even when not watched (the final weights).
   */
  see(model: tf.LayersModel, iteration: number, loss?: number, force = false): void {
    if (!force && !this.#points.has(iteration)) return;
    this.#points.delete(iteration);
    const image = tf.tidy(() => {
      const probabilities = model.predict(tf.expandDims(this.#photo.image, 0)) as tf.Tensor4D;
      const { classify, paint } = this.#photo;
      if (!classify) return softPaint(tf.squeeze(probabilities, [0]) as tf.Tensor3D);
      return paint(tf.squeeze(classify(probabilities), [0]) as tf.Tensor2D); // [out, out, 3]
    });
    const title = `iter ${iteration}` + (loss === undefined ? "" : ` loss ${loss.toFixed(3)}`);
    this.#panels.push({ title, image });
  }

  /**
   * Writes the figure: the photo and its ground truth (the centre the output
   * covers, for a smaller output), then the predictions; frees the panels.
   *
   * @param path The PNG file.
   * @param title The figure's title, e.g. the exercise.
   * @returns The path written, or `undefined` when nothing was seen.
   */
  async write(path: string, title: string): Promise<string | undefined> {
    if (this.#panels.length === 0) return undefined;
    const [height, width] = this.#panels[0]!.image.shape;
    const context = tf.tidy(() => {
      const [size] = this.#photo.mask.shape;
      const top = Math.floor((size - height) / 2), left = Math.floor((size - width) / 2);
      const truth = cropMasks(tf.expandDims(this.#photo.mask, 0) as tf.Tensor3D, height, width);
      return [
        {
          title: height < size ? `input (centre)` : "input",
          image: tf.slice(this.#photo.image, [top, left, 0], [height, width, 3]) as tf.Tensor3D,
        },
        {
          title: "ground truth",
          image: this.#photo.paint(tf.squeeze(truth, [0]) as tf.Tensor2D),
        },
      ];
    });
    try {
      await writeFigure(path, [...context, ...this.#panels], {
        title: `${title}: prediction for ${this.#photo.name} during training`,
        legend: this.#legend ??= await classLegend(this.#photo.mode.classNames, this.#photo.paint),
      });
    } finally {
      tf.dispose([...context, ...this.#panels].map((panel) => panel.image));
      this.#panels.length = 0;
    }
    return path;
  }
}

/**
 * Probabilities as a picture: one channel as grey, several as the mean of the
 * class colours weighted by their probabilities (a sure pixel has its
 * class's colour, an unsure one a mix).
 *
 * @param probabilities Shape `[height, width, classes]`.
 * @returns Shape `[height, width, 1 or 3]`, float32 in [0, 1].
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { softPaint } from "./progress_figure.ts";
 * import { assertEquals } from "./assert.ts";
 * const painted = softPaint(tf.tensor3d([0, 1, 0], [1, 1, 3]));
 * assertEquals(Array.from(painted.dataSync()).map((v) => Math.round(v * 255)), [128, 0, 0]);
 * ```
 */
export function softPaint(probabilities: tf.Tensor3D): tf.Tensor3D {
  const channels = probabilities.shape[2];
  if (channels === 1) return probabilities.clone();
  return tf.tidy(() => {
    const colors = classesOf(channels).colors.flat();
    const palette = tf.div(tf.tensor2d(colors, [channels, 3], "float32"), 255); // [classes, 3]
    const [height, width] = probabilities.shape;
    const flat = tf.reshape(probabilities, [height * width, channels]);
    return tf.reshape(tf.matMul(flat, palette), [height, width, 3]) as tf.Tensor3D;
  });
}
