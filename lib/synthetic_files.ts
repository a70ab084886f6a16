/**
 * The synthetic newt set as files, the edge of `synthetic_newts.ts` (whose
 * drawing is platform-neutral): photos and masks as PNG in the Imori layout,
 * with `synthetic.json`. `data_dir.ts` writes it on first use.
 *
 * The photos are PNG, not JPEG as Imori's are, so that the files hold the
 * drawn pixels exactly: the training page draws the same set in memory and
 * must train on the same pixels as the Deno scripts that read these files.
 * Training is sensitive enough that JPEG's small changes showed: nearest's
 * 500 iterations (same kernels, seed 0) tested 0.736 from the drawn pixels
 * and 0.838 from the JPEG files of quality 90 (seed 1: 0.763 and 0.831).
 *
 * @module
 */
import { encodeImage } from "./image_io.ts";
import { dirname, join } from "./path.ts";
import {
  SYNTHETIC_VERSION,
  type SyntheticDatasetOptions,
  syntheticPairs,
} from "./synthetic_newts.ts";

/**
 * Draws the synthetic dataset into `dir` in the Imori layout
 * (`{train,test}/{images,seg_images}/{akahara,madara}/<kind>_0001.png`,
 * numbered on from train to test as in Imori) and writes `synthetic.json`
 * with the version and options. `dir` must not exist yet; callers that need
 * atomicity draw into a temporary folder and rename it.
 *
 * @param dir The folder to create.
 * @param options Seed and counts.
 * @returns A promise that resolves when every file is written.
 *
 * @example
 * ```ts
 * import { writeSyntheticDataset } from "./synthetic_files.ts";
 * import { assert } from "./assert.ts";
 * const dir = (await Deno.makeTempDir()) + "/synthetic";
 * await writeSyntheticDataset(dir, { trainPerClass: 1, testPerClass: 0 });
 * assert((await Deno.stat(`${dir}/train/seg_images/madara/madara_0001.png`)).isFile);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeSyntheticDataset(
  dir: string,
  options: SyntheticDatasetOptions = {},
): Promise<void> {
  const { seed = 1, trainPerClass = 8, testPerClass = 3 } = options;
  await Deno.mkdir(dir);
  for (const split of ["train", "test"] as const) {
    for (const pair of syntheticPairs(split, options)) {
      // The pair's paths are relative to the set, under synthetic/.
      const imagePath = join(dir, pair.imageFile.replace(/^synthetic\//, ""));
      const maskPath = join(dir, pair.maskFile.replace(/^synthetic\//, ""));
      await Deno.mkdir(dirname(imagePath), { recursive: true });
      await Deno.mkdir(dirname(maskPath), { recursive: true });
      await Deno.writeFile(imagePath, await encodeImage(pair.image)); // PNG: the drawn pixels
      await Deno.writeFile(maskPath, await encodeImage(pair.mask));
    }
  }
  await Deno.writeTextFile(
    join(dir, "synthetic.json"),
    JSON.stringify({ version: SYNTHETIC_VERSION, seed, trainPerClass, testPerClass }) +
      "\n",
  );
}
