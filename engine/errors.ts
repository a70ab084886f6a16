/**
 * The one error the engine throws on purpose.
 *
 * @module
 */

/**
 * A backend asked for cannot run here, or does not exist: the message says
 * why and what to install or pass instead. Its `name` is `"UserError"`, so
 * that the project's entry scripts print it as one line, as every other
 * error about the user's setup, without importing the engine.
 *
 * @example
 * ```ts
 * import { BackendError } from "./errors.ts";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(new BackendError("Unknown backend").name, "UserError");
 * ```
 */
export class BackendError extends Error {
  /** @param message Sentence case: what was wrong and how to fix it. */
  constructor(message: string) {
    super(message);
    this.name = "UserError";
  }
}
