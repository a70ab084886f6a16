/**
 * The synthetic newt set as files, the edge of `synthetic_newts.ts` (whose
 * drawing is platform-neutral): photos as JPEG and masks as PNG in the Imori
 * layout, with `synthetic.json`. `data_dir.ts` writes it on first use.
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
 * (`{train,test}/{images,seg_images}/{akahara,madara}/<kind>_0001.{jpg,png}`,
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
  const { seed = 1, trainPerClass = 8, testPerClass = 3, quality = 90 } = options;
  await Deno.mkdir(dir);
  for (const split of ["train", "test"] as const) {
    for (const pair of syntheticPairs(split, options)) {
      // The pair's paths are relative to the set, under synthetic/.
      const imagePath = join(dir, pair.imageFile.replace(/^synthetic\//, ""));
      const maskPath = join(dir, pair.maskFile.replace(/^synthetic\//, ""));
      await Deno.mkdir(dirname(imagePath), { recursive: true });
      await Deno.mkdir(dirname(maskPath), { recursive: true });
      await Deno.writeFile(imagePath, await encodeImage(pair.image, { format: "jpeg", quality }));
      await Deno.writeFile(maskPath, await encodeImage(pair.mask));
    }
  }
  await Deno.writeTextFile(
    join(dir, "synthetic.json"),
    JSON.stringify({ version: SYNTHETIC_VERSION, seed, trainPerClass, testPerClass, quality }) +
      "\n",
  );
}
