/**
 * The tensors a kernel saves for its gradient, saved without a kernel call
 * each, on the wasm backend. TensorFlow.js saves each one as a clone: an
 * `Identity` kernel dispatch plus a node on the gradient tape (so that a
 * gradient of that gradient could reach the original). A bin training step
 * saved 70 tensors that way and SegNet's 318, each a full trip through the
 * engine's kernel machinery for what is, on the wasm backend, one more
 * reference to the same memory. Here a saved tensor is that reference: a new
 * tensor on the same data, its reference count raised, kept out of the
 * scopes' disposal as tfjs keeps its clones; the tape disposes it after the
 * backward pass as before.
 *
 * Only the saving of a first-order tape changes: with nested tapes (a
 * gradient of a gradient, where the clones' tape nodes matter) and on other
 * backends, TensorFlow.js's own code runs.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";

/** The parts of tfjs-core's `Engine` this module reads (tfjs 4.22). */
interface EngineInternals {
  backendName: string;
  backend: { incRef(dataId: object): void };
  state: { gradientDepth: number };
  keep<T extends tf.Tensor>(tensor: T): T;
  makeTensorFromTensorInfo(info: { dataId: object; shape: number[]; dtype: string }): tf.Tensor;
  saveTensorsForBackwardMode(tensors: tf.Tensor[]): tf.Tensor[];
}

/** Marks the wrapped method, so that wrapping twice does nothing. */
const WRAPPED = Symbol("segment saved tensors");

/**
 * Wraps the engine's `saveTensorsForBackwardMode` as the module's notes say.
 * Safe to call more than once.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import "@tensorflow/tfjs-backend-wasm";
 * import { useLightSavedTensors } from "./saved_tensors.ts";
 * import { assertEquals } from "../assert.ts";
 * useLightSavedTensors();
 * await tf.setBackend("wasm");
 * const before = tf.memory().numTensors;
 * const dx = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(x, x)))(tf.tensor1d([1, 2]));
 * assertEquals([...dx.dataSync()], [2, 4]);
 * dx.dispose();
 * assertEquals(tf.memory().numTensors, before + 1); // the tensor1d made above
 * ```
 */
export function useLightSavedTensors(): void {
  const engine = tf.engine() as unknown as EngineInternals & {
    saveTensorsForBackwardMode: EngineInternals["saveTensorsForBackwardMode"] & {
      [WRAPPED]?: true;
    };
  };
  const original = engine.saveTensorsForBackwardMode;
  if (original[WRAPPED]) return;
  const wrapped = function (this: EngineInternals, tensors: tf.Tensor[]) {
    if (this.state.gradientDepth !== 1 || this.backendName !== "wasm") {
      return original.call(this, tensors);
    }
    return tensors.map((tensor) => {
      const copy = this.makeTensorFromTensorInfo({
        dataId: tensor.dataId,
        shape: tensor.shape,
        dtype: tensor.dtype,
      });
      this.backend.incRef(tensor.dataId);
      return this.keep(copy);
    });
  };
  (wrapped as typeof original)[WRAPPED] = true;
  engine.saveTensorsForBackwardMode = wrapped as typeof original;
}
