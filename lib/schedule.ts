/**
 * Learning-rate schedules: constant (the tutorial's), cosine decay, and
 * one-cycle (warm up, then cosine down).
 *
 * @module
 */

/** Names of the learning-rate schedules. */
export type ScheduleName = "constant" | "cosine" | "onecycle";

/** The schedule names, for a flag's choices. */
export const SCHEDULES: readonly ScheduleName[] = ["constant", "cosine", "onecycle"];

/** Where a step is in training, for {@linkcode learningRateAt}. */
export interface ScheduleOptions {
  /** Which schedule.
   * @default {"constant"} */
  schedule?: ScheduleName;
  /** The base (peak) learning rate.
   * @default {0.01} */
  lr?: number;
  /** Total number of iterations of the run.
   * @default {500} */
  total?: number;
  /** Fraction of the run spent warming up in `onecycle`.
   * @default {0.3} */
  warmup?: number;
}

/**
 * The learning rate at one iteration (counted from 0).
 *
 * `constant` keeps `lr`; `cosine` goes from `lr` to 0 along half a cosine;
 * `onecycle` rises linearly from `lr / 25` to `lr` over the warm-up fraction,
 * then falls along a cosine to `lr / 10000`.
 *
 * @param iteration The iteration, 0 for the first.
 * @param options Schedule, base rate and run length.
 * @returns The learning rate for that iteration.
 *
 * @example
 * ```ts
 * import { learningRateAt } from "./schedule.ts";
 * import { assertAlmostEquals } from "./assert.ts";
 * assertAlmostEquals(learningRateAt(250, { schedule: "cosine", lr: 0.1, total: 500 }), 0.05);
 * assertAlmostEquals(learningRateAt(499, { schedule: "constant", lr: 0.1 }), 0.1);
 * ```
 */
export function learningRateAt(iteration: number, options: ScheduleOptions = {}): number {
  const { schedule = "constant", lr = 0.01, total = 500, warmup = 0.3 } = options;
  const progress = Math.min(Math.max(iteration / Math.max(total, 1), 0), 1);
  if (schedule === "cosine") {
    return lr * 0.5 * (1 + Math.cos(Math.PI * progress));
  }
  if (schedule === "onecycle") {
    const start = lr / 25;
    const end = lr / 10000;
    if (progress < warmup) {
      return start + (lr - start) * (progress / warmup);
    }
    const down = (progress - warmup) / Math.max(1 - warmup, 1e-9);
    return end + (lr - end) * 0.5 * (1 + Math.cos(Math.PI * down));
  }
  return lr;
}
