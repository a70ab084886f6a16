/**
 * Exercise 3, bin_test: loads the network `deno task bin_loss` trained,
 * predicts every test photo and writes a figure per photo with the input,
 * the predicted probability (grey), the mask after binarization (threshold
 * 0.5, a flag) and the ground truth; prints IoU and pixel accuracy.
 *
 * @module
 */
import { runMain } from "../lib/errors.ts";
import {
  EXERCISE_FLAGS,
  type ExerciseSpec,
  loadTrained,
  prepareRun,
  TEST_FLAGS,
  testAndShow,
  type TestedRun,
} from "../lib/exercise.ts";
import { parseFlags } from "../lib/flags.ts";

const SPEC: ExerciseSpec = {
  exercise: "bin_test",
  trainer: "bin_loss",
  model: "bin",
  mode: "binary",
  next: { command: "deno task semaseg_loss", why: "the same network with three classes" },
};

/**
 * Tests the binarization network on the test photos.
 *
 * @param args Command-line arguments.
 * @returns The metrics and the figure paths.
 */
export async function run(args: string[]): Promise<TestedRun> {
  // Settings
  const flags = parseFlags(args, { ...EXERCISE_FLAGS, ...TEST_FLAGS }, {
    usage: "deno task bin_test [flags]",
    summary: "Test the binarization network trained by `deno task bin_loss`: figures and IoU.",
  });
  const context = await prepareRun(flags);
  // Model: the checkpoint of bin_loss
  const model = await loadTrained(SPEC, flags);
  // Test: the test photos, masks 1 where newt; a figure per photo, then the metrics line
  try {
    return await testAndShow(SPEC, model, context, flags);
  } finally {
    model.dispose();
  }
}

if (import.meta.main) await runMain(async () => void await run(Deno.args));
