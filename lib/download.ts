/**
 * Downloads the real Imori dataset from the DeepLearningMugenKnock
 * repository on GitHub, file by file: each is skipped when already present
 * with the SHA-256 listed here (so an interrupted download resumes, and a
 * changed or damaged file is fetched again), otherwise fetched into a
 * temporary file, checked to decode as an image and to have that SHA-256,
 * and renamed into place.
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
 * The SHA-256 of each file of the Imori dataset (hex), by path relative to
 * its root, as the repository holds them (measured on the copy the project's
 * tests read, `../shared/imori`; `tests/download_test.ts` checks they agree).
 *
 * @example
 * ```ts
 * import { IMORI_SHA256, imoriFiles } from "./download.ts";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(Object.keys(IMORI_SHA256).sort(), imoriFiles().sort());
 * ```
 */
export const IMORI_SHA256: Readonly<Record<string, string>> = {
  "train/images/akahara/akahara_0001.jpg":
    "eee4d6a3d75a7858f2da8e00c9ba93231a1e67872684c1b35570684b1dfe5bad",
  "train/images/akahara/akahara_0002.jpg":
    "a091a390405d416dd3aa6b33352f66734f9ebc88d261de4e4dd9b8bb2d509506",
  "train/images/akahara/akahara_0003.jpg":
    "28da9dadd49f7fc98131f95ae9c0f6b22bb499cc6fb6aa81b67a0b6107ddabe6",
  "train/images/akahara/akahara_0004.jpg":
    "8e58f2d0946d04c9a1ca9a0459583358d4407494ce9015778b8a6b1c23e35e16",
  "train/images/akahara/akahara_0005.jpg":
    "422b8e8c7629cca2e4ec03cca43ea263b76df6e30f3d98222d6cde397fd44a16",
  "train/images/akahara/akahara_0006.jpg":
    "60a6d8450ee187d216d7d523090080b9cd372d7fe19bcba098cd05634fc70876",
  "train/images/akahara/akahara_0007.jpg":
    "10204bdb2a39779d42050ba25b74848ec396e6db519f5ffaf78b5741f061646e",
  "train/images/akahara/akahara_0008.jpg":
    "d5882f7e0c5cf4c1ec4f0e17787483773289231c8b38575f41f7e2e770a36ee1",
  "train/images/madara/madara_0001.jpg":
    "d73b567c92170421773ec74cdf1c3af6f90b05fe96120bbcec6dc0dad74feccc",
  "train/images/madara/madara_0002.jpg":
    "7b1d60d7f27d910a38cc4366fd4b5829674f095b0b306e72c573a8aaaca90b7e",
  "train/images/madara/madara_0003.jpg":
    "b5f7ca246d59159cd98a27aca315191e327630711d5727c1a1270cd7ed523dae",
  "train/images/madara/madara_0004.jpg":
    "ff75ed995ac6db419d1ccdd997a8b6c9d0c5300b65f40462a4c7d735f64223b0",
  "train/images/madara/madara_0005.jpg":
    "767d119ef0c3166ef0138ba674febd9e6e3d6488c559c7a571567d6c87762f9e",
  "train/images/madara/madara_0006.jpg":
    "740055461b25cb73aafd6744e73dec997cb13848a58d0b38f9c72f0b0f893f04",
  "train/images/madara/madara_0007.jpg":
    "2935b5b5e46f7c5d2d487ac141cbfcccd6cb6d330ad3584ad8d1b0e448f61f6a",
  "train/images/madara/madara_0008.jpg":
    "ad363da8d95f5a6bd0630dc7d5d8369af3a937190cab57b53b1b5bd5fce7e01a",
  "train/seg_images/akahara/akahara_0001.png":
    "d0a8354ac0fbe312335f19d81e8d693d08177664b4ac1c23ff070090766543ab",
  "train/seg_images/akahara/akahara_0002.png":
    "dd64f08de10eb32c0934e51083c78a897a56ac5dd074cee7b77c1f450b43cef6",
  "train/seg_images/akahara/akahara_0003.png":
    "533b9a18189352148505a22b59136db05bb6b14464009011b58496cc26e412f2",
  "train/seg_images/akahara/akahara_0004.png":
    "686ace416a4d444ab1d3e31fa9b5d3c7f510907a19afc8bf79367ab5fafb45df",
  "train/seg_images/akahara/akahara_0005.png":
    "006b111f57029f6572d7e7323fcacf3c0828caa2e7a2dc79c4ddc130153e625f",
  "train/seg_images/akahara/akahara_0006.png":
    "51ed51d2c210d875c21c7edff4572d94738dd5118e1b84c7fa6ca1ff924fa3f1",
  "train/seg_images/akahara/akahara_0007.png":
    "5987f2c8114b62455fb84be9d2b314b8f6dd66eb8adc303ff36ac481284470c3",
  "train/seg_images/akahara/akahara_0008.png":
    "2edee34e711d3d6f0df37f8764aa110477b5ffb69ab95d0d9bb8e4219b7f9df5",
  "train/seg_images/madara/madara_0001.png":
    "04003be9924fd00b35ff6e419732c8e2e916c4a1475d43229ae7e16fb3ed558d",
  "train/seg_images/madara/madara_0002.png":
    "39ac796179c7894ee8d5f67168e28074a52940fce244c865aba75eb9e75e6d7b",
  "train/seg_images/madara/madara_0003.png":
    "ca9948f2ce8fcaf1272b031f6c3dfd5a741acf82023c7c2ee462ca81750d27a0",
  "train/seg_images/madara/madara_0004.png":
    "487e6d4c32912e3012eff024a30f83779d83ade504e04dbbd2e65667df25e8ca",
  "train/seg_images/madara/madara_0005.png":
    "162f0bbf619e4621767352793784cdf7bb207ded381f9575870c63aa756ce448",
  "train/seg_images/madara/madara_0006.png":
    "450fedc94ac53587d091bdcb2511ad9c0b8e0ceb5bad9d9e71bb0b21470f9293",
  "train/seg_images/madara/madara_0007.png":
    "51f63155f0d15e357c5f97c523b9eba3f56aa35f8b86fac9d3e13bb05d7bcc36",
  "train/seg_images/madara/madara_0008.png":
    "19563e05a32b525b39ce4081e3f5a3d9630d872fbe9d5bbb58c051400350999a",
  "test/images/akahara/akahara_0009.jpg":
    "397d046ffb8d87894b05d655d88f280d2fd10af785df0a39c3535b3dcdc5e32c",
  "test/images/akahara/akahara_0010.jpg":
    "7c154691a6e3dd0658b5cd3d92212b64add2cefba71bff2196adb88b155166fe",
  "test/images/akahara/akahara_0011.jpg":
    "a396e54af9fcf587d963535c836bc541560dd4b64d7a297647464b47950ca24e",
  "test/images/madara/madara_0009.jpg":
    "f397f846277cb8e86673db3028fe379f646c5b848e114a04bfe8ee1b70e2de7f",
  "test/images/madara/madara_0010.jpg":
    "221ff6aee72e1c092305f84c9d32df0170c42269905e38b0f4fe0205b98b10fa",
  "test/images/madara/madara_0011.jpg":
    "625003cc37cd86c9b5b80d0f5b892072cf03d53279288f498815dd4de564d3c2",
  "test/seg_images/akahara/akahara_0009.png":
    "4acb165108203d284169125280e0f4d293695ab54236fb87eaab22349432ddf5",
  "test/seg_images/akahara/akahara_0010.png":
    "00081d9a5f2aa0eeebbc86f435f51385b80139b0c302911aea89f7f206f95594",
  "test/seg_images/akahara/akahara_0011.png":
    "d7de77b3ca38f7910b9db1ab13daf2c314ce5b2b5abcac65af92c5554f520944",
  "test/seg_images/madara/madara_0009.png":
    "a0e09fe7f36670e1d6cf3b0186a7ee89e9002e23d6782981a64c69e53e9a4788",
  "test/seg_images/madara/madara_0010.png":
    "5d315fd44652e4bf7a5a4cd61489fb62a02bbcd923cd64952d52f9d39cacacae",
  "test/seg_images/madara/madara_0011.png":
    "2ad2544815abca2fed769e5b6afc54e734ecad9918efc20ac9a899040d040baa",
};

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
  /** Files already present with the listed SHA-256. */
  present: number;
}

