/**
 * Exercise 3, bin_test: loads the network `deno task bin_loss` trained,
 * predicts every test photo and writes a figure per photo with the input,
 * the predicted probability (grey), the mask after binarization (a pixel is
 * a newt where the probability is at least 0.5, `--threshold`) and the
 * ground truth; prints IoU and pixel accuracy.
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
import { binNet } from "./bin_loss.ts";

const NEXT = "deno task semaseg_dataset  (three classes: background, akahara, madara)";

/**
 * Tests the binarization network on the test photos.
 *
 * @param args Command-line arguments.
 * @returns The metrics and the figure paths.
 */
export async function run(args: string[]): Promise<TestedRun> {
  const flags = parseFlags(args, TEST_FLAGS, {
    usage: "deno task bin_test [flags]",
    summary: "Test the binarization network trained by `deno task bin_loss`: figures and IoU.",
  });
  await setupBackend(flags.backend);
  const command = trainCommand("bin_loss", flags.checkpoint); // named in messages
  const dataDir = await resolveDataDir(flags.data);
  // Network: the checkpoint bin_loss saved
  const model = await loadTrained(flags.checkpoint ?? "checkpoints/bin_loss", {
    network: "bin",
    size: flags.size,
    command,
  });
  // Test: probability, binarization at --threshold, a figure per photo, then IoU
  try {
    return await testAndShow(model, dataDir, {
      ...flags,
      name: "bin_test",
      mode: "binary",
      build: (size) => binNet(size),
      next: nextStep(NEXT, flags.data),
    });
  } finally {
    model.dispose();
  }
}

if (import.meta.main) await runMain(async () => void await run(Deno.args));
