/**
 * The tensors a kernel or a custom gradient saves for its gradient, saved
 * without a kernel call each, on the wasm backend. TensorFlow.js saves each
 * one as a clone (`Engine.clone`): an `Identity` kernel dispatch plus a node
 * on the gradient tape (so that a gradient of that gradient could reach the
 * original). A bin training step saved 70 tensors that way and SegNet's 318
 * through the kernels' `saveTensorsForBackwardMode`; unetlike's step saved 192
 * more through `tf.customGrad`'s `save` (the `fusedConv2d` op's four tensors
 * per convolution, the training batch norm's six per layer), each a full trip
 * through the engine's kernel machinery and one more node for the backward
 * pass to filter, for what is, on the wasm backend, one more reference to the
 * same memory. Here a saved tensor is that reference ({@linkcode sameData}):
 * a new tensor on the same data, its reference count raised, kept out of the
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
  clone(tensor: tf.Tensor): tf.Tensor;
}

/** Marks the wrapped method, so that wrapping twice does nothing. */
const WRAPPED = Symbol("segment saved tensors");

/**
 * A new tensor on the same data as `tensor`, with the data's reference count
 * raised: what an `Identity` kernel returns on the wasm backend, without the
 * kernel call or a tape node. It belongs to the current `tf.tidy` scope, and
 * disposing it leaves `tensor` as it was.
 *
 * @param tensor Any tensor on the active backend.
 * @returns A tensor of the same shape, dtype and values, not `tensor` itself.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { sameData } from "./saved_tensors.ts";
 * import { assertEquals } from "../assert.ts";
 * await tf.setBackend("cpu");
 * const x = tf.tensor1d([1, 2]);
 * const y = sameData(x);
 * y.dispose();
 * assertEquals([...x.dataSync()], [1, 2]);
 * ```
 */
export function sameData<T extends tf.Tensor>(tensor: T): T {
  const engine = tf.engine() as unknown as EngineInternals;
  const copy = engine.makeTensorFromTensorInfo({
    dataId: tensor.dataId,
    shape: tensor.shape,
    dtype: tensor.dtype,
  });
  engine.backend.incRef(tensor.dataId);
  return copy as T;
}

/**
 * Wraps the engine's `clone`, which tfjs calls only to save tensors for a
 * gradient, as the module's notes say. Safe to call more than once.
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
    clone: EngineInternals["clone"] & { [WRAPPED]?: true };
  };
  const original = engine.clone;
  if (original[WRAPPED]) return;
  const wrapped = function (this: EngineInternals, tensor: tf.Tensor): tf.Tensor {
    if (this.state.gradientDepth !== 1 || this.backendName !== "wasm") {
      return original.call(this, tensor);
    }
    return sameData(tensor);
  };
  (wrapped as typeof original)[WRAPPED] = true;
  engine.clone = wrapped as typeof original;
}
