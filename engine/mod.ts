/**
 * The training engine under the exercises: it sets up the fastest
 * TensorFlow.js backend that works on this machine and adds what that
 * backend lacks for training (the wasm backend's gradients, and its
 * convolutions on oneDNN or OpenBLAS when either library is installed). See
 * README.md.
 *
 * The exercises reach it through this one module:
 *
 * @example
 * ```ts
 * import { setupBackend } from "./mod.ts";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(await setupBackend("cpu", { quiet: true }), "cpu");
 * ```
 *
 * @module
 */
export {
  BACKEND_NAMES,
  type BackendName,
  declinedByDnnl,
  findGpuAdapter,
  isSoftwareAdapter,
  setupBackend,
  type SetupBackendOptions,
} from "./backend.ts";
export { openBlas } from "./blas.ts";
export { openDnnl } from "./dnnl.ts";
export { callRoute, listenRoutes, unreportedRoute } from "./routes.ts";
export { BackendError } from "./errors.ts";
