/**
 * Exercise 1, bin_dataset: load the training photos and turn each mask into
 * a binary map (1 where a newt is, 0 elsewhere), then show every pair.
 *
 * Run: `deno task bin_dataset [--data DIR] [--size 64] [--out answers]`
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import { countClasses, loadDataset } from "../lib/dataset.ts";
import { resolveDataDir } from "../lib/data_dir.ts";
import { runMain } from "../lib/errors.ts";
import { writeFigure } from "../lib/figure.ts";
import { DATA_FLAGS, parseFlags } from "../lib/flags.ts";
import { nextStep } from "../lib/exercise_flags.ts";
import { photoFigurePath } from "../lib/output_files.ts";
import { relative } from "../lib/path.ts";

const FLAGS = { ...DATA_FLAGS };

/**
 * Writes `<out>/bin_dataset_<image>.png` for every training photo (input
 * beside its mask, newt white and background black) and prints a summary.
 *
 * @param args Command-line arguments.
 * @returns A promise that resolves when every figure is written.
 */
export async function run(args: string[]): Promise<void> {
  const flags = parseFlags(args, FLAGS, {
    usage: "deno task bin_dataset [flags]",
    summary: "Loads the training photos, binarizes their masks (1 newt, 0 background) " +
      "and writes a figure per photo.",
  });
  tf.enableProdMode();
  const dir = await resolveDataDir(flags.data);
  const dataset = await loadDataset(dir, { split: "train", size: flags.size, mode: "binary" });
  console.log(
    `Loaded ${dataset.names.length} training photos from ${
      relative(Deno.cwd(), dir) || "."
    } at ${flags.size}x${flags.size}`,
  );

  for (const [index, name] of dataset.names.entries()) {
    const [image, mask] = tf.tidy(() => [
      tf.squeeze(tf.slice(dataset.images, index, 1), [0]) as tf.Tensor3D, // [size, size, 3]
      tf.cast(
        tf.reshape(tf.slice(dataset.masks, index, 1), [flags.size, flags.size, 1]),
        "float32",
      ),
    ]);
    const path = photoFigurePath(flags.out, "bin_dataset", name, dataset.folders?.[index]);
    await writeFigure(path, [
      { title: "input", image },
      { title: "mask (newt = 1)", image: mask as tf.Tensor3D },
    ]);
    tf.dispose([image, mask]);
    console.log(`Wrote ${path}`);
  }

  for (const { name, images, share } of countClasses(dataset.masks, dataset.classNames)) {
    console.log(
      `${name}: in ${images} of ${dataset.names.length} photos, ${
        (share * 100).toFixed(1)
      }% of pixels`,
    );
  }
  tf.dispose([dataset.images, dataset.masks]);
  console.log(
    `next: ${nextStep("deno task bin_loss  (train a network to predict these masks)", flags.data)}`,
  );
}

if (import.meta.main) await runMain(() => run(Deno.args));
