/**
 * Assertions for the engine's tests and doc examples, behind one module so
 * that a later switch to `@std/assert` is one line.
 *
 * @module
 */
export {
  deepStrictEqual as assertEquals,
  ok as assert,
  rejects as assertRejects,
  throws as assertThrows,
} from "node:assert/strict";

/**
 * Asserts that two numbers are within `tolerance` of each other.
 *
 * @param actual The measured value.
 * @param expected The reference value.
 * @param tolerance Largest accepted absolute difference.
 *
 * @example
 * ```ts
 * import { assertAlmostEquals } from "./assert.ts";
 * assertAlmostEquals(0.1 + 0.2, 0.3, 1e-9);
 * ```
 */
export function assertAlmostEquals(actual: number, expected: number, tolerance = 1e-7): void {
  if (!(Math.abs(actual - expected) <= tolerance)) {
    throw new Error(`expected ${expected} +- ${tolerance}, got ${actual}`);
  }
}
