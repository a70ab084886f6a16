/**
 * The photos the training page trains on besides the synthetic newts: a
 * folder in the Imori layout that the user drops (or picks) in the page, or
 * the dataset `deno task serve --data <folder>` serves next to the page. The
 * files are paired as the dataset reader pairs them (`lib/dataset_layout.ts`)
 * and decoded as it decodes them (`decode.ts`); the masks' colours are read
 * by the same code (`lib/dataset_pixels.ts`), so the same folder is refused in
 * the same words here and in Deno. Runs in the training worker.
 *
 * @module
 */
import { pairLayout } from "../lib/dataset_layout.ts";
import type { PhotoPair } from "../lib/dataset_pixels.ts";
import { UserError } from "../lib/errors.ts";
import { decodeFile } from "./decode.ts";
import type { LessonData } from "./training.ts";

/** One file of a dropped folder. */
export interface DroppedFile {
  /** Its path with the folder's name first, e.g. `imori/train/images/akahara/akahara_0001.jpg`
   * (a `File`'s `webkitRelativePath`). */
  path: string;
  /** Its bytes. */
  file: Blob;
}

/** The folder's name and the paths inside it, from paths that all start with the folder. */
function splitRoot(paths: readonly string[]): { root: string; inside: string[] } {
  const root = paths[0]?.split("/")[0] ?? "";
  return {
    root,
    inside: paths.map((path) => path.startsWith(`${root}/`) ? path.slice(root.length + 1) : path),
  };
}

/**
 * Pairs and decodes both splits of a folder's files, one pair after the other.
 *
 * @param root The folder's name, first in every path named.
 * @param paths Every file's path inside the folder.
 * @param open Gives a file's bytes from its path (with the folder's name first).
 * @param onProgress Called with how many pairs are decoded of how many.
 * @returns The pairs of both splits.
 */
async function decodeLayout(
  root: string,
  paths: readonly string[],
  open: (path: string) => Promise<Blob>,
  onProgress: (done: number, total: number) => void,
): Promise<LessonData> {
  const layout = { train: pairLayout(root, paths, "train"), test: pairLayout(root, paths, "test") };
  const total = layout.train.length + layout.test.length;
  let done = 0;
  const decode = async (split: "train" | "test") => {
    const pairs: PhotoPair[] = [];
    for (const pair of layout[split]) {
      const [image, mask] = [
        await decodeFile(await open(pair.image), { what: "image", path: pair.image }),
        await decodeFile(await open(pair.mask), { what: "mask", path: pair.mask }),
      ];
      pairs.push({
        name: pair.name,
        folder: pair.folder,
        image,
        mask,
        imageFile: pair.image,
        maskFile: pair.mask,
      });
      onProgress(++done, total);
    }
    return pairs;
  };
  return { name: root, train: await decode("train"), test: await decode("test") };
}

/**
 * The photos of a folder the user dropped or picked, in the Imori layout.
 *
 * @param files Every file of the folder, with its path (the folder's name first).
 * @param onProgress Called with how many pairs are decoded of how many. @default {nothing}
 * @returns Both splits, named by the folder.
 * @throws {UserError} As the dataset reader: a split with no photo, a photo with no mask, a file
 *   that is no image (each naming the file and the fix).
 *
 * @example
 * ```ts ignore
 * // In the worker, from the files of an <input type="file" webkitdirectory>:
 * const data = await droppedData(files.map((file) => ({ path: file.webkitRelativePath, file })));
 * ```
 */
export async function droppedData(
  files: readonly DroppedFile[],
  onProgress: (done: number, total: number) => void = () => {},
): Promise<LessonData> {
  if (files.length === 0) {
    throw new UserError(
      "The folder dropped holds no file; drop a folder in the Imori layout " +
        "(train/images/akahara/akahara_0001.jpg with train/seg_images/akahara/akahara_0001.png)",
    );
  }
  const byPath = new Map(files.map((one) => [one.path, one.file]));
  const { root, inside } = splitRoot(files.map((one) => one.path));
  return await decodeLayout(root, inside, (path) => Promise.resolve(byPath.get(path)!), onProgress);
}

/** What `/data/` of `deno task serve` answers: the served folder's name and files. */
export interface ServedListing {
  /** The folder's name, e.g. `imori`; null when the server serves none. */
  name: string | null;
  /** Every file's path inside it, `/`-separated. */
  files: string[];
}

/**
 * The photos of the dataset the server serves next to the page (`deno task serve --data`).
 *
 * @param base The page's address, e.g. `http://127.0.0.1:8000/`.
 * @param onProgress Called with how many pairs are decoded of how many. @default {nothing}
 * @returns Both splits, named by the served folder.
 * @throws {UserError} When the server serves no dataset, and as {@linkcode droppedData}.
 */
export async function servedData(
  base: string,
  onProgress: (done: number, total: number) => void = () => {},
): Promise<LessonData> {
  const response = await fetch(new URL("data/", base));
  const listing = response.ok ? await response.json() as ServedListing : undefined;
  if (!listing?.name) {
    throw new UserError(
      "The server serves no dataset; start it with `deno task serve --data data/imori` " +
        "(after `deno task download`), or pick the synthetic newts or a folder of yours",
    );
  }
  const open = async (path: string) => {
    const url = new URL(`data/${path.split("/").slice(1).map(encodeURIComponent).join("/")}`, base);
    const file = await fetch(url);
    if (!file.ok) throw new UserError(`Cannot read ${path}: the server answered ${file.status}`);
    return await file.blob();
  };
  const name = listing.name;
  return await decodeLayout(name, listing.files, open, onProgress);
}
