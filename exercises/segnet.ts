/**
 * Exercise 12, segnet: a VGG16-style encoder, (2, 2, 3, 3, 3) CBR convs at
 * (64, 128, 256, 512, 512) filters, each level ending in a 2x2 max-pooling
 * that keeps where each maximum was; the decoder mirrors it, each level
 * starting with a max-unpooling that puts the values back at those positions
 * (zeros elsewhere), then (3, 3, 3, 2, 2) CBR convs at (512, 256, 128, 64, 64)
 * filters; a 1x1 conv to three classes with softmax. The input size must be a
 * multiple of 32 (five poolings).
 *
 * Trains, then tests, in one run: `--no-train` tests the saved checkpoint,
 * `--no-test` only trains. `--recipe tuned` trains with the UNet-like
 * network's tuned recipe instead of the tutorial's protocol.
 *
 * @module
 */
import { runMain } from "../lib/errors.ts";
import type { TrainTestRun } from "../lib/exercise.ts";
import { runRecipeExercise } from "../lib/recipe_exercise.ts";

/**
 * Trains SegNet, then tests it on the test photos.
 *
 * @param args Command-line arguments.
 * @returns The model (the caller disposes it), the training run and the test metrics.
 */
export function run(args: string[]): Promise<TrainTestRun> {
  return runRecipeExercise({
    model: "segnet",
    usage: "deno task segnet [flags]",
    summary: "Train and test SegNet (VGG16 encoder, unpooling with the max-pool positions).",
    next: { command: "deno task unet", why: "the paper's UNet: unpadded convs and crops" },
  }, args);
}

if (import.meta.main) await runMain(async () => void (await run(Deno.args)).model?.dispose());
