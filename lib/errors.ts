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
 * Runs an entry script's `run` function: a {@linkcode UserError} (or any
 * error named `UserError`, such as the engine's `BackendError`) becomes one
 * line on stderr and exit status 1.
 *
 * @param run The script's work.
 * @returns A promise that resolves when `run` has finished.
 *
 * @example
 * ```ts
 * import { runMain } from "./errors.ts";
 * await runMain(() => Promise.resolve());
 * ```
 */
export async function runMain(run: () => Promise<void>): Promise<void> {
  try {
    await run();
  } catch (error) {
    // By name, so that the engine's BackendError (named "UserError") counts too.
    if (error instanceof Error && error.name === "UserError") {
      console.error(`error: ${error.message}`);
      Deno.exit(1);
    }
    throw error;
  }
}
