/**
 * Both cores for the SIMD kernels: one helper Web Worker runs part of a
 * kernel's work on the same wasm heap while the calling thread runs the rest,
 * so that a convolution takes about half the time on two cores. The Winograd
 * kernels are called on both threads with the same work and claim it a block
 * at a time from a shared counter, so a thread on a slower or busier core
 * takes less of it; the direct kernels take fixed halves.
 *
 * Two threads can share the heap only if it is a shared `WebAssembly.Memory`.
 * tfjs-backend-wasm's single-threaded builds define their own unshared memory,
 * so {@linkcode startSharedHeap} rewrites the module as the backend loads it:
 * its memory section becomes an import of a shared memory of the same limits,
 * the only change (tfjs-backend-wasm's threaded build imports a shared memory
 * the same way). Emscripten's glue then finds the memory among the module's
 * exports as before. The kernels run on that heap as the flavour built for a
 * shared memory (`kernels_shared.wasm`); the helper instantiates the same
 * module on the same memory.
 *
 * The two threads meet through a control block of 32 int32s on the heap: the
 * caller writes a job's kernel and arguments and bumps the job number
 * (`Atomics.notify`), runs its own half, then waits (`Atomics.wait`) until the
 * helper has written the same number as done. A wake-up takes 20-60
 * microseconds here. The helper closes itself after {@linkcode IDLE_MS} without
 * work (a live worker would keep Deno from exiting) and the next job starts a
 * new one; meanwhile the caller runs both halves itself. Every split the
 * kernels use gives the same floats as one thread doing all the work, so the
 * results do not depend on whether the helper took part.
 *
 * Nothing here uses a Deno API: a browser worker can run it where it is
 * cross-origin isolated (`SharedArrayBuffer`), which `tools/serve.ts` sets up.
 *
 * @module
 */
import { FreeCores } from "../free_cores.ts";
import { noteRoute, routeClock } from "../routes.ts";
import type { SimdExports } from "./simd.ts";

/** Milliseconds the helper waits for work before it closes. */
export const IDLE_MS = 300;

/** The kernels the helper can run, by index in the control block. */
const KERNEL_NAMES = [
  "conv_forward",
  "conv_backward_input",
  "conv_backward_filter",
  "winograd_conv",
  "winograd_filter_grad",
] as const satisfies readonly (keyof SimdExports)[];

/** A kernel the helper can run. */
export type SharedKernel = typeof KERNEL_NAMES[number];

/** Int32 slots of the control block. */
const JOB = 0, DONE = 1, HELPER = 2, KERNEL = 3, COUNT = 4, GENERATION = 5, ARGS = 6;
const FAILED = 31;
/** States of the `HELPER` slot. */
const GONE = 0, IDLE = 1, CLAIMED = 2;

/**
 * The helper's source: instantiate the kernels on the shared memory, then serve jobs until
 * idle for `idleMs` or until a newer helper's generation replaces its own.
 */
const HELPER_SOURCE = `"use strict";
self.onmessage = (event) => {
  const { memory, module, control, names, seen: first, generation, idleMs } = event.data;
  const exports = new WebAssembly.Instance(module, { env: { memory } }).exports;
  const kernels = names.map((name) => exports[name]);
  const state = new Int32Array(memory.buffer, control, 32);
  let seen = first;
  for (;;) {
    let job;
    while ((job = Atomics.load(state, ${JOB})) === seen) {
      const waited = Atomics.wait(state, ${JOB}, seen, idleMs);
      if (Atomics.load(state, ${GENERATION}) !== generation) break;
      if (
        waited === "timed-out" &&
        Atomics.compareExchange(state, ${HELPER}, ${IDLE}, ${GONE}) === ${IDLE}
      ) break;
    }
    if (Atomics.load(state, ${GENERATION}) !== generation || job === seen) {
      self.close();
      return;
    }
    seen = job;
    try {
      kernels[state[${KERNEL}]](...state.subarray(${ARGS}, ${ARGS} + state[${COUNT}]));
    } catch {
      Atomics.store(state, ${FAILED}, 1);
    }
    Atomics.store(state, ${DONE}, job);
    Atomics.notify(state, ${DONE});
  }
};
`;

