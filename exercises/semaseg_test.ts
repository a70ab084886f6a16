/**
 * Exercise 6, semaseg_test: loads the network `deno task semaseg_loss`
 * trained, predicts every test photo, takes the most probable class of each
 * pixel (argmax over the softmax) and paints it: akahara (128, 0, 0), madara
 * (0, 128, 0), background black. Writes a figure per photo with the input,
 * the prediction and the ground truth; prints the IoU of each class and
 * their mean (mIoU).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { runTest } from "../lib/commands.ts";
import { runMain } from "../lib/errors.ts";
import type { TestedRun } from "../lib/test_figures.ts";
import { CLASSES, paintClasses } from "./semaseg_dataset.ts";
import { Mynet } from "./semaseg_loss.ts";

/**
 * The lesson: each pixel's class is the one of highest probability (the
 * argmax over the softmax's channels); {@linkcode paintClasses} then paints
 * it in the dataset's colours.
 *
 * @param probabilities Shape `[n, height, width, classes]`, the softmax's output.
 * @returns Shape `[n, height, width]`, int32 class indices.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { argmaxClasses } from "./semaseg_test.ts";
 * import { assertEquals } from "../lib/assert.ts";
 * await tf.setBackend("cpu");
 * const probabilities = tf.tensor4d([0.1, 0.2, 0.7, 0.6, 0.3, 0.1], [1, 1, 2, 3]);
 * assertEquals(argmaxClasses(probabilities).arraySync(), [[[2, 0]]]);
 * ```
 */
export function argmaxClasses(probabilities: tf.Tensor4D): tf.Tensor3D {
  return tf.argMax(probabilities, 3); // [n, height, width]
}

/** Tests the checkpoint semaseg_loss saved: `deno task semaseg_test --help` lists the flags. */
export const run = (args: string[]): Promise<TestedRun> =>
  runTest(args, {
    name: "semaseg_test",
    summary: "Test the segmentation network trained by `deno task semaseg_loss`: figures and mIoU.",
    trainer: "semaseg_loss",
    network: "semaseg",
    build: (size) => Mynet(size),
    mode: CLASSES, // masks as class indices
    // Test: the argmax class of each pixel, painted; a figure per photo, then the mIoU
    classify: () => argmaxClasses,
    paint: paintClasses,
    next: "deno task nearest  (an encoder-decoder: pool, then upsample by nearest neighbour)",
  });

if (import.meta.main) await runMain(async () => void await run(Deno.args));
