/**
 * The TensorFlow.js backend of the training worker: wasm unless a real GPU is
 * there or another backend is asked for. WebGL is preferred to WebGPU on a
 * GPU: these networks are small, and WebGPU's per-kernel overhead makes it
 * the slower of the two for them; WebGPU runs when asked. A software WebGL
 * (SwiftShader, llvmpipe) is no GPU: `auto` then keeps wasm, `webgl` still
 * runs on it.
 *
 * Kernels of the project's engine that need no Deno API (its wasm kernels)
 * plug in through `registerKernels`, called once the backend is set and
 * before any kernel runs.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { setWasmPaths } from "@tensorflow/tfjs-backend-wasm";
import "@tensorflow/tfjs-backend-webgpu";

/** The backends the page can ask for. */
export type BackendWish = "auto" | "wasm" | "webgl" | "webgpu" | "cpu";

/** The backends, for the page's choice. */
export const BACKEND_WISHES: readonly BackendWish[] = ["auto", "wasm", "webgl", "webgpu", "cpu"];

/** Settings of {@linkcode chooseBackend}. */
export interface ChooseBackendOptions {
  /** Where the wasm backend's `.wasm` files are served. @default {"/vendor/"} */
  wasmPaths?: string;
  /** Registers extra kernels for the backend chosen (the engine's platform-neutral ones).
   * @default {none} */
  registerKernels?: (backend: string) => Promise<void> | void;
}

/** The backend in use and why. */
export interface BackendChoice {
  /** `tf.getBackend()` once set. */
  name: string;
  /** Why, in words for the page, e.g. `wasm (no GPU: WebGL renders on SwiftShader)`. */
  reason: string;
}

/**
 * The renderer of this context's WebGL 2, or `undefined` without one.
 *
 * @returns The unmasked renderer string where the browser gives it.
 */
function webglRenderer(): string | undefined {
  const Canvas = (globalThis as { OffscreenCanvas?: new (w: number, h: number) => unknown })
    .OffscreenCanvas;
  if (!Canvas) return undefined;
  const canvas = new Canvas(1, 1) as { getContext(kind: string): WebGl | null };
  const gl = canvas.getContext("webgl2");
  if (!gl) return undefined;
  const info = gl.getExtension("WEBGL_debug_renderer_info");
  const renderer = String(
    gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER) ?? "",
  );
  gl.getExtension("WEBGL_lose_context")?.loseContext();
  return renderer;
}

/** The little of WebGL this module calls (tests compile without the DOM library). */
interface WebGl {
  RENDERER: number;
  getExtension(name: string): { UNMASKED_RENDERER_WEBGL: number; loseContext(): void } | null;
  getParameter(name: number): unknown;
}

/**
 * Whether a WebGL renderer is software, not a GPU.
 *
 * @param renderer The renderer string.
 * @returns True for SwiftShader, llvmpipe and other software renderers.
 *
 * @example
 * ```ts
 * import { isSoftwareRenderer } from "./backend.ts";
 * import { assert } from "../lib/assert.ts";
 * assert(isSoftwareRenderer("ANGLE (Google, Vulkan 1.3.0 (SwiftShader Device (Subzero)), SwiftShader driver)"));
 * assert(!isSoftwareRenderer("ANGLE (NVIDIA, NVIDIA GeForce RTX 3060, OpenGL 4.5)"));
 * ```
 */
export function isSoftwareRenderer(renderer: string): boolean {
  return /swiftshader|llvmpipe|softpipe|software|basic render/i.test(renderer);
}

/**
 * Sets the backend: the one asked for, or for `auto` WebGL on a real GPU and
 * wasm elsewhere; falls back to wasm, then cpu, when a backend fails to start.
 *
 * @param wish The backend asked for.
 * @param options Where the wasm files are, and extra kernels to register.
 * @returns The backend in use and why.
 *
 * @example
 * ```ts
 * import { chooseBackend } from "./backend.ts";
 * import { assertEquals } from "../lib/assert.ts";
 * assertEquals((await chooseBackend("cpu")).name, "cpu");
 * ```
 */
export async function chooseBackend(
  wish: BackendWish,
  options: ChooseBackendOptions = {},
): Promise<BackendChoice> {
  let wanted: string = wish;
  let reason = "asked for";
  if (wish === "auto") {
    const renderer = webglRenderer();
    const gpu = renderer !== undefined && !isSoftwareRenderer(renderer);
    wanted = gpu ? "webgl" : "wasm";
    reason = gpu
      ? `a GPU: ${renderer}`
      : renderer
      ? `no GPU: WebGL renders on ${(renderer.match(/swiftshader|llvmpipe|softpipe/i)?.[0] ??
        renderer.trim())}`
      : "no WebGL";
  }
  setWasmPaths(options.wasmPaths ?? "/vendor/");
  const failed: string[] = [];
  for (const name of new Set([wanted, "wasm", "cpu"])) {
    let ready = false;
    try {
      ready = await tf.setBackend(name);
      await tf.ready();
    } catch {
      ready = false;
    }
    if (!ready) {
      failed.push(name);
      continue;
    }
    await options.registerKernels?.(name);
    return {
      name: tf.getBackend(),
      reason: failed.length ? `${failed.join(" and ")} failed to start here` : reason,
    };
  }
  throw new Error("No TensorFlow.js backend starts here, not even cpu");
}
