/**
 * Exercise 3, bin_test: loads the network `deno task bin_loss` trained,
 * predicts every test photo and writes a figure per photo with the input,
 * the predicted probability (grey), the mask after binarization (a pixel is
 * a newt where the probability is at least 0.5, `--threshold`) and the
 * ground truth; prints IoU and pixel accuracy.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { runTest } from "../lib/commands.ts";
import { runMain } from "../lib/errors.ts";
import type { FlagDefs } from "../lib/flag_defs.ts";
import type { TestedRun } from "../lib/test_figures.ts";
import { BINARY, paintBinary } from "./bin_dataset.ts";
import { Mynet } from "./bin_loss.ts";

/** The flag of this exercise, beside the flags of every test. */
const FLAGS = {
  threshold: {
    type: "number",
    default: 0.5,
    min: 0,
    max: 1,
    help: "Probability at or above which a pixel is a newt",
  },
} as const satisfies FlagDefs;

/**
 * The lesson: a pixel is a newt (1) where the network's probability is at
 * least the threshold, background (0) elsewhere.
 *
 * @param probabilities Shape `[n, height, width, 1]`, the sigmoid's output.
 * @param level The threshold.
 * @returns Shape `[n, height, width]`, int32 0 or 1.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { threshold } from "./bin_test.ts";
 * import { assertEquals } from "../lib/assert.ts";
 * await tf.setBackend("cpu");
 * const probabilities = tf.tensor4d([0.2, 0.5, 0.9], [1, 1, 3, 1]);
 * assertEquals(threshold(probabilities).arraySync(), [[[0, 1, 1]]]);
 * assertEquals(threshold(probabilities, 0.95).arraySync(), [[[0, 0, 0]]]);
 * ```
 */
export function threshold(probabilities: tf.Tensor4D, level = 0.5): tf.Tensor3D {
  return tf.tidy(() => {
    const probability = tf.squeeze(probabilities, [3]); // [n, height, width]
    return tf.cast(tf.greaterEqual(probability, level), "int32") as tf.Tensor3D;
  });
}

/** Tests the checkpoint bin_loss saved: `deno task bin_test --help` lists the flags. */
export const run = (args: string[]): Promise<TestedRun> =>
  runTest(args, {
    name: "bin_test",
    summary: "Test the binarization network trained by `deno task bin_loss`: figures and IoU.",
    trainer: "bin_loss",
    network: "bin",
    flags: FLAGS,
    build: (size) => Mynet(size),
    mode: BINARY, // masks binarized
    // Test: the probability, binarized at --threshold, a figure per photo, then the IoU
    classify: (flags) => (probabilities) => threshold(probabilities, flags.threshold),
    paint: paintBinary,
    next: "deno task semaseg_dataset  (three classes: background, akahara, madara)",
  });

if (import.meta.main) await runMain(async () => void await run(Deno.args));
