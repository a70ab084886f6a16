/**
 * Which implementation did a kernel's work. The engine's kernels are layers
 * (oneDNN, then OpenBLAS, then the engine's wasm SIMD kernels, then
 * tfjs-backend-wasm's own), each handing what it declines to the next; the
 * libraries at the bottom of those layers report here when they run, so a
 * profiler can say per kernel call where the time went
 * (`deno task profile`'s "ran on" column).
 *
 * Reporting costs one check of a variable while nobody listens (no clock is
 * read; while a profiler listens, each report carries its time). No Deno API:
 * the page's engine reports the same way.
 *
 * @module
 */
import type { KernelConfig, KernelFunc } from "@tensorflow/tfjs-core";

/** What a route is called when tfjs-backend-wasm's own kernel ran (C++, XNNPACK for some). */
export const BACKEND_ROUTE = "tfjs-backend-wasm";

/** What a route is called when the engine's JavaScript did the work and no library ran. */
export const JAVASCRIPT_ROUTE = "JavaScript";

let listener: ((route: string, ms: number) => void) | null = null;

/** tfjs-backend-wasm's own kernel functions, as the engine found them before overriding. */
const backendKernels = new WeakSet<KernelFunc>();

/** The kernel functions the engine registered. */
const engineKernels = new WeakSet<KernelFunc>();

/**
 * The clock for a report's time: `performance.now()` while someone listens,
 * else -1 (no clock read outside a profile).
 *
 * @returns Milliseconds, or -1.
 */
export function routeClock(): number {
  return listener === null ? -1 : performance.now();
}

/**
 * Reports that an implementation did work for the kernel now running.
 *
 * @param route e.g. `oneDNN jit:avx2`, `OpenBLAS`, `wasm SIMD`.
 * @param since {@linkcode routeClock} before the work, to report its time; -1 for none.
 */
export function noteRoute(route: string, since = -1): void {
  if (listener !== null) listener(route, since < 0 ? 0 : performance.now() - since);
}

/**
 * Calls `f` and returns the routes reported while it ran, in order (one per
 * library call: a convolution on oneDNN that runs three primitives reports
 * three), and the milliseconds each route reported. A listener set inside `f`
 * (a nested call) takes the reports until it returns, then this one listens
 * again.
 *
 * @param f The work, synchronous.
 * @returns `f`'s result, the routes, and the time per route.
 *
 * @example
 * ```ts
 * import { listenRoutes, noteRoute, routeClock } from "./routes.ts";
 * import { assert, assertEquals } from "./assert.ts";
 * const { result, routes, times } = listenRoutes(() => {
 *   const since = routeClock();
 *   noteRoute("OpenBLAS", since);
 *   const inner = listenRoutes(() => noteRoute("wasm SIMD"));
 *   assertEquals(inner.routes, ["wasm SIMD"]);
 *   return 7;
 * });
 * assertEquals([result, routes], [7, ["OpenBLAS"]]);
 * assert(times.get("OpenBLAS")! >= 0);
 * assertEquals(routeClock(), -1); // nobody listens now
 * ```
 */
export function listenRoutes<T>(
  f: () => T,
): { result: T; routes: string[]; times: Map<string, number> } {
  const routes: string[] = [];
  const times = new Map<string, number>();
  const outer = listener;
  listener = (route, ms) => {
    routes.push(route);
    times.set(route, (times.get(route) ?? 0) + ms);
  };
  try {
    return { result: f(), routes, times };
  } finally {
    listener = outer;
  }
}

/**
 * Marks a kernel as tfjs-backend-wasm's own (the engine's layers call it for
 * what they decline; {@linkcode isBackendKernel} then names it).
 *
 * @param config The backend's kernel config.
 * @returns The same config.
 */
export function markBackendKernel<T extends KernelConfig>(config: T): T {
  backendKernels.add(config.kernelFunc);
  return config;
}

/**
 * Whether a kernel is tfjs-backend-wasm's own (marked by {@linkcode markBackendKernel}).
 *
 * @param config A kernel config.
 * @returns `true` for the backend's own.
 *
 * @example
 * ```ts
 * import { isBackendKernel, markBackendKernel } from "./routes.ts";
 * import { assertEquals } from "./assert.ts";
 * const own = { kernelName: "Add", backendName: "wasm", kernelFunc: () => [] };
 * assertEquals(isBackendKernel(own as never), false);
 * markBackendKernel(own as never);
 * assertEquals(isBackendKernel(own as never), true);
 * ```
 */
export function isBackendKernel(config: KernelConfig): boolean {
  return backendKernels.has(config.kernelFunc);
}

/**
 * Marks a kernel as one the engine registered (its own layers).
 *
 * @param config The engine's kernel config.
 * @returns The same config.
 */
export function markEngineKernel<T extends KernelConfig>(config: T): T {
  engineKernels.add(config.kernelFunc);
  return config;
}

/**
 * Whether the engine registered a kernel ({@linkcode markEngineKernel}); a
 * registered kernel it did not is the backend's own.
 *
 * @param config A registered kernel config.
 * @returns `true` for the engine's.
 *
 * @example
 * ```ts
 * import { isEngineKernel, markEngineKernel } from "./routes.ts";
 * import { assertEquals } from "./assert.ts";
 * const config = { kernelName: "Conv2D", backendName: "wasm", kernelFunc: () => [] };
 * assertEquals(isEngineKernel(config as never), false);
 * assertEquals(isEngineKernel(markEngineKernel(config as never)), true);
 * ```
 */
export function isEngineKernel(config: KernelConfig): boolean {
  return engineKernels.has(config.kernelFunc);
}

/**
 * What a call of a registered wasm kernel ran on when no library reported a
 * route: the backend's own kernel, or the engine's JavaScript.
 *
 * @param config The registered kernel config.
 * @returns {@linkcode BACKEND_ROUTE} or {@linkcode JAVASCRIPT_ROUTE}.
 *
 * @example
 * ```ts
 * import { markEngineKernel, unreportedRoute } from "./routes.ts";
 * import { assertEquals } from "./assert.ts";
 * const config = { kernelName: "Tile", backendName: "wasm", kernelFunc: () => [] };
 * assertEquals(unreportedRoute(config as never), "tfjs-backend-wasm");
 * assertEquals(unreportedRoute(markEngineKernel(config as never)), "JavaScript");
 * ```
 */
export function unreportedRoute(config: KernelConfig): string {
  return isBackendKernel(config) || !isEngineKernel(config) ? BACKEND_ROUTE : JAVASCRIPT_ROUTE;
}

/**
 * What one kernel call ran on, as a label: its distinct routes in the order
 * they first reported, or `fallback` when none did (the engine's own
 * JavaScript, or a kernel that is the backend's own).
 *
 * @param routes The routes reported during the call ({@linkcode listenRoutes}).
 * @param fallback The label when there are none.
 * @returns e.g. `OpenBLAS + tfjs-backend-wasm`.
 *
 * @example
 * ```ts
 * import { callRoute } from "./routes.ts";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(callRoute(["oneDNN jit:avx2", "OpenBLAS", "oneDNN jit:avx2"], "JavaScript"),
 *   "oneDNN jit:avx2 + OpenBLAS");
 * assertEquals(callRoute([], "JavaScript"), "JavaScript");
 * ```
 */
export function callRoute(routes: readonly string[], fallback: string): string {
  return routes.length === 0 ? fallback : [...new Set(routes)].join(" + ");
}
