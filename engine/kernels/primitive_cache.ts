/**
 * The cache every oneDNN kernel keeps its compiled primitives in: one entry
 * per shape (the kernel's key) and thread count, built on first use
 * (compiling a primitive takes milliseconds) and reused every step after.
 *
 * @module
 */
import type { Dnnl } from "../dnnl.ts";

/**
 * Compiled primitives by key and thread count; `null` marks a key oneDNN
 * turned down (its kernel runs the fallback).
 *
 * @example
 * ```ts
 * import { PrimitiveCache } from "./primitive_cache.ts";
 * import { assertEquals } from "../assert.ts";
 * const released: string[] = [];
 * const cache = new PrimitiveCache<{ name: string }>({ threads: () => 2 } as never, {
 *   release: (entry) => released.push(entry.name),
 * });
 * assertEquals(cache.get("a", () => ({ name: "a" })), { name: "a" });
 * assertEquals(cache.get("b", () => { throw new Error("declined"); }), null);
 * assertEquals([cache.size, cache.declined], [2, ["b threads 2"]]);
 * cache.clear();
 * assertEquals(released, ["a"]);
 * ```
 */
export class PrimitiveCache<Entry> {
  readonly #dnnl: Dnnl;
  readonly #release: (entry: Entry) => void;
  readonly #maxEntries: number;
  readonly #entries = new Map<string, Entry | null>();

  /**
   * @param dnnl The oneDNN library (its {@linkcode Dnnl.threads} picks the thread count).
   * @param options `release` destroys an entry's handles; `maxEntries` (default unbounded)
   *   empties the cache when it is full.
   */
  constructor(
    dnnl: Dnnl,
    options: { release: (entry: Entry) => void; maxEntries?: number },
  ) {
    this.#dnnl = dnnl;
    this.#release = options.release;
    this.#maxEntries = options.maxEntries ?? Infinity;
  }

  /** Entries so far, declined keys included. */
  get size(): number {
    return this.#entries.size;
  }

  /** The keys oneDNN turned down (they ran on the fallback kernels), with their thread counts. */
  get declined(): string[] {
    return [...this.#entries].filter(([, entry]) => entry === null).map(([key]) => key);
  }

  /**
   * The entry of `key` at the thread count {@linkcode Dnnl.threads} chooses
   * now, built with `build` on first use: oneDNN fixes a primitive's threads
   * when it builds it. A `build` that returns `null` or throws marks the key
   * declined.
   *
   * @param key The kernel's key for the shape.
   * @param build Builds the entry (after the thread count is set).
   * @returns The entry, or `null` when declined.
   */
  get(key: string, build: () => Entry | null): Entry | null {
    const keyed = `${key} threads ${this.#dnnl.threads()}`;
    let entry = this.#entries.get(keyed);
    if (entry === undefined) {
      if (this.#entries.size >= this.#maxEntries) this.clear();
      try {
        entry = build();
      } catch {
        entry = null;
      }
      this.#entries.set(keyed, entry);
    }
    return entry;
  }

  /** Destroys every cached entry. */
  clear(): void {
    for (const entry of this.#entries.values()) {
      if (entry !== null) this.#release(entry);
    }
    this.#entries.clear();
  }
}

/**
 * The base of the engine's oneDNN kernel classes: the library, the cache of
 * compiled primitives, and what each class reports of that cache.
 *
 * @example
 * ```ts
 * import { DnnlKernel } from "./primitive_cache.ts";
 * import { assertEquals } from "../assert.ts";
 * const kernel = new DnnlKernel<string>({ threads: () => 1 } as never, { release: () => {} });
 * assertEquals([kernel.size, kernel.declined], [0, []]);
 * ```
 */
export class DnnlKernel<Entry> {
  /** The oneDNN library. */
  protected readonly dnnl: Dnnl;
  /** Compiled primitives, per key and thread count. */
  protected readonly cache: PrimitiveCache<Entry>;

  /**
   * @param dnnl The oneDNN library.
   * @param options As {@linkcode PrimitiveCache}'s: how to destroy an entry, and the bound.
   */
  constructor(dnnl: Dnnl, options: { release: (entry: Entry) => void; maxEntries?: number }) {
    this.dnnl = dnnl;
    this.cache = new PrimitiveCache(dnnl, options);
  }

  /** Shapes seen so far (including those oneDNN turned down). */
  get size(): number {
    return this.cache.size;
  }

  /** The cache keys oneDNN turned down (they ran on the fallback kernels). */
  get declined(): string[] {
    return this.cache.declined;
  }

  /** Destroys every cached primitive. */
  clear(): void {
    this.cache.clear();
  }
}
