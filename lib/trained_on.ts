/**
 * The dataset folders a checkpoint was trained on, as its `training_state.json` records
 * them in `settings.data`: a list, oldest first, since a run resumed on other photos adds
 * its folder; a checkpoint of an older version holds a single string.
 *
 * @module
 */
import { resolve, shownPath } from "./path.ts";

/**
 * The folders a checkpoint's settings say it was trained on, oldest first.
 *
 * @param settings The `settings` of a `training_state.json` (any shape: it is read from disk).
 * @returns The folders; empty when none is recorded.
 *
 * @example
 * ```ts
 * import { trainedOn } from "./trained_on.ts";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(trainedOn({ data: "/d/synthetic" }), ["/d/synthetic"]);
 * assertEquals(trainedOn({ data: ["/d/synthetic", "/d/imori"] }), ["/d/synthetic", "/d/imori"]);
 * assertEquals(trainedOn(undefined), []);
 * ```
 */
export function trainedOn(settings: unknown): string[] {
  const data = (settings as { data?: unknown } | undefined)?.data;
  if (typeof data === "string") return [data];
  return Array.isArray(data) ? data.filter((one) => typeof one === "string") : [];
}

/**
 * The folders after a run on `dataDir`: the folder added at the end unless it is the last.
 *
 * @param folders The folders recorded so far, oldest first.
 * @param dataDir The folder this run trains on.
 * @returns The new list (resolved paths).
 *
 * @example
 * ```ts
 * import { withFolder } from "./trained_on.ts";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(withFolder(["/d/a"], "/d/b"), ["/d/a", "/d/b"]);
 * assertEquals(withFolder(["/d/a"], "/d/a"), ["/d/a"]);
 * ```
 */
export function withFolder(folders: readonly string[], dataDir: string): string[] {
  const folder = resolve(dataDir);
  return folders.at(-1) === folder ? [...folders] : [...folders, folder];
}

/**
 * Whether `dataDir` is one of the folders.
 *
 * @param folders Folders recorded by a checkpoint.
 * @param dataDir A dataset folder.
 * @returns `true` when the checkpoint learnt from it.
 *
 * @example
 * ```ts
 * import { includesFolder } from "./trained_on.ts";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(includesFolder(["/d/a", "/d/b"], "/d/b/"), true);
 * ```
 */
export function includesFolder(folders: readonly string[], dataDir: string): boolean {
  const folder = resolve(dataDir);
  return folders.some((one) => resolve(one) === folder);
}

/**
 * The folders as a message names them: `a`, `a and b`, `a, b and c`.
 *
 * @param folders Folders, oldest first.
 * @returns Their shown paths, joined.
 *
 * @example
 * ```ts
 * import { describeFolders } from "./trained_on.ts";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(describeFolders(["data/a", "data/b", "data/c"]), "data/a, data/b and data/c");
 * ```
 */
export function describeFolders(folders: readonly string[]): string {
  const shown = folders.map((folder) => shownPath(folder));
  return shown.length <= 1
    ? shown.join("")
    : `${shown.slice(0, -1).join(", ")} and ${shown.at(-1)}`;
}
