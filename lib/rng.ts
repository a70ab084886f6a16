/**
 * A small seeded pseudo-random number generator (mulberry32) and a shuffle
 * built on it, so that a training run with the same seed sees the same
 * minibatches in the same order.
 *
 * @module
 */

/** A source of uniform numbers in [0, 1); each call advances its state. */
export type Rng = () => number;

/**
 * Creates a seeded generator of uniform numbers in [0, 1) (mulberry32: 32-bit
 * state, period 2^32, good enough for shuffling and augmentation).
 *
 * @param seed Any integer; the same seed gives the same sequence.
 * @returns A function that returns the next number of the sequence.
 *
 * @example
 * ```ts
 * import { createRng } from "./rng.ts";
 * import { assertEquals } from "./assert.ts";
 * const first = createRng(7);
 * const second = createRng(7);
 * assertEquals([first(), first()], [second(), second()]);
 * ```
 */
export function createRng(seed: number): Rng {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let mixed = state;
    mixed = Math.imul(mixed ^ (mixed >>> 15), mixed | 1);
    mixed ^= mixed + Math.imul(mixed ^ (mixed >>> 7), mixed | 61);
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Returns a shuffled copy of `items` (Fisher-Yates), leaving `items` as it was.
 *
 * @param items The values to shuffle.
 * @param rng The generator that decides the order.
 * @returns A new array with the same values in a random order.
 *
 * @example
 * ```ts
 * import { createRng, shuffled } from "./rng.ts";
 * import { assertEquals } from "./assert.ts";
 * const order = shuffled([0, 1, 2, 3, 4], createRng(1));
 * assertEquals([...order].sort(), [0, 1, 2, 3, 4]);
 * ```
 */
export function shuffled<T>(items: readonly T[], rng: Rng): T[] {
  const result = [...items];
  for (let index = result.length - 1; index > 0; index--) {
    const other = Math.floor(rng() * (index + 1));
    [result[index], result[other]] = [result[other]!, result[index]!];
  }
  return result;
}
