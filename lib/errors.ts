/**
 * Errors meant for the user, and the wrapper every entry script runs in.
 *
 * A {@linkcode UserError} is bad input (a missing file, a bad flag, a mask of
 * the wrong size): it is printed as one line and the process exits with
 * status 1, never with a stack trace. Any other error is a bug and keeps its
 * stack.
 *
 * @module
 */

/**
 * An error caused by the user's input, printed as one line without a stack.
 *
 * @example
 * ```ts
 * import { UserError } from "./errors.ts";
 * import { assertEquals } from "./assert.ts";
 * const error = new UserError("Cannot read data/x.png: file is missing");
 * assertEquals(error.name, "UserError");
 * ```
 */
export class UserError extends Error {
  /**
   * @param message Sentence case: what was wrong and how to fix it.
   */
  constructor(message: string) {
    super(message);
    this.name = "UserError";
  }
}

/**
 * A run the user stopped (Ctrl+C) after saving what it had done: its message
 * is one line saying where the work is and how to continue, and the process
 * exits with `exitCode` (130 for Ctrl+C, as shells report it).
 *
 * @example
 * ```ts
 * import { Stopped } from "./errors.ts";
 * import { assertEquals } from "./assert.ts";
 * const stopped = new Stopped("stopped at iteration 7 (Ctrl+C)", 130);
 * assertEquals([stopped.name, stopped.exitCode], ["Stopped", 130]);
 * ```
 */
export class Stopped extends Error {
  /**
   * @param message Where the work is and the command that continues it.
   * @param exitCode The process's exit status.
   */
  constructor(message: string, readonly exitCode: number) {
    super(message);
    this.name = "Stopped";
  }
}

/**
 * The one line for an error of the machine rather than the program, met
 * where no write or flag check named it first: an operating-system error
 * (out of space, permission: its message names the path) or running out of
 * memory (a wasm "memory access out of bounds", a failed allocation).
 *
 * @param error Any error.
 * @returns The line, or `undefined` for an error that is a bug.
 *
 * @example
 * ```ts
 * import { systemErrorLine } from "./errors.ts";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(
 *   systemErrorLine(new RangeError("Array buffer allocation failed")),
 *   "Out of memory (Array buffer allocation failed); lower --batch-size or --size and run again",
 * );
 * assertEquals(systemErrorLine(new TypeError("x is undefined")), undefined);
 * ```
 */
export function systemErrorLine(error: unknown): string | undefined {
  if (!(error instanceof Error)) return undefined;
  const line = error.message.split("\n")[0] ?? "";
  if (
    /memory access out of bounds|out of memory|allocation failed|invalid (typed )?array length/i
      .test(line)
  ) {
    return `Out of memory (${line}); lower --batch-size or --size and run again`;
  }
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string" && /^E[A-Z]+$/.test(code)) {
    const fix = code === "ENOSPC" || code === "EDQUOT"
      ? "free some space and run again"
      : "check the path and its permissions, or pass another folder";
    return `${line}; ${fix}`;
  }
  return undefined;
}

/**
 * Runs an entry script's `run` function: a {@linkcode UserError} (or any
 * error named `UserError`, such as the engine's `BackendError`) becomes one
 * line on stderr and exit status 1, and so does an error of the machine
 * ({@linkcode systemErrorLine}: out of space, permission, out of memory); a
 * {@linkcode Stopped} run is its line on stderr and its exit status.
 *
 * @param run The script's work; what it resolves to is not used.
 * @returns A promise that resolves when `run` has finished.
 *
 * @example
 * ```ts
 * import { runMain } from "./errors.ts";
 * await runMain(() => Promise.resolve());
 * ```
 */
export async function runMain(run: () => Promise<unknown>): Promise<void> {
  try {
    await run();
  } catch (error) {
    // By name, so that the engine's BackendError (named "UserError") counts too.
    if (error instanceof Stopped) {
      console.error(error.message);
      Deno.exit(error.exitCode);
    }
    if (error instanceof Error && error.name === "UserError") {
      console.error(`error: ${error.message}`);
      Deno.exit(1);
    }
    const line = systemErrorLine(error);
    if (line !== undefined) {
      console.error(`error: ${line}`);
      Deno.exit(1);
    }
    throw error;
  }
}
