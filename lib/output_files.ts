/**
 * The one policy for every file the project writes, applied where it writes
 * (`writeFileAtomic`, `saveCheckpoint`) and where a path flag is parsed:
 *
 * - an input of this run (a photo, a mask) is never written over;
 * - an existing file is written over only when this project wrote it (every
 *   PNG it writes carries a `Software: imori-semaseg` text chunk) or this run
 *   did; anything else there is refused, naming the file and the fix;
 * - a checkpoint folder is replaced only by the run that created it, one
 *   that resumed it, or one told `--overwrite`; a folder that holds other
 *   files is never replaced;
 * - a path of the wrong kind (a file given for a folder, a folder where a
 *   file goes) is refused before anything is touched;
 * - out-of-space, permission and read-only errors become one line naming the
 *   path and the fix ({@linkcode writeErrorMessage}).
 *
 * "This run" is this process: the paths it claimed are kept in a set.
 *
 * @module
 */
import { UserError } from "./errors.ts";
import { shellWord } from "./flag_defs.ts";
import { basename, dirname, extname, join, resolve, shownPath } from "./path.ts";
import { describeFolders, includesFolder, trainedOn } from "./trained_on.ts";

/** The text of the PNG `Software` chunk that marks a file as written by this project. */
export const PROJECT_MARK = "imori-semaseg";

/** Paths (resolved) this process read as inputs, and those it wrote or may replace. */
const inputs = new Set<string>();
const claimed = new Set<string>();

/**
 * Records files as inputs of this run: no output of the run may be written over them.
 *
 * @param paths Files the run reads (photos, masks).
 *
 * @example
 * ```ts
 * import { claimOutputFile, noteInputs } from "./output_files.ts";
 * import { assertRejects } from "./assert.ts";
 * noteInputs(["/tmp/photos/a_mask.png"]);
 * await assertRejects(claimOutputFile("/tmp/photos/a_mask.png"), /is an input of this run/);
 * ```
 */
export function noteInputs(paths: Iterable<string>): void {
  for (const path of paths) {
    inputs.add(resolve(path));
    try {
      inputs.add(Deno.realPathSync(path));
    } catch {
      // a file still to be found missing: its resolved path is enough
    }
  }
}

/**
 * Checks that an output file may be written at `path`, and records it as
 * written by this run (so that the run may write it again).
 *
 * @param path The file about to be written.
 * @param flag The flag that chose its folder, named in the fix.
 * @returns A promise that resolves when the path may be written.
 * @throws {UserError} When the path is an input of this run, a folder, under
 * a file, or an existing file this project did not write.
 *
 * @example
 * ```ts
 * import { claimOutputFile } from "./output_files.ts";
 * import { assertRejects } from "./assert.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/notes.png`, "mine");
 * await assertRejects(claimOutputFile(`${dir}/notes.png`), /this project did not write/);
 * await claimOutputFile(`${dir}/new.png`); // free: claimed
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function claimOutputFile(path: string, flag = "--out"): Promise<void> {
  const key = resolve(path);
  if (claimed.has(key)) return;
  const fix = `pass ${flag} <another folder>`;
  if (inputs.has(key) || inputs.has(await realPath(path))) {
    throw new UserError(`Cannot write ${path}: it is an input of this run; ${fix}`);
  }
  checkFolderOf(path, flag);
  const info = await Deno.lstat(path).catch(() => undefined);
  if (info?.isDirectory) {
    throw new UserError(`Cannot write ${path}: a folder is there; move it away, or ${fix}`);
  }
  if (info && !(await isProjectFile(path))) {
    throw new UserError(
      `Cannot write ${path}: a file this project did not write is there; move it away, or ${fix}`,
    );
  }
  claimed.add(key);
}

/**
 * The files of a checkpoint folder: all that `saveCheckpoint` writes, and all that saving
 * replaces. A folder holding anything else is never written into.
 */
