/**
 * Exercise 6, semaseg_test: loads the network `deno task semaseg_loss`
 * trained, takes the most probable class of every pixel of every test photo,
 * and writes a figure per photo with the input, the prediction painted in
 * the class colours (akahara (128, 0, 0), madara (0, 128, 0), background
 * black) and the ground truth; prints per-class IoU and mIoU.
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
  exercise: "semaseg_test",
  trainer: "semaseg_loss",
  model: "semaseg",
  mode: "classes",
  next: { command: "deno task nearest", why: "an encoder-decoder with nearest upsampling" },
};

/**
 * Tests the three-class segmentation network on the test photos.
 *
 * @param args Command-line arguments.
 * @returns The metrics and the figure paths.
 */
export async function run(args: string[]): Promise<TestedRun> {
  // Settings
  const flags = parseFlags(args, { ...EXERCISE_FLAGS, flipAverage: TEST_FLAGS.flipAverage }, {
    usage: "deno task semaseg_test [flags]",
    summary: "Test the segmentation network trained by `deno task semaseg_loss`: figures and mIoU.",
  });
  const context = await prepareRun(flags);
  // Model: the checkpoint of semaseg_loss
  const model = await loadTrained(SPEC, flags);
  // Test: the test photos, masks of class indices; a figure per photo, then the metrics line
  try {
    return await testAndShow(SPEC, model, context, flags);
  } finally {
    model.dispose();
  }
}

if (import.meta.main) await runMain(async () => void await run(Deno.args));
