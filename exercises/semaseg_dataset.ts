/**
 * Exercise 4, semaseg_dataset: load the training photos and turn each mask
 * into a class index per pixel (0 background, 1 akahara, 2 madara), then
 * show every photo beside its class map painted in the dataset's colours.
 *
 * Run: `deno task semaseg_dataset [--data DIR] [--size 64] [--out answers]`
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
import { paintClasses } from "../lib/palette.ts";
import { photoFigurePath } from "../lib/output_files.ts";
import { relative } from "../lib/path.ts";

const FLAGS = { ...DATA_FLAGS };

/**
 * Writes `<out>/semaseg_dataset_<image>.png` for every training photo (input
 * beside its class map: background black, akahara (128, 0, 0), madara
 * (0, 128, 0)) and prints a summary per class.
 *
 * @param args Command-line arguments.
 * @returns A promise that resolves when every figure is written.
 */
export async function run(args: string[]): Promise<void> {
  const flags = parseFlags(args, FLAGS, {
    usage: "deno task semaseg_dataset [flags]",
    summary: "Loads the training photos, maps their masks to class indices " +
      "(0 background, 1 akahara, 2 madara) and writes a figure per photo.",
  });
  tf.enableProdMode();
  const dir = await resolveDataDir(flags.data);
  const dataset = await loadDataset(dir, { split: "train", size: flags.size, mode: "classes" });
  console.log(
    `Loaded ${dataset.names.length} training photos from ${
      relative(Deno.cwd(), dir) || "."
    } at ${flags.size}x${flags.size}`,
  );

  for (const [index, name] of dataset.names.entries()) {
    const [image, classMap] = tf.tidy(() => [
      tf.squeeze(tf.slice(dataset.images, index, 1), [0]) as tf.Tensor3D, // [size, size, 3]
      paintClasses(tf.squeeze(tf.slice(dataset.masks, index, 1), [0]) as tf.Tensor2D), // [size, size, 3]
    ]);
    const path = photoFigurePath(flags.out, "semaseg_dataset", name, dataset.folders?.[index]);
    await writeFigure(path, [
      { title: "input", image: image as tf.Tensor3D },
      { title: "class map", image: classMap as tf.Tensor3D },
    ]);
    tf.dispose([image, classMap]);
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
    `next: ${
      nextStep("deno task semaseg_loss  (train a network to predict these class maps)", flags.data)
    }`,
  );
}

if (import.meta.main) await runMain(() => run(Deno.args));