export const CHECKPOINT_FILES: readonly string[] = [
  "model.json",
  "weights.bin",
  "optimizer.json",
  "optimizer.bin",
  "training_state.json",
];

/** What a checkpoint folder holds, as {@linkcode checkpointFolder} finds it. */
export type CheckpointFolder =
  | { kind: "empty" }
  /** A checkpoint, maybe damaged; `state` is its `training_state.json` when that parses. */
  | { kind: "checkpoint"; state?: Record<string, unknown> }
  /** Something else: `what` names one file that is not a checkpoint's. */
  | { kind: "other"; what: string };

/**
 * Looks into a folder given as `--checkpoint`: empty (or missing), a checkpoint (only the
 * files a checkpoint has, with a TensorFlow.js `model.json` or a `training_state.json`; a
 * damaged file still counts), or other files.
 *
 * @param dir The folder.
 * @returns What it holds.
 *
 * @example
 * ```ts
 * import { checkpointFolder } from "./output_files.ts";
 * import { assertEquals } from "./assert.ts";
 * const dir = await Deno.makeTempDir();
 * assertEquals(await checkpointFolder(dir), { kind: "empty" });
 * await Deno.writeTextFile(`${dir}/model.json`, '{"my": "config"}');
 * assertEquals(await checkpointFolder(dir),
 *   { kind: "other", what: "model.json, which is not a TensorFlow.js model" });
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function checkpointFolder(dir: string): Promise<CheckpointFolder> {
  const entries = await Array.fromAsync(Deno.readDir(dir)).catch(() => []);
  if (entries.length === 0) return { kind: "empty" };
  const other = entries.find((entry) => !entry.isFile || !CHECKPOINT_FILES.includes(entry.name));
  if (other) return { kind: "other", what: other.name + (other.isDirectory ? "/" : "") };
  const modelJson = await readJson(join(dir, "model.json"));
  const state = await readJson(join(dir, "training_state.json"));
  const isModel = typeof modelJson?.modelTopology === "object" &&
    modelJson.modelTopology !== null && Array.isArray(modelJson.weightsManifest);
  if (modelJson && !isModel) { // JSON, but another program's (a cut one is damage: null)
    return { kind: "other", what: "model.json, which is not a TensorFlow.js model" };
  }
  const isState = typeof state?.iteration === "number";
  if (isModel || isState) return { kind: "checkpoint", state: isState ? state! : undefined };
  return { kind: "other", what: `${entries[0]!.name}, without a checkpoint's model.json` };
}

/**
 * The refusal of a checkpoint folder that holds other files: saving would replace them.
 *
 * @param dir The folder.
 * @param what One of its files that is not a checkpoint's.
 * @returns The error.
 */
function otherFiles(dir: string, what: string): UserError {
  return new UserError(
    `--checkpoint ${dir} holds files that are not a checkpoint's (${what}); saving there ` +
      `would replace them, so it is refused even with --overwrite or --resume: pass ` +
      `--checkpoint ${shellWord(freshName(`${dir.replace(/[\\/]+$/, "")}_checkpoint`))} ` +
      "or another new folder",
  );
}

/**
 * Refuses a checkpoint folder that holds files a checkpoint does not have: what every
 * save checks again just before it replaces the folder.
 *
 * @param dir The checkpoint folder.
 * @returns A promise that resolves when the folder holds a checkpoint's files only, or nothing.
 * @throws {UserError} Naming one other file and a new folder to pass instead.
 *
 * @example
 * ```ts
 * import { checkOnlyCheckpointFiles } from "./output_files.ts";
 * import { assertRejects } from "./assert.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/thesis.txt`, "mine");
 * await assertRejects(() => checkOnlyCheckpointFiles(dir), /not a checkpoint's \(thesis.txt\)/);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function checkOnlyCheckpointFiles(dir: string): Promise<void> {
  const contents = await checkpointFolder(dir);
  if (contents.kind === "other") throw otherFiles(dir, contents.what);
}

/** What {@linkcode claimCheckpoint} allows. */
export interface ClaimCheckpointOptions {
  /** Replace a checkpoint that is there (`--resume` continues it, `--overwrite` replaces it).
   * @default {false} */
  replace?: boolean;
  /** The dataset folder this run trains on: a checkpoint trained on another gets a refusal
   * that names both and a folder that keeps both. */
  data?: string;
  /** The start of a training run: claims made by earlier runs in this process (a test
   * that trains twice) do not count, only what is on disk.
   * @default {false} */
  start?: boolean;
}

