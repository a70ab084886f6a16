/**
 * Training progress: one line rewritten in place on a terminal (iteration,
 * loss, iterations per second, time left), or a plain line every N
 * iterations when the output goes to a file or a pipe. Keeps the loss
 * history for the loss-curve figure.
 *
 * @module
 */

/** Settings of a {@linkcode Progress} report. */
export interface ProgressOptions {
  /** The last iteration of the run (iterations count from 1).
   * @default {500} */
  total?: number;
  /** The iteration before the first one reported (non-zero on resume).
   * @default {0} */
  start?: number;
  /** A plain line every this many iterations when not on a terminal.
   * @default {50} */
  every?: number;
  /** Whether to rewrite one line; by default, whether stdout is a terminal.
   * @default {Deno.stdout.isTerminal() in Deno, false elsewhere} */
  terminal?: boolean;
  /** Where the text goes.
   * @default {text written to stdout in Deno, console.log line by line elsewhere} */
  write?: (text: string) => void;
  /** Whether to write nothing at all (the history is still kept).
   * @default {false} */
  quiet?: boolean;
}

/**
 * Formats a duration in seconds as `42s`, `3m05s` or `1h02m`.
 *
 * @param seconds A duration.
 * @returns Its short form.
 *
 * @example
 * ```ts
 * import { formatDuration } from "./progress.ts";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(formatDuration(185), "3m05s");
 * ```
 */
export function formatDuration(seconds: number): string {
  const whole = Math.max(0, Math.round(seconds));
  if (whole < 60) return `${whole}s`;
  if (whole < 3600) return `${Math.floor(whole / 60)}m${String(whole % 60).padStart(2, "0")}s`;
  const minutes = Math.floor(whole / 60);
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, "0")}m`;
}

/**
 * Reports training progress and keeps the loss of every iteration.
 *
 * @example
 * ```ts
 * import { Progress } from "./progress.ts";
 * import { assertEquals } from "./assert.ts";
 * const lines: string[] = [];
 * const progress = new Progress({ total: 4, every: 2, terminal: false, write: (t) => lines.push(t) });
 * for (let iteration = 1; iteration <= 4; iteration++) progress.update(iteration, 1 / iteration);
 * assertEquals(progress.finish(), [1, 0.5, 1 / 3, 0.25]);
 * assertEquals(lines.length, 2);
 * ```
 */
export class Progress {
  /** Loss of each reported iteration, in order. */
  readonly losses: number[] = [];
  #total: number;
  #start: number;
  #every: number;
  #terminal: boolean;
  #write: (text: string) => void;
  #quiet: boolean;
  #startTime = performance.now();
  #lastLength = 0;

  /**
   * @param options Run length, reporting interval and output.
   */
  constructor(options: ProgressOptions = {}) {
    this.#total = options.total ?? 500;
    this.#start = options.start ?? 0;
    this.#every = Math.max(1, options.every ?? 50);
    // Platform-neutral: the page's training worker uses this class too, without Deno.
    const stdout = (globalThis as { Deno?: typeof Deno }).Deno?.stdout;
    this.#terminal = options.terminal ?? stdout?.isTerminal() ?? false;
    const encoder = new TextEncoder();
    this.#write = options.write ??
      (stdout
        ? (text) => stdout.writeSync(encoder.encode(text))
        : (text) => console.log(text.replace(/\n$/, "")));
    this.#quiet = options.quiet ?? false;
  }

  /**
   * Records the loss of one iteration and reports it when it is time.
   *
   * @param iteration The iteration just done, counted from 1.
   * @param loss Its loss.
   */
  update(iteration: number, loss: number): void {
    this.losses.push(loss);
    if (this.#quiet) return;
    const done = iteration - this.#start;
    const seconds = (performance.now() - this.#startTime) / 1000;
    const rate = done / Math.max(seconds, 1e-9);
    const left = (this.#total - iteration) / Math.max(rate, 1e-9);
    const width = String(this.#total).length;
    const line = `iteration ${String(iteration).padStart(width)}/${this.#total}` +
      `  loss ${loss.toFixed(4)}  ${rate.toFixed(1)} it/s  ${formatDuration(left)} left`;
    if (this.#terminal) {
      this.#write(`\r${line.padEnd(this.#lastLength)}`);
      this.#lastLength = line.length;
    } else if (iteration % this.#every === 0 || iteration === this.#total) {
      this.#write(line + "\n");
    }
  }

  /**
   * Ends the report (a newline after the rewritten line).
   *
   * @returns The loss history.
   */
  finish(): number[] {
    if (!this.#quiet && this.#terminal && this.#lastLength > 0) {
      this.#write("\n");
    }
    return this.losses;
  }
}
