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
import { runMain } from "../lib/errors.ts";
import { nextStep, TEST_FLAGS } from "../lib/exercise_flags.ts";
import type { TestedRun } from "../lib/test_figures.ts";
import { CLASSES, paintClasses } from "./semaseg_dataset.ts";
import { Mynet } from "./semaseg_loss.ts";

const NEXT = "deno task nearest  (an encoder-decoder: pool, then upsample by nearest neighbour)";

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

/**
 * Tests the segmentation network on the test photos.
 *
 * @param args Command-line arguments.
 * @returns The metrics and the figure paths.
 */
export async function run(args: string[]): Promise<TestedRun> {
  const { parseFlags } = await import("../lib/flags.ts"); // the command line: not in the page
  const flags = parseFlags(args, TEST_FLAGS, {
    usage: "deno task semaseg_test [flags]",
    summary: "Test the segmentation network trained by `deno task semaseg_loss`: figures and mIoU.",
  });
  // The backend, the files and the figures, imported here: the page imports the lesson alone
  const [{ setupBackend }, { resolveDataDir }, { testAndShow }, { loadTrained, trainCommand }] =
    await Promise.all([
      import("../engine/mod.ts"),
      import("../lib/data_dir.ts"),
      import("../lib/test_figures.ts"),
      import("../lib/train_and_save.ts"),
    ]);
  await setupBackend(flags.backend);
  const command = trainCommand("semaseg_loss", flags.checkpoint); // named in messages
  const dataDir = await resolveDataDir(flags.data);
  // Network: the checkpoint semaseg_loss saved
  const model = await loadTrained(flags.checkpoint ?? "checkpoints/semaseg_loss", {
    network: "semaseg",
    size: flags.size,
    command,
    dataDir,
  });
  // Test: the argmax class of each pixel, painted; a figure per photo, then the mIoU
  try {
    return await testAndShow(model, dataDir, {
      ...flags,
      name: "semaseg_test",
      mode: CLASSES,
      classify: argmaxClasses,
      paint: paintClasses,
      build: (size) => Mynet(size),
      next: nextStep(NEXT, flags.data),
    });
  } finally {
    model.dispose();
  }
}

if (import.meta.main) await runMain(async () => void await run(Deno.args));