/**
 * Checks that a checkpoint may be saved into `dir`, before training starts
 * and at each save: refuses a folder holding another run's checkpoint (unless
 * `replace`), a folder holding other files (even with `replace`), a file, and
 * a folder that cannot be written; records the folder as this run's.
 *
 * @param dir The checkpoint folder.
 * @param options Whether to replace a checkpoint there, and whether a run starts.
 * @returns A promise that resolves when the folder may be written.
 * @throws {UserError} As above, naming `--resume`, another `--checkpoint` and `--overwrite`.
 *
 * @example
 * ```ts
 * import { claimCheckpoint } from "./output_files.ts";
 * import { assertRejects } from "./assert.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/training_state.json`, '{"iteration": 20}');
 * await assertRejects(claimCheckpoint(dir), /already holds a checkpoint of 20 iterations/);
 * await claimCheckpoint(dir, { replace: true }); // --overwrite or --resume
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function claimCheckpoint(
  dir: string,
  options: ClaimCheckpointOptions = {},
): Promise<void> {
  const key = resolve(dir);
  if (options.start) claimed.delete(key);
  if (claimed.has(key)) return;
  checkFolderPath(dir, "--checkpoint");
  const contents = await checkpointFolder(dir);
  if (contents.kind === "other") throw otherFiles(dir, contents.what);
  if (contents.kind === "checkpoint" && !options.replace) {
    const iteration = contents.state?.iteration;
    const folders = trainedOn(contents.state?.settings);
    const what =
      (typeof iteration === "number" ? `a checkpoint of ${iteration} iterations` : "a checkpoint") +
      (folders.length > 0 ? ` trained on ${describeFolders(folders)}` : "");
    if (folders.length > 0 && options.data && !includesFolder(folders, options.data)) {
      const both = `${dir.replace(/[\\/]+$/, "")}_${basename(resolve(options.data))}`;
      throw new UserError(
        `${dir} already holds ${what}, and this run trains on ${shownPath(options.data)}; ` +
          `pass --checkpoint ${shellWord(both)} to keep both, --overwrite to replace it, or ` +
          "--resume to continue it on these photos",
      );
    }
    throw new UserError(
      `${dir} already holds ${what}; pass --resume to continue it, --checkpoint ` +
        `<new folder> to train another, or --overwrite to replace it`,
    );
  }
  // Saving writes beside the folder (a temporary folder, then renames) and into it.
  checkWritable(dirname(dir), dir, "--checkpoint");
  if (contents.kind === "checkpoint") checkWritable(dir, dir, "--checkpoint");
  claimed.add(key);
}

/**
 * Refuses a path given for a folder that is a file, or lies under a file:
 * the check of every folder flag (`--out`, `--checkpoint`), made before
 * anything is touched. For `--checkpoint`, the fix names the checkpoint when
 * the file is one of its files, else a new folder that does not exist yet.
 *
 * @param path The folder.
 * @param flag The flag it came from.
 * @throws {UserError} When it, or a folder above it, is a file.
 *
 * @example
 * ```ts
 * import { checkFolderPath } from "./output_files.ts";
 * import { assertThrows } from "./assert.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/model.json`, "{}");
 * assertThrows(() => checkFolderPath(`${dir}/model.json`, "--checkpoint"),
 *   Error, `pass --checkpoint ${dir}`);
 * await Deno.writeTextFile(`${dir}/notes.txt`, "mine");
 * assertThrows(() => checkFolderPath(`${dir}/notes.txt`, "--checkpoint"),
 *   Error, `pass --checkpoint ${dir}/notes_checkpoint`);
 * checkFolderPath(`${dir}/new/deeper`, "--out"); // a folder still to make is fine
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function checkFolderPath(path: string, flag: string): void {
  for (let folder = path;; folder = dirname(folder)) {
    const info = statSync(folder);
    if (info?.isDirectory) return;
    if (info) {
      throw new UserError(
        `${flag} ${path}: ${folder === path ? "it" : folder} is a file, not a folder; ` +
          (folder === path && flag === "--checkpoint"
            ? checkpointFileFix(path)
            : `pass ${flag} <a folder>`),
      );
    }
    if (dirname(folder) === folder) return;
  }
}

/** The fix for a file given as `--checkpoint`: its checkpoint folder, or a new folder. */
function checkpointFileFix(path: string): string {
  const parent = dirname(path);
  const inCheckpoint = CHECKPOINT_FILES.includes(basename(path)) &&
    (statSync(join(parent, "training_state.json"))?.isFile ||
      statSync(join(parent, "model.json"))?.isFile);
  if (inCheckpoint) {
    return `a checkpoint is a folder holding model.json: pass --checkpoint ${parent}`;
  }
  const stem = basename(path).replace(/\.[^.]*$/, "") || "new";
  return `a checkpoint is a folder of its own: pass --checkpoint ` +
    shellWord(freshName(join(parent, `${stem}_checkpoint`)));
}