/** The parts of an Emscripten module the helper needs. */
interface EmscriptenAlloc {
  _malloc(bytes: number): number;
}

/**
 * A helper thread for the SIMD kernels on a shared heap. Create it with
 * {@linkcode startSimdThreads}.
 */
export class SimdThreads {
  #memory: WebAssembly.Memory;
  #module: WebAssembly.Module;
  #control: number;
  #kernels: SimdExports;
  #worker: Worker | null = null;
  #url: string;
  #freeCores: FreeCores | null;

  /**
   * @param memory The shared heap.
   * @param module `kernels_shared.wasm`, compiled.
   * @param control Byte offset of 128 bytes on the heap for the control block.
   * @param kernels The calling thread's instance of the same module.
   * @param pinned Always use the helper; else only while other processes leave
   *   two cores free (`../free_cores.ts`: a helper that shares its core with a busy
   *   process arrives late, and the caller waits for it).
   */
  constructor(
    memory: WebAssembly.Memory,
    module: WebAssembly.Module,
    control: number,
    kernels: SimdExports,
    pinned = false,
  ) {
    this.#memory = memory;
    this.#module = module;
    this.#control = control;
    this.#kernels = kernels;
    this.#freeCores = pinned ? null : new FreeCores(2);
    this.#url = URL.createObjectURL(new Blob([HELPER_SOURCE], { type: "text/javascript" }));
    new Int32Array(memory.buffer, control, 32).fill(0);
  }

  #state(): Int32Array {
    return new Int32Array(this.#memory.buffer, this.#control, 32);
  }

  /** Starts a helper; it serves jobs from the next one on. */
  #spawn(state: Int32Array): void {
    const worker = new Worker(this.#url, { type: "module" });
    const generation = Atomics.add(state, GENERATION, 1) + 1;
    Atomics.store(state, HELPER, IDLE);
    worker.postMessage({
      memory: this.#memory,
      module: this.#module,
      control: this.#control,
      names: KERNEL_NAMES,
      seen: Atomics.load(state, JOB),
      generation,
      idleMs: IDLE_MS,
    });
    this.#worker = worker;
  }

  /** Jobs the helper has run (its half of each kernel call it took). */
  get helped(): number {
    return this.#helped;
  }
  #helped = 0;

  /**
   * Runs `kernel(...mine)` here and `kernel(...theirs)` on the helper at the
   * same time, and returns when both are done; with no helper ready (the first
   * call, or after it closed when idle) both run here, one after the other.
   * The two calls must write disjoint memory, or claim disjoint work from a
   * shared counter (the Winograd kernels: the first call then takes it all).
   *
   * @param kernel The kernel.
   * @param mine This thread's arguments (int32 values: byte offsets, counts).
   * @param theirs The helper's arguments, at most 26.
   * @throws {Error} When the helper's call trapped.
   */
  run(kernel: SharedKernel, mine: number[], theirs: number[]): void {
    const call = this.#kernels[kernel] as (...args: number[]) => void;
    const since = routeClock();
    if (this.#freeCores !== null && this.#freeCores.threads(performance.now()) < 2) {
      call(...mine);
      call(...theirs);
      noteRoute("wasm SIMD", since);
      return;
    }
    const state = this.#state();
    if (Atomics.compareExchange(state, HELPER, IDLE, CLAIMED) !== IDLE) {
      if (Atomics.load(state, HELPER) === GONE) this.#spawn(state);
      call(...mine);
      call(...theirs);
      noteRoute("wasm SIMD", since);
      return;
    }
    state[KERNEL] = KERNEL_NAMES.indexOf(kernel);
    state[COUNT] = theirs.length;
    state.set(theirs, ARGS);
    const job = (state[JOB]! + 1) | 0;
    Atomics.store(state, JOB, job);
    Atomics.notify(state, JOB, 1);
    try {
      call(...mine);
    } finally {
      let done;
      while ((done = Atomics.load(state, DONE)) !== job) Atomics.wait(state, DONE, done);
      Atomics.store(state, HELPER, IDLE);
    }
    noteRoute("wasm SIMD on 2 threads", since);
    this.#helped++;
    if (Atomics.exchange(state, FAILED, 0) !== 0) {
      throw new Error(`The SIMD helper thread failed in ${kernel}`);
    }
  }

