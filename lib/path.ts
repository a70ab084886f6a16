/**
 * Path helpers, behind one module so that a later switch to `@std/path` is
 * one line.
 *
 * @module
 */
export { basename, dirname, extname, join, relative, resolve } from "node:path";