/** `base`, or `base_2`, `base_3`, ...: the first that does not exist. */
function freshName(base: string): string {
  let name = base;
  for (let count = 2; statSync(name) !== undefined || lstatSync(name) !== undefined; count++) {
    name = `${base}_${count}`;
  }
  return name;
}

/**
 * Checks an output folder flag before the run does any work: of the right
 * kind, and writable (the nearest existing folder takes a new file).
 *
 * @param path The folder (`--out`).
 * @param flag The flag.
 * @throws {UserError} When it is a file, lies under one, or cannot be written.
 *
 * @example
 * ```ts
 * import { checkOutputFolder } from "./output_files.ts";
 * import { assertThrows } from "./assert.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/f`, "");
 * assertThrows(() => checkOutputFolder(`${dir}/f`, "--out"), Error, "is a file, not a folder");
 * checkOutputFolder(`${dir}/answers`, "--out");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function checkOutputFolder(path: string, flag: string): void {
  checkFolderPath(path, flag);
  checkWritable(path, undefined, flag);
}

/**
 * Checks that a new file can be made in `path`, or in the nearest folder above it that
 * exists (where the folders still to make would go).
 *
 * @param path The folder.
 * @param shown The path the message names; the folder tried when absent.
 * @param flag The flag to pass another folder with.
 * @throws {UserError} One line: permission denied, read-only, out of space.
 */
function checkWritable(path: string, shown: string | undefined, flag: string): void {
  // The nearest folder there (one that cannot be looked at counts: the probe says why).
  const there = (folder: string) => {
    try {
      return Deno.statSync(folder).isDirectory;
    } catch (error) {
      return !(error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory);
    }
  };
  let folder = path;
  while (!there(folder) && dirname(folder) !== folder) folder = dirname(folder);
  try {
    const probe = Deno.makeTempFileSync({ dir: folder, prefix: ".write-check-" });
    Deno.removeSync(probe);
  } catch (error) {
    throw new UserError(
      writeErrorMessage(error, shown ?? folder, `pass ${flag} <a folder you can write>`),
    );
  }
}

