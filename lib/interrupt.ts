/**
 * Ctrl+C during training, as users of training tools expect: the first one
 * asks the run to stop after the current iteration (and save it), a second
 * one quits at once. SIGTERM counts as Ctrl+C; on Windows, where Deno
 * listens for SIGINT and SIGBREAK only, Ctrl+Break does.
 *
 * @module
 */

/** The signals that stop training on this system. */
const SIGNALS: readonly Deno.Signal[] = Deno.build.os === "windows"
  ? ["SIGINT", "SIGBREAK"]
  : ["SIGINT", "SIGTERM"];

/**
 * Milliseconds within which the same signal counts as the first one again: under `timeout -s INT`
 * a `deno task` script got one SIGINT twice, a few milliseconds apart, in 2 of 3 tries, and quit
 * without saving; a person's second Ctrl+C comes later.
 */
const DUPLICATE_MS = 100;

/** How a signal is named to the user. */
const NAMES: Partial<Record<Deno.Signal, string>> = {
  SIGINT: "Ctrl+C",
  SIGBREAK: "Ctrl+Break",
  SIGTERM: "SIGTERM",
};

/** A listener from {@linkcode stopOnSignal}. */
export interface StopRequest extends Disposable {
  /** Aborted by the first signal. */
  signal: AbortSignal;
  /** The first signal's name for the user (`Ctrl+C`), once it came. */
  readonly reason: string | undefined;
  /** The exit status for that signal: 128 + its number (130 for Ctrl+C, 143 for SIGTERM). */
  readonly exitCode: number;
  /** Lets a signal in: await it once an iteration. On the cpu and wasm backends a training loop
   * awaits only promises that are already resolved, so without it a signal would wait for the
   * next file written (the checkpoint every 100 iterations). */
  poll(): Promise<void>;
}

/**
 * Listens for Ctrl+C (and SIGTERM, or Ctrl+Break on Windows) until disposed:
 * the first aborts `signal`, so that the loop stops after its current
 * iteration and saves it; a second (not the same signal within 100 ms, which
 * is the first delivered twice) writes `quit` on a line of its own and
 * exits at once. Disposing removes the listeners, so that the default (the
 * process ends) holds again.
 *
 * @param quit The line written when a second signal quits at once.
 * @returns The request to stop; dispose it when training is over.
 *
 * @example
 * ```ts
 * import { stopOnSignal } from "./interrupt.ts";
 * import { assertEquals } from "./assert.ts";
 * using stop = stopOnSignal("quit at once");
 * assertEquals(stop.signal.aborted, false);
 * ```
 */
export function stopOnSignal(quit: string): StopRequest {
  const controller = new AbortController();
  let first: Deno.Signal | undefined;
  let firstAt = 0;
  const exitCode = (name: Deno.Signal | undefined) => name === "SIGTERM" ? 143 : 130;
  const listeners = SIGNALS.map((name) => {
    const listener = () => {
      // The same signal again within DUPLICATE_MS is the first one delivered twice (`deno task`
      // forwards a Ctrl+C that its process group also got), not a second Ctrl+C.
      if (first === name && performance.now() - firstAt < DUPLICATE_MS) return;
      if (first !== undefined) {
        // The progress line may be unfinished: end it first.
        Deno.stdout.writeSync(new TextEncoder().encode(`\n${quit}\n`));
        Deno.exit(exitCode(first));
      }
      first = name;
      firstAt = performance.now();
      controller.abort();
    };
    Deno.addSignalListener(name, listener);
    return [name, listener] as const;
  });
  return {
    signal: controller.signal,
    get reason() {
      return first && (NAMES[first] ?? first);
    },
    get exitCode() {
      return exitCode(first);
    },
    poll: () => new Promise((resolve) => setTimeout(resolve, 0)),
    [Symbol.dispose]() {
      for (const [name, listener] of listeners) Deno.removeSignalListener(name, listener);
    },
  };
}