/**
 * Downloads the Imori dataset (resumable, each file written atomically and
 * checked to decode and to have its SHA-256 of {@linkcode IMORI_SHA256}). A
 * file already present with another SHA-256 (changed or damaged) is
 * fetched again; a fetched file with another SHA-256 is fetched once more,
 * then refused.
 *
 * @param options Base address, output folder and a progress callback.
 * @returns How many files were fetched and how many were already there.
 * @throws {UserError} When offline, on an HTTP error, or when a fetched file
 * does not decode or has another SHA-256.
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
    const expected = IMORI_SHA256[file]!;
    if ((await fileSha256(path)) === expected) {
      result.present++;
      onFile?.(path, "present");
      continue;
    }
    const url = `${baseUrl.replace(/\/+$/, "")}/${file}`;
    let bytes = await fetchBytes(url);
    if (!(await decodesBytes(bytes))) {
      throw new UserError(
        `Cannot download ${url}: the server sent something that is not an image; ` +
          "check --base-url (it must point at the folder holding train/ and test/)",
      );
    }
    if ((await sha256(bytes)) !== expected) {
      bytes = await fetchBytes(url); // damaged on the way, perhaps: once more
      const got = await sha256(bytes);
      if (got !== expected) {
        throw new UserError(
          `Cannot download ${url}: its SHA-256 is ${got}, not ${expected} as lib/download.ts ` +
            "lists it, so the file was changed or damaged; run `deno task download` again, " +
            "or check --base-url (it must serve the Imori files unchanged)",
        );
      }
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

/**
 * The SHA-256 of some bytes, as lower-case hex.
 *
 * @param bytes The content.
 * @returns 64 hex digits.
 *
 * @example
 * ```ts
 * import { sha256 } from "./download.ts";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(
 *   await sha256(new TextEncoder().encode("abc")),
 *   "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
 * );
 * ```
 */
export async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** The SHA-256 of a file, or `undefined` when it cannot be read. */
async function fileSha256(path: string): Promise<string | undefined> {
  try {
    return await sha256(await Deno.readFile(path));
  } catch {
    return undefined;
  }
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

async function decodesBytes(bytes: Uint8Array): Promise<boolean> {
  if (bytes.length === 0) return false;
  try {
    const { info } = await sharp(bytes).raw().toBuffer({ resolveWithObject: true });
    return info.width > 0 && info.height > 0;
  } catch {
    return false;
  }
}