/**
 * The one line for an error met while writing: out of space, permission,
 * read-only file system, a file where a folder goes; other errors keep
 * their first line.
 *
 * @param error The error thrown by a write.
 * @param path The file or folder being written.
 * @param fix What the user can do, e.g. `pass --out <another folder>`.
 * @returns The message, one line.
 *
 * @example
 * ```ts
 * import { writeErrorMessage } from "./output_files.ts";
 * import { assertEquals } from "./assert.ts";
 * const full = Object.assign(new Error("No space left on device (os error 28)"), { code: "ENOSPC" });
 * assertEquals(writeErrorMessage(full, "answers/a.png", "pass --out <another disk>"),
 *   "Cannot write answers/a.png: no space left on device; free some space, or pass --out <another disk>");
 * ```
 */
export function writeErrorMessage(error: unknown, path: string, fix: string): string {
  const code = (error as { code?: string })?.code;
  const reason = code === "ENOSPC" || code === "EDQUOT"
    ? "no space left on device; free some space, or "
    : code === "EACCES" || code === "EPERM" || error instanceof Deno.errors.PermissionDenied
    ? "permission denied; "
    : code === "EROFS"
    ? "the file system is read-only; "
    : code === "ENOTDIR"
    ? "a file is where a folder should be; "
    : code === "EISDIR"
    ? "a folder is there; "
    : `${firstLine(error)}; `;
  return `Cannot write ${path}: ${reason}${fix}`;
}

/**
 * Runs a write, turning an operating-system error into a one-line {@linkcode UserError}.
 *
 * @param path The file or folder being written, named in the message.
 * @param fix What the user can do.
 * @param write The write.
 * @returns What `write` returns.
 * @throws {UserError} When the write fails with an operating-system error.
 *
 * @example
 * ```ts
 * import { guardWrite } from "./output_files.ts";
 * import { assertRejects } from "./assert.ts";
 * const full = Object.assign(new Error("No space left on device (os error 28)"), { code: "ENOSPC" });
 * await assertRejects(
 *   guardWrite("ck/nearest", "pass --checkpoint <another disk>", () => Promise.reject(full)),
 *   /Cannot write ck\/nearest: no space left on device; free some space, or pass --checkpoint/,
 * );
 * ```
 */
export async function guardWrite<T>(
  path: string,
  fix: string,
  write: () => Promise<T>,
): Promise<T> {
  try {
    return await write();
  } catch (error) {
    if (error instanceof Error && error.name === "UserError") throw error;
    if (typeof (error as { code?: unknown })?.code === "string") {
      throw new UserError(writeErrorMessage(error, path, fix));
    }
    throw error;
  }
}

/**
 * Inserts the project's mark (a `Software` text chunk after the header) into
 * a PNG file's bytes; other bytes are returned as they are.
 *
 * @param bytes An encoded file.
 * @returns The PNG with the mark, or `bytes`.
 *
 * @example
 * ```ts
 * import { markPng, PROJECT_MARK } from "./output_files.ts";
 * import { encodeImage } from "./image_io.ts";
 * import { assert } from "./assert.ts";
 * const png = await encodeImage({ data: new Uint8Array(3), width: 1, height: 1, channels: 3 });
 * assert(new TextDecoder("latin1").decode(markPng(png)).includes(PROJECT_MARK));
 * ```
 */
export function markPng(bytes: Uint8Array): Uint8Array {
  if (!isPng(bytes) || hasMark(bytes)) return bytes;
  const headerEnd = 8 + 25; // signature, IHDR (length, type, 13 bytes, CRC)
  const text = new TextEncoder().encode(`tEXtSoftware\0${PROJECT_MARK}`);
  const chunk = new Uint8Array(text.length + 8);
  const view = new DataView(chunk.buffer);
  view.setUint32(0, text.length - 4);
  chunk.set(text, 4);
  view.setUint32(4 + text.length, crc32(text));
  const out = new Uint8Array(bytes.length + chunk.length);
  out.set(bytes.subarray(0, headerEnd));
  out.set(chunk, headerEnd);
  out.set(bytes.subarray(headerEnd), headerEnd + chunk.length);
  return out;
}

