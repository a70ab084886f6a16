/**
 * Exercise 11, unetlike: UNet with padding `same` and a quarter of the
 * filters (16, 32, 64, 128, 256), so input and output are both 64x64. The
 * tutorial asks the user to tune the learning rate and iterations until the
 * segmentation is clean: `--recipe default` is the tutorial's protocol,
 * `--recipe tuned` the recipe found by the search in the README (Adam with a
 * one-cycle schedule, random crops, flips, turns and colour jitter, a larger
 * input). Flags typed on the command line override the recipe's values.
 *
 * Trains, then tests, in one run: `--no-train` tests the saved checkpoint,
 * `--no-test` only trains.
 *
 * @module
 */
import { runMain } from "../lib/errors.ts";
import type { TrainTestRun } from "../lib/exercise.ts";
import { runRecipeExercise } from "../lib/recipe_exercise.ts";

/**
 * Trains the UNet-like network with a recipe, then tests it on the test photos.
 *
 * @param args Command-line arguments.
 * @returns The model (the caller disposes it), the training run and the test metrics.
 */
export function run(args: string[]): Promise<TrainTestRun> {
  return runRecipeExercise({
    model: "unetlike",
    usage: "deno task unetlike [flags]",
    summary: "Train and test the UNet-like network (padding same, 16 to 256 filters).",
    next: { command: "deno task segnet", why: "SegNet: unpooling with the max-pool indices" },
  }, args);
}

if (import.meta.main) await runMain(async () => void (await run(Deno.args)).model?.dispose());
