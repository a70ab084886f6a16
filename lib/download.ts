/**
 * Downloads the real Imori dataset from the DeepLearningMugenKnock
 * repository on GitHub, file by file: each is skipped when already present
 * and decodable (so an interrupted download resumes), otherwise fetched into
 * a temporary file, checked to decode as an image, and renamed into place.
 *
 * @module
 */
import sharp from "sharp";
import { UserError } from "./errors.ts";
import { basename, dirname, join } from "./path.ts";

/** Raw-file address of the repository's `Dataset/` folder. */
export const IMORI_BASE_URL =
  "https://raw.githubusercontent.com/yoyoyo-yo/DeepLearningMugenKnock/master/Dataset";

/**
 * The files of the Imori dataset, relative to its root: 16 training and 6
 * test photos (`.jpg`) with their masks (`.png`).
 *
 * @returns Relative paths such as `train/images/akahara/akahara_0001.jpg`.
 *
 * @example
 * ```ts
 * import { imoriFiles } from "./download.ts";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(imoriFiles().length, 44);
 * assertEquals(imoriFiles()[0], "train/images/akahara/akahara_0001.jpg");
 * ```
 */
export function imoriFiles(): string[] {
  const files: string[] = [];
  for (const [split, first, last] of [["train", 1, 8], ["test", 9, 11]] as const) {
    for (const folder of ["images", "seg_images"]) {
      for (const kind of ["akahara", "madara"]) {
        for (let number = first; number <= last; number++) {
          const name = `${kind}_${String(number).padStart(4, "0")}`;
          files.push(`${split}/${folder}/${kind}/${name}.${folder === "images" ? "jpg" : "png"}`);
        }
      }
    }
  }
  return files;
}

/** Where {@linkcode downloadImori} fetches from and writes to. */
export interface DownloadOptions {
  /** Address of the dataset root. @default IMORI_BASE_URL */
  baseUrl?: string;
  /** Folder to write. @default "data/imori" */
  out?: string;
  /** Called after each file with its path and whether it was fetched or already there. */
  onFile?: (path: string, status: "downloaded" | "present") => void;
}

/** What {@linkcode downloadImori} did. */
export interface DownloadResult {
  /** Files fetched now. */
  downloaded: number;
  /** Files already present and decodable. */
  present: number;
}

/**
 * Downloads the Imori dataset (resumable, each file written atomically and
 * checked to decode).
 *
 * @param options Base address, output folder and a progress callback.
 * @returns How many files were fetched and how many were already there.
 * @throws {UserError} When offline, on an HTTP error, or when a file does not decode.
 *
 * @example
 * ```ts
 * import { downloadImori } from "./download.ts";
 * import { assertRejects } from "./assert.ts";
 * const out = await Deno.makeTempDir();
 * await assertRejects(
 *   downloadImori({ baseUrl: "http://127.0.0.1:9/none", out }),
 *   /Cannot download http:\/\/127.0.0.1:9\/none\/train/,
 * );
 * await Deno.remove(out, { recursive: true });
 * ```
 */
export async function downloadImori(options: DownloadOptions = {}): Promise<DownloadResult> {
  const { baseUrl = IMORI_BASE_URL, out = join("data", "imori"), onFile } = options;
  const result: DownloadResult = { downloaded: 0, present: 0 };
  for (const file of imoriFiles()) {
    const path = join(out, ...file.split("/"));
    if (await decodes(path)) {
      result.present++;
      onFile?.(path, "present");
      continue;
    }
    const url = `${baseUrl.replace(/\/+$/, "")}/${file}`;
    const bytes = await fetchBytes(url);
    if (!(await decodesBytes(bytes))) {
      throw new UserError(
        `Cannot download ${url}: the server sent something that is not an image; ` +
          "check --base-url (it must point at the folder holding train/ and test/)",
      );
    }
    await Deno.mkdir(dirname(path), { recursive: true });
    const temporary = join(dirname(path), `.${basename(path)}.${Deno.pid}.download`);
    await Deno.writeFile(temporary, bytes);
    await Deno.rename(temporary, path);
    result.downloaded++;
    onFile?.(path, "downloaded");
  }
  return result;
}

async function fetchBytes(url: string): Promise<Uint8Array> {
  let response: Response;
  try {
    response = await fetch(url);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
      const host = new URL(url).host;
      throw new UserError(
        `Cannot download ${url}: network access to ${host} is not allowed; run ` +
          `\`deno run --allow-read --allow-write --allow-env --allow-ffi --allow-net=${host} ` +
          `tools/download.ts --base-url ${url.slice(0, url.lastIndexOf("/train/"))}\``,
      );
    }
    const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
    const reason = (cause instanceof Error ? cause.message : String(cause)).split("\n")[0]!
      .replace(/^error sending request for url \([^)]*\): /, "");
    throw new UserError(
      `Cannot download ${url}: ${reason}; check the network connection ` +
        "(or copy the dataset by hand and pass --data)",
    );
  }
  if (!response.ok) {
    await response.body?.cancel();
    throw new UserError(
      `Cannot download ${url}: HTTP ${response.status} ${response.statusText}; ` +
        "check --base-url (it must point at the folder holding train/ and test/)",
    );
  }
  return new Uint8Array(await response.arrayBuffer());
}

async function decodes(path: string): Promise<boolean> {
  try {
    return await decodesBytes(await Deno.readFile(path));
  } catch {
    return false;
  }
}

async function decodesBytes(bytes: Uint8Array): Promise<boolean> {
  if (bytes.length === 0) return false;
  try {
    const { info } = await sharp(bytes).raw().toBuffer({ resolveWithObject: true });
    return info.width > 0 && info.height > 0;
  } catch {
    return false;
  }
}