  /**
   * Stops the helper now (it also closes by itself when idle); the next call
   * runs here and starts a new one.
   */
  stop(): void {
    const state = this.#state();
    // A new generation: the helper wakes, sees it is not its own, and closes.
    Atomics.add(state, GENERATION, 1);
    Atomics.store(state, HELPER, GONE);
    Atomics.notify(state, JOB);
    this.#worker = null;
  }
}

/**
 * A helper thread for the SIMD kernels on `memory`, or why there is none.
 *
 * @param memory The backend's heap.
 * @param module `kernels_shared.wasm`, compiled.
 * @param kernels The calling thread's instance of it on `memory`.
 * @param backend The Emscripten module (for the control block's 128 bytes).
 * @param threads Threads wanted: 1 for none.
 * @param pinned Use the helper whatever other processes do (`SEGMENT_THREADS=2`).
 * @returns The helper, or the reason for none (unshared heap, one thread, no Worker).
 */
export function startSimdThreads(
  memory: WebAssembly.Memory,
  module: WebAssembly.Module,
  kernels: SimdExports,
  backend: EmscriptenAlloc,
  threads: number,
  pinned = false,
): SimdThreads | string {
  if (threads < 2) return "1 thread";
  if (typeof SharedArrayBuffer === "undefined" || !(memory.buffer instanceof SharedArrayBuffer)) {
    return "the wasm heap is not shared";
  }
  if (typeof Worker === "undefined") return "no Web Workers here";
  return new SimdThreads(memory, module, backend._malloc(128) >>> 0, kernels, pinned);
}

/** Reads an unsigned LEB128 number at `at`: its value and the offset after it. */
function readLeb(bytes: Uint8Array, at: number): [number, number] {
  let value = 0;
  for (let shift = 0;; shift += 7) {
    const byte = bytes[at++]!;
    value += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) return [value, at];
  }
}

/** An unsigned LEB128 number. */
function leb(value: number): number[] {
  const out: number[] = [];
  do {
    let byte = value % 128;
    value = Math.floor(value / 128);
    if (value > 0) byte |= 0x80;
    out.push(byte);
  } while (value > 0);
  return out;
}

/** A wasm name: its length, then its UTF-8 bytes. */
function wasmName(name: string): number[] {
  const bytes = new TextEncoder().encode(name);
  return [...leb(bytes.length), ...bytes];
}

/** A module rewritten to import its memory, shared, with the limits it defined. */
export interface SharedMemoryModule {
  /** The rewritten module. */
  bytes: Uint8Array<ArrayBuffer>;
  /** Its memory's initial size, in 64 KiB pages. */
  initial: number;
  /** Its memory's maximum size, in 64 KiB pages (65536 when it declared none). */
  maximum: number;
}

/**
 * Rewrites a wasm module that defines one memory (and imports none) to import
 * it as `env.memory`, shared, with the same limits: its memory section is
 * dropped and one entry appended to its import section. Nothing else changes
 * (the memory keeps index 0, so its export and data segments still refer to it).
 *
 * @param bytes The module.
 * @returns The rewritten module and its memory's limits, or `null` when the
 *   module does not define exactly one memory or has no import section.
 *
 * @example
 * ```ts
 * import { importSharedMemory } from "./simd_threads.ts";
 * import { assertEquals } from "../assert.ts";
 * // (module (import "env" "f" (func)) (memory 2 10) (export "memory" (memory 0)))
 * const bytes = new Uint8Array([
 *   0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 96, 0, 0, 2, 9, 1, 3, 101, 110, 118, 1, 102, 0, 0,
 *   5, 4, 1, 1, 2, 10, 7, 10, 1, 6, 109, 101, 109, 111, 114, 121, 2, 0,
 * ]);
 * const shared = importSharedMemory(bytes)!;
 * assertEquals([shared.initial, shared.maximum], [2, 10]);
 * const memory = new WebAssembly.Memory({ initial: 2, maximum: 10, shared: true });
 * const instance = new WebAssembly.Instance(new WebAssembly.Module(shared.bytes), {
 *   env: { f: () => {}, memory },
 * });
 * assertEquals(instance.exports.memory, memory);
 * ```
 */