/**
 * Whether the file at `path` is a PNG carrying the project's mark (a mask or
 * figure this project wrote): `false` for any other file and for one that
 * cannot be read.
 *
 * @param path The file.
 * @returns Whether this project wrote it.
 *
 * @example
 * ```ts
 * import { isProjectFile, markPng } from "./output_files.ts";
 * import { assertEquals } from "./assert.ts";
 * const dir = await Deno.makeTempDir();
 * const png = Uint8Array.from(atob(
 *   "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgAB4iG8MwAAAABJRU5ErkJggg==",
 * ), (c) => c.charCodeAt(0)); // a 1x1 grey PNG
 * await Deno.writeFile(`${dir}/photo.png`, png);
 * await Deno.writeFile(`${dir}/photo_mask.png`, markPng(png));
 * assertEquals(await isProjectFile(`${dir}/photo.png`), false);
 * assertEquals(await isProjectFile(`${dir}/photo_mask.png`), true);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function isProjectFile(path: string): Promise<boolean> {
  if (extname(path).toLowerCase() !== ".png") return false; // it writes PNGs only: no file opened
  try {
    const file = await Deno.open(path);
    try {
      const head = new Uint8Array(128);
      const read = await file.read(head) ?? 0;
      return isPng(head.subarray(0, read)) && hasMark(head.subarray(0, read));
    } finally {
      file.close();
    }
  } catch {
    return false;
  }
}

function isPng(bytes: Uint8Array): boolean {
  return bytes.length > 33 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e &&
    bytes[3] === 0x47;
}

function hasMark(bytes: Uint8Array): boolean {
  return new TextDecoder("latin1").decode(bytes.subarray(0, 128)).includes(
    `tEXtSoftware\0${PROJECT_MARK}`,
  );
}

let crcTable: Uint32Array | undefined;

function crc32(bytes: Uint8Array): number {
  crcTable ??= Uint32Array.from({ length: 256 }, (_, index) => {
    let value = index;
    for (let bit = 0; bit < 8; bit++) value = value & 1 ? 0xedb88320 ^ (value >>> 1) : value >>> 1;
    return value >>> 0;
  });
  let crc = 0xffffffff;
  for (const byte of bytes) crc = crcTable[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

function statSync(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.statSync(path);
  } catch {
    return undefined;
  }
}

function lstatSync(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.lstatSync(path);
  } catch {
    return undefined;
  }
}

/** A JSON object read from a file: `undefined` when missing, `null` when not JSON. */
async function readJson(path: string): Promise<Record<string, unknown> | null | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch {
    return undefined;
  }
  try {
    const value = JSON.parse(text);
    return typeof value === "object" && value !== null ? value : null;
  } catch {
    return null;
  }
}

async function realPath(path: string): Promise<string> {
  return await Deno.realPath(path).catch(() => resolve(path));
}

function checkFolderOf(path: string, flag: string): void {
  checkFolderPath(dirname(path), flag);
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split("\n")[0] ?? "";
}

/**
 * The file of one photo's figure: under the photo's class folder, so that
 * photos of the same name in two class folders never share one
 * (`answers/madara/nearest_madara_0010.png`).
 *
 * @param out The output folder (`--out`).
 * @param prefix The exercise, e.g. `nearest`.
 * @param name The photo's name (stem, maybe with a flip suffix).
 * @param folder The photo's class folder, when it has one.
 * @returns `<out>/<folder>/<prefix>_<name>.png`.
 *
 * @example
 * ```ts
 * import { photoFigurePath } from "./output_files.ts";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(photoFigurePath("answers", "nearest", "m_1", "madara"), "answers/madara/nearest_m_1.png");
 * assertEquals(photoFigurePath("answers", "nearest", "m_1"), "answers/nearest_m_1.png");
 * ```
 */
export function photoFigurePath(
  out: string,
  prefix: string,
  name: string,
  folder?: string,
): string {
  return join(out, folder ?? "", `${prefix}_${name}.png`);
}
