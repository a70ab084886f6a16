/**
 * Which dataset folder a script reads: the one given with `--data`, else the
 * real Imori data in `data/imori` when it was downloaded, else the built-in
 * synthetic set in `data/synthetic`, drawn on first use.
 *
 * @module
 */
import { imoriFiles } from "./download.ts";
import { UserError } from "./errors.ts";
import { fileURLToPath } from "node:url";
import { dirname, join, resolve, SEP, shownPath } from "./path.ts";

import { writeSyntheticDataset } from "./synthetic_files.ts";
import { SYNTHETIC_VERSION } from "./synthetic_newts.ts";

/** Where {@linkcode resolveDataDir} looks and what it says. */
export interface ResolveDataDirOptions {
  /** Print nothing. @default false */
  quiet?: boolean;
  /** The folder holding `data/`. @default the project folder */
  root?: string;
  /**
   * Folders this run writes, by flag (`{ "--out": "answers" }`): one inside the dataset's
   * `train/` or `test/` is refused, since what it writes there would be read as photos or masks.
   */
  outputs?: Record<string, string | undefined>;
}

/**
 * Picks the dataset folder. With `flag` (the `--data` value) that folder must
 * exist. Without it: `data/imori` when present (all 44 files of
 * `deno task download` must be there); otherwise the built-in
 * synthetic set in `data/synthetic`, drawn deterministically on first use
 * (into a temporary folder, then renamed, so an interrupted run leaves
 * nothing half-written), with one line saying so.
 *
 * @param flag The `--data` value, if given.
 * @param options `quiet`, the project folder and the folders this run writes.
 * @returns The folder to read.
 * @throws {UserError} When `flag` names a folder that does not exist, a file, or a folder
 * with neither `train/` nor `test/` (naming the folder above when that is the dataset);
 * when `data/imori` is an unfinished download; when an output folder lies inside the dataset's
 * `train/` or `test/`.
 *
 * @example
 * ```ts
 * import { resolveDataDir } from "./data_dir.ts";
 * import { assertEquals, assertRejects } from "./assert.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.mkdir(`${dir}/train`);
 * assertEquals(await resolveDataDir(dir), dir);
 * await assertRejects(resolveDataDir(`${dir}/missing`), /does not exist/);
 * await assertRejects(resolveDataDir(`${dir}/train`), /pass --data .* instead/);
 * await assertRejects(
 *   resolveDataDir(dir, { outputs: { "--out": `${dir}/train/figures` } }),
 *   /--out .* is inside .*train, which holds the dataset's photos/,
 * );
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function resolveDataDir(
  flag: string | undefined,
  options: ResolveDataDirOptions = {},
): Promise<string> {
  const dataDir = await pickDataDir(flag, options);
  for (const [name, path] of Object.entries(options.outputs ?? {})) {
    if (path === undefined) continue;
    const inside = resolve(path);
    for (const split of ["train", "test"]) {
      const under = resolve(dataDir, split);
      if (inside === under || inside.startsWith(under + SEP)) {
        throw new UserError(
          `${name} ${path} is inside ${shownPath(under)}, which holds the dataset's photos and ` +
            `masks: what this run writes there would be read as photos or masks; pass ${name} ` +
            "<a folder outside it>",
        );
      }
    }
  }
  return dataDir;
}

async function pickDataDir(
  flag: string | undefined,
  options: ResolveDataDirOptions,
): Promise<string> {
  const { quiet = false, root = projectRoot() } = options;
  const say = (line: string) => quiet || console.log(line);
  if (flag !== undefined) {
    if (!(await isDirectory(flag))) {
      const what = await Deno.stat(flag).then(
        () => "is a file, not a folder",
        () => "does not exist",
      );
      throw new UserError(
        `Data folder ${flag} ${what}; pass --data <folder in the Imori layout>, ` +
          `or leave --data out to use data/imori or the built-in synthetic set`,
      );
    }
    const splits = await Promise.all(
      ["train", "test"].map((split) => isDirectory(join(flag, split))),
    );
    if (!splits.includes(true)) {
      const parent = dirname(resolve(flag));
      const isDataset = (await Promise.all(
        ["train", "test"].map((split) => isDirectory(join(parent, split))),
      )).includes(true);
      throw new UserError(
        isDataset
          ? `Data folder ${flag} is a part of the dataset in ${shownPath(parent)}; pass --data ` +
            `${shownPath(parent)} instead`
          : `Data folder ${flag} has no train/ or test/ folder; the Imori layout is ` +
            "train/images/<class>/*.jpg with their masks in train/seg_images/<class>/*.png, and " +
            "test/ alike",
      );
    }
    return flag;
  }
  const imori = join(root, "data", "imori");
  if (await isDirectory(imori)) {
    const missing = [];
    for (const file of imoriFiles()) {
      if (!(await Deno.stat(join(imori, file)).then((info) => info.isFile, () => false))) {
        missing.push(file);
      }
    }
    if (missing.length > 0) {
      throw new UserError(
        `${shownPath(imori)} is incomplete (${missing.length} of ` +
          `${imoriFiles().length} files missing, e.g. ${missing[0]}); run \`deno task download\` ` +
          "again to finish it, or pass --data <folder> for a dataset of your own",
      );
    }
    return imori;
  }
  const synthetic = join(root, "data", "synthetic");
  const shown = shownPath(synthetic);
  if (await isCurrentSynthetic(synthetic)) {
    say(
      `Using the built-in synthetic newt dataset in ${shown} ` +
        "(no --data and no data/imori; `deno task download` fetches the real photos)",
    );
    return synthetic;
  }
  const started = performance.now();
  await Deno.mkdir(join(root, "data"), { recursive: true });
  const temporary = await Deno.makeTempDir({ dir: join(root, "data"), prefix: "synthetic.tmp-" });
  try {
    await writeSyntheticDataset(join(temporary, "synthetic"));
    if (!(await isCurrentSynthetic(synthetic))) {
      await Deno.remove(synthetic, { recursive: true }).catch(() => {}); // a stale version
    }
    await Deno.rename(join(temporary, "synthetic"), synthetic);
  } catch (error) {
    // Another process may have drawn it at the same time: use theirs.
    if (!(await isCurrentSynthetic(synthetic))) throw error;
  } finally {
    await Deno.remove(temporary, { recursive: true }).catch(() => {});
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  say(
    `Drew the built-in synthetic newt dataset into ${shown} in ${seconds} s ` +
      "(no --data and no data/imori; `deno task download` fetches the real photos)",
  );
  return synthetic;
}

function projectRoot(): string {
  return dirname(dirname(fileURLToPath(import.meta.url)));
}

async function isCurrentSynthetic(dir: string): Promise<boolean> {
  try {
    const info = JSON.parse(await Deno.readTextFile(join(dir, "synthetic.json")));
    return info.version === SYNTHETIC_VERSION;
  } catch {
    return false;
  }
}

/**
 * Whether a path is a folder (following links); `false` when it does not exist
 * or cannot be read. The one folder check of the dataset readers.
 *
 * @param path Any path.
 * @returns `true` for a folder.
 *
 * @example
 * ```ts
 * import { isDirectory } from "./data_dir.ts";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(await isDirectory("."), true);
 * assertEquals(await isDirectory("no/such/folder"), false);
 * ```
 */
export async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

/**
 * Whether a folder is a synthetic newt set this project drew (it holds
 * `synthetic.json`), of any version.
 *
 * @param dir The dataset folder.
 * @returns `true` for a synthetic set, `false` for photos or a folder that is gone.
 *
 * @example
 * ```ts
 * import { isSyntheticSet } from "./data_dir.ts";
 * import { assertEquals } from "./assert.ts";
 * const dir = await Deno.makeTempDir();
 * assertEquals(await isSyntheticSet(dir), false);
 * await Deno.writeTextFile(`${dir}/synthetic.json`, "{}");
 * assertEquals(await isSyntheticSet(dir), true);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function isSyntheticSet(dir: string): Promise<boolean> {
  return await Deno.stat(join(dir, "synthetic.json")).then((info) => info.isFile, () => false);
}
