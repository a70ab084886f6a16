/**
 * How many cores the other processes leave free, from Linux's CPU counters,
 * so that oneDNN's kernels run on that many threads: all of them on an idle
 * machine, one when another process keeps the other cores busy.
 *
 * Why: oneDNN's OpenMP threads meet at barriers, and a thread that shares
 * its core with another busy process arrives late, so everyone waits. On the
 * project's 2-core machine, on idle cores, two threads make a bin training
 * step 1.5-2 ms shorter than one (20.9 against 22.7 ms); on cores another
 * process also used, a training batch norm of bin took 16 ms on two threads
 * and 0.4 ms on one, a convolution's weight gradient 3.8-4.0 ms against 1.2.
 *
 * The counters: the time every core spent busy (Node's `os.cpus()`, which
 * Deno gives with `--allow-sys=cpus`), minus this process's own time
 * (`process.cpuUsage()`), over the last half second or so. Where they cannot
 * be read (no permission), every core counts as free, as PyTorch assumes.
 *
 * @module
 */

/**
 * Node's `process` as Deno gives it globally. Reached through the global, not
 * `import "node:os"`, so that this module, which oneDNN's kernels import, also
 * loads in a browser (the page's training worker bundles the engine's wasm
 * kernels; there the counters are never read).
 */
interface NodeProcess {
  cpuUsage(): { user: number; system: number };
  getBuiltinModule(name: "node:os"): { cpus(): { times: CoreTimes }[] };
}

/** Counters read at one moment, in milliseconds. */
export interface CpuCounters {
  /** Time all cores spent busy (user, nice, system, irq). */
  busy: number;
  /** Time all cores spent busy or idle. */
  total: number;
  /** Time this process spent on any core (user and system). */
  self: number;
}

/** One core's times as `os.cpus()` gives them, in milliseconds. */
export interface CoreTimes {
  user: number;
  nice: number;
  sys: number;
  idle: number;
  irq: number;
}

/**
 * The counters from every core's times and this process's CPU time.
 *
 * @param cores Each core's times in milliseconds (`os.cpus().map((cpu) => cpu.times)`).
 * @param self This process's time in microseconds (`process.cpuUsage()`).
 * @returns The counters.
 *
 * @example
 * ```ts
 * import { cpuCounters } from "./free_cores.ts";
 * import { assertEquals } from "./assert.ts";
 * const core = { user: 10, nice: 2, sys: 3, idle: 80, irq: 1 };
 * assertEquals(cpuCounters([core, core], { user: 5000, system: 1000 }), {
 *   busy: 32,
 *   total: 192,
 *   self: 6,
 * });
 * ```
 */
export function cpuCounters(
  cores: readonly CoreTimes[],
  self: { user: number; system: number },
): CpuCounters {
  let busy = 0;
  let total = 0;
  for (const { user, nice, sys, idle, irq } of cores) {
    busy += user + nice + sys + irq;
    total += user + nice + sys + irq + idle;
  }
  return { busy, total, self: (self.user + self.system) / 1000 };
}

/**
 * Reads the counters, or `null` where they cannot be read (Deno without
 * `--allow-sys=cpus`).
 *
 * @returns The counters now, or `null`.
 *
 * @example
 * ```ts
 * import { readCpuCounters } from "./free_cores.ts";
 * import { assert } from "./assert.ts";
 * const counters = readCpuCounters();
 * assert(counters === null || counters.total >= counters.busy);
 * ```
 */
export function readCpuCounters(): CpuCounters | null {
  try {
    // Asked first: os.cpus() without the permission would prompt in a terminal.
    if (Deno.permissions.querySync({ name: "sys", kind: "cpus" }).state !== "granted") return null;
    const process = (globalThis as { process?: NodeProcess }).process;
    if (!process) return null;
    const cores = process.getBuiltinModule("node:os").cpus().map((cpu) => cpu.times);
    return cores.length === 0 ? null : cpuCounters(cores, process.cpuUsage());
  } catch {
    return null;
  }
}

/** Options of {@linkcode FreeCores}. */
export interface FreeCoresOptions {
  /**
   * Reads the counters; `null` when they cannot be read.
   * @default readCpuCounters
   */
  read?: () => CpuCounters | null;
  /**
   * Milliseconds between two readings; the count holds in between.
   * @default 500
   */
  intervalMs?: number;
  /**
   * Readings in a row that must give a new count before it is taken.
   * @default 3
   */
  agree?: number;
}

/**
 * The threads to run on now: the cores that other processes left free, at
 * least 1 and at most `cores`, once {@linkcode FreeCoresOptions.agree}
 * readings in a row say so. A change of threads changes the order of
 * oneDNN's sums and so the last digits of a training run; requiring a few
 * readings keeps a passing blip (a process starting, a test spawning one)
 * from changing them, so on a machine in the same state a seed gives the
 * same numbers.
 *
 * @example
 * ```ts
 * import { FreeCores } from "./free_cores.ts";
 * import { assertEquals } from "./assert.ts";
 * // Over each 100 ms of 2 cores, other processes were busy for 90 of the 200.
 * let reading = 0;
 * const read = () => ({ busy: 140 * reading, total: 200 * reading, self: 50 * reading++ });
 * const cores = new FreeCores(2, { read, intervalMs: 500, agree: 2 });
 * assertEquals(cores.threads(0), 2); // the first reading: every core
 * assertEquals(cores.threads(600), 2); // one reading says 1
 * assertEquals(cores.threads(1200), 1); // two in a row
 * ```
 */
export class FreeCores {
  readonly #cores: number;
  readonly #read: () => CpuCounters | null;
  readonly #intervalMs: number;
  readonly #agree: number;
  #last: CpuCounters | null = null;
  #lastAt = -Infinity;
  #threads: number;
  #candidate = 0;
  #streak = 0;

  /**
   * @param cores The most threads to use (the cores of the machine).
   * @param options Where the counters come from, how often, and how many readings must agree.
   */
  constructor(cores: number, options: FreeCoresOptions = {}) {
    this.#cores = Math.max(1, cores);
    this.#read = options.read ?? readCpuCounters;
    this.#intervalMs = options.intervalMs ?? 500;
    this.#agree = Math.max(1, options.agree ?? 3);
    this.#threads = this.#cores;
  }

  /**
   * The threads to use at time `now`, reading the counters again when the
   * interval has passed.
   *
   * @param now Milliseconds, e.g. `performance.now()`.
   * @returns Threads, from 1 to the cores given.
   */
  threads(now: number): number {
    if (this.#cores === 1 || now - this.#lastAt < this.#intervalMs) return this.#threads;
    this.#lastAt = now;
    const counters = this.#read();
    const last = this.#last;
    this.#last = counters;
    if (counters === null || last === null) return this.#threads;
    const total = counters.total - last.total;
    if (total <= 0) return this.#threads;
    const others = counters.busy - last.busy - (counters.self - last.self);
    const busyCores = Math.max(0, others) / total * this.#cores;
    const free = Math.min(this.#cores, Math.max(1, Math.round(this.#cores - busyCores)));
    if (free === this.#threads) {
      this.#streak = 0;
    } else {
      this.#streak = free === this.#candidate ? this.#streak + 1 : 1;
      this.#candidate = free;
      if (this.#streak >= this.#agree) {
        this.#threads = free;
        this.#streak = 0;
      }
    }
    return this.#threads;
  }
}
