/**
 * Path helpers, behind one module so that a later switch to `@std/path` is
 * one line.
 *
 * @module
 */
import { relative, resolve } from "node:path";

export {
  basename,
  dirname,
  extname,
  isAbsolute,
  join,
  relative,
  resolve,
  sep as SEP,
} from "node:path";

/**
 * A path as messages show it: relative to the working folder (`.` for the
 * folder itself, `../shared/imori` for a sibling's), or absolute when the
 * relative path would climb more than one folder (`/work/shared/imori`, not
 * `../../work/shared/imori`, from `/tmp/clone`).
 *
 * @param path A path, relative to the working folder or absolute.
 * @returns The path to print.
 *
 * @example
 * ```ts
 * import { resolve, shownPath } from "./path.ts";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(shownPath(Deno.cwd()), ".");
 * assertEquals(shownPath("data/imori"), "data/imori");
 * assertEquals(shownPath(resolve("data/imori")), "data/imori"); // an absolute path too
 * assertEquals(shownPath(resolve("../../x")), resolve("../../x")); // not ../../x
 * ```
 */
export function shownPath(path: string): string {
  const near = relative(Deno.cwd(), resolve(path)) || ".";
  return near.startsWith("../../") ? resolve(path) : near;
}
