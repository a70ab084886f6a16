/**
 * Assertions for tests and doc examples, behind one module so that a later
 * switch to `@std/assert` is one line.
 *
 * @module
 */
import { rejects, throws } from "node:assert/strict";

export {
  deepStrictEqual as assertEquals,
  notDeepStrictEqual as assertNotEquals,
  ok as assert,
} from "node:assert/strict";

/** What a thrown error must be: a pattern or test of it (as Node's), or its class. */
type Expected = RegExp | ((error: Error) => boolean) | (new (...args: never[]) => Error);

function isErrorClass(expected: Expected | undefined): expected is new () => Error {
  return typeof expected === "function" &&
    (expected === Error || expected.prototype instanceof Error);
}

/** The check of an error of class `kind` whose message includes `includes`. */
function ofClass(kind: new () => Error, includes?: string): (error: Error) => boolean {
  return (error) => {
    if (!(error instanceof kind)) return false;
    if (includes !== undefined && !error.message.includes(includes)) {
      throw new Error(`Expected the message to include "${includes}"; it is "${error.message}"`);
    }
    return true;
  };
}

/**
 * Asserts that `fn` throws, as `@std/assert`'s `assertThrows`: with a class and
 * a text, the error must be of that class and its message include the text;
 * with a pattern or a test function, as Node's `assert.throws` (Node's own
 * third argument is only the failure message, so the text was never checked).
 *
 * @param fn The code that must throw.
 * @param expected The error's class, a pattern of its message, or a test of it.
 * @param includes With a class: text the message must include.
 * @returns The error thrown.
 * @throws {AssertionError} When nothing is thrown or the error does not match.
 *
 * @example
 * ```ts
 * import { assertThrows } from "./assert.ts";
 * assertThrows(() => { throw new RangeError("size 63 is odd"); }, RangeError, "odd");
 * assertThrows(() => assertThrows(() => { throw new Error("a"); }, Error, "b"));
 * ```
 */
export function assertThrows(fn: () => unknown, expected?: Expected, includes?: string): Error {
  let caught: Error | undefined;
  const check = isErrorClass(expected) ? ofClass(expected, includes) : expected;
  throws(() => {
    try {
      fn();
    } catch (error) {
      caught = error as Error;
      throw error;
    }
  }, check as never);
  return caught!;
}

/**
 * Asserts that `fn` (or a promise) rejects, as `@std/assert`'s
 * `assertRejects`: see {@linkcode assertThrows} for `expected` and `includes`.
 *
 * @param fn The async code, or its promise.
 * @param expected The error's class, a pattern of its message, or a test of it.
 * @param includes With a class: text the message must include.
 * @returns The error.
 * @throws {AssertionError} When it resolves or the error does not match.
 *
 * @example
 * ```ts
 * import { assertRejects } from "./assert.ts";
 * await assertRejects(() => Promise.reject(new TypeError("bad --size")), TypeError, "--size");
 * await assertRejects(assertRejects(Promise.reject(new Error("a")), Error, "b"));
 * ```
 */
export async function assertRejects(
  fn: (() => Promise<unknown>) | Promise<unknown>,
  expected?: Expected,
  includes?: string,
): Promise<Error> {
  let caught: Error | undefined;
  const check = isErrorClass(expected) ? ofClass(expected, includes) : expected;
  const promise = typeof fn === "function" ? fn() : fn;
  await rejects(
    promise.catch((error) => {
      caught = error as Error;
      throw error;
    }),
    check as never,
  );
  return caught!;
}

/**
 * Asserts that two numbers are within `tolerance` of each other.
 *
 * @param actual The measured value.
 * @param expected The reference value.
 * @param tolerance Largest accepted absolute difference.
 * @param message Context for the failure message.
 *
 * @example
 * ```ts
 * import { assertAlmostEquals } from "./assert.ts";
 * assertAlmostEquals(0.1 + 0.2, 0.3, 1e-9);
 * ```
 */
export function assertAlmostEquals(
  actual: number,
  expected: number,
  tolerance = 1e-7,
  message = "",
): void {
  if (!(Math.abs(actual - expected) <= tolerance)) {
    throw new Error(
      `${message ? message + ": " : ""}expected ${expected} +- ${tolerance}, got ${actual}`,
    );
  }
}
