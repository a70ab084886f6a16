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
import { setupBackend } from "../engine/mod.ts";
import { resolveDataDir } from "../lib/data_dir.ts";
import { runMain } from "../lib/errors.ts";
import { nextStep, TEST_FLAGS } from "../lib/exercise_flags.ts";
import { parseFlags } from "../lib/flags.ts";
import { testAndShow, type TestedRun } from "../lib/test_figures.ts";
import { loadTrained, trainCommand } from "../lib/train_and_save.ts";
import { semasegNet } from "./semaseg_loss.ts";

const NEXT = "deno task nearest  (an encoder-decoder: pool, then upsample by nearest neighbour)";

/**
 * Tests the segmentation network on the test photos.
 *
 * @param args Command-line arguments.
 * @returns The metrics and the figure paths.
 */
export async function run(args: string[]): Promise<TestedRun> {
  const flags = parseFlags(args, TEST_FLAGS, {
    usage: "deno task semaseg_test [flags]",
    summary: "Test the segmentation network trained by `deno task semaseg_loss`: figures and mIoU.",
  });
  await setupBackend(flags.backend);
  const command = trainCommand("semaseg_loss", flags.checkpoint); // named in messages
  const dataDir = await resolveDataDir(flags.data);
  // Network: the checkpoint semaseg_loss saved
  const model = await loadTrained(flags.checkpoint ?? "checkpoints/semaseg_loss", {
    network: "semaseg",
    size: flags.size,
    command,
  });
  // Test: the argmax class of each pixel, painted; a figure per photo, then the mIoU
  try {
    return await testAndShow(model, dataDir, {
      ...flags,
      name: "semaseg_test",
      mode: "classes",
      build: (size) => semasegNet(size),
      next: nextStep(NEXT, flags.data),
    });
  } finally {
    model.dispose();
  }
}

if (import.meta.main) await runMain(async () => void await run(Deno.args));