export function importSharedMemory(bytes: Uint8Array): SharedMemoryModule | null {
  const sections: { id: number; body: Uint8Array }[] = [];
  let at = 8;
  while (at < bytes.length) {
    const id = bytes[at]!;
    const [size, start] = readLeb(bytes, at + 1);
    sections.push({ id, body: bytes.subarray(start, start + size) });
    at = start + size;
  }
  const memories = sections.filter((section) => section.id === 5);
  const imports = sections.find((section) => section.id === 2);
  if (memories.length !== 1 || imports === undefined) return null;
  const body = memories[0]!.body;
  const [count, flagsAt] = readLeb(body, 0);
  if (count !== 1) return null;
  const [flags, initialAt] = readLeb(body, flagsAt);
  const [initial, maximumAt] = readLeb(body, initialAt);
  const maximum = flags & 1 ? readLeb(body, maximumAt)[0] : 65536;
  // An imported memory already (kind 2 in the import section) is not this module's kind.
  const [importCount, entriesAt] = readLeb(imports.body, 0);
  const entry = [
    ...wasmName("env"),
    ...wasmName("memory"),
    2, // memory
    3, // a maximum, shared
    ...leb(initial),
    ...leb(maximum),
  ];
  const importBody = [...leb(importCount + 1), ...imports.body.subarray(entriesAt), ...entry];
  const parts: Uint8Array[] = [bytes.subarray(0, 8)];
  for (const section of sections) {
    if (section.id === 5) continue;
    const content = section.id === 2 ? new Uint8Array(importBody) : section.body;
    parts.push(new Uint8Array([section.id, ...leb(content.length)]), content);
  }
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return { bytes: out, initial, maximum };
}

/** Whether a module imports from Emscripten's `wasi_snapshot_preview1` (tfjs-backend-wasm does). */
function isEmscriptenModule(bytes: Uint8Array): boolean {
  let at = 8;
  while (at < bytes.length) {
    const id = bytes[at]!;
    const [size, start] = readLeb(bytes, at + 1);
    if (id === 2) {
      const text = new TextDecoder("latin1").decode(bytes.subarray(start, start + size));
      return text.includes("wasi_snapshot_preview1");
    }
    at = start + size;
  }
  return false;
}

/**
 * Runs `start` (which initializes tfjs-backend-wasm, e.g. `tf.setBackend("wasm")`)
 * with the backend's module loaded onto a shared heap: while it runs,
 * `WebAssembly.instantiate` given the bytes of tfjs-backend-wasm's
 * single-threaded build instantiates them rewritten by
 * {@linkcode importSharedMemory}, with a new shared memory. It is restored
 * before this returns. A backend already initialized keeps its heap.
 *
 * @param start Initializes the backend.
 * @returns What `start` returns, and the shared memory if the backend took one.
 */
export async function startSharedHeap<T>(
  start: () => Promise<T>,
): Promise<{ result: T; memory: WebAssembly.Memory | null }> {
  if (typeof SharedArrayBuffer === "undefined") return { result: await start(), memory: null };
  const original = WebAssembly.instantiate;
  let memory: WebAssembly.Memory | null = null;
  const patched = (
    source: BufferSource | WebAssembly.Module,
    imports?: WebAssembly.Imports,
  ) => {
    if (source instanceof WebAssembly.Module || memory !== null || imports === undefined) {
      return original(source as BufferSource, imports);
    }
    const bytes = source instanceof Uint8Array
      ? source
      : ArrayBuffer.isView(source)
      ? new Uint8Array(source.buffer, source.byteOffset, source.byteLength)
      : new Uint8Array(source);
    const shared = isEmscriptenModule(bytes) ? importSharedMemory(bytes) : null;
    if (shared === null) return original(source as BufferSource, imports);
    memory = new WebAssembly.Memory({
      initial: shared.initial,
      maximum: shared.maximum,
      shared: true,
    });
    const env = (imports.env ?? {}) as Record<string, WebAssembly.ImportValue>;
    return original(shared.bytes, { ...imports, env: { ...env, memory } });
  };
  (WebAssembly as { instantiate: unknown }).instantiate = patched;
  try {
    const result = await start();
    return { result, memory };
  } finally {
    (WebAssembly as { instantiate: unknown }).instantiate = original;
  }
}
