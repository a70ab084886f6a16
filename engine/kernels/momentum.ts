/**
 * SGD with momentum (`tf.train.momentum`, the tutorial's optimizer) as one
 * kernel per variable of up to {@linkcode MAX_FUSED_MOMENTUM_SIZE} values
 * where the active backend has it (the wasm backend),
 * instead of four (`Multiply`, `Add`, `Multiply`, `Add`) and two scalar
 * tensors: a training step of bin updates 26 variables, most of 32 values, so
 * its optimizer was about a hundred tiny kernels, each costing more in
 * TensorFlow.js's bookkeeping than in arithmetic.
 *
 * The update is TensorFlow.js's, rounded to float32 after every operation as
 * its kernels round it, so weights and momenta are the same to the bit:
 *
 * ```
 * accumulation' = momentum * accumulation + gradient
 * value'        = -learningRate * accumulation' + value
 * ```
 *
 * `MomentumOptimizer.prototype.applyGradients` is wrapped: on backends
 * without the kernel, and with Nesterov momentum, TensorFlow.js's own code runs.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { KernelConfig, TensorInfo } from "@tensorflow/tfjs-core";

/** A gradient by variable name, as `applyGradients` takes a list of them. */
interface NamedTensor {
  name: string;
  tensor: tf.Tensor;
}
import { heapFloats, heapOffset, type WasmBackend } from "./wasm_heap.ts";

/**
 * The kernel: inputs `value`, `accumulation`, `gradient` (float32, one
 * shape); attributes `momentum` and `step` (minus the learning rate); outputs
 * `[value', accumulation']`.
 */
export const MOMENTUM_UPDATE = "SegmentMomentumUpdate";

/**
 * {@linkcode MOMENTUM_UPDATE} for the wasm backend: one loop over the heap.
 *
 * @returns The kernel config to register.
 *
 * @example
 * ```ts
 * import { momentumUpdateWasmConfig } from "./momentum.ts";
 * import { assertEquals } from "../assert.ts";
 * assertEquals(momentumUpdateWasmConfig().kernelName, "SegmentMomentumUpdate");
 * ```
 */
export function momentumUpdateWasmConfig(): KernelConfig {
  return {
    kernelName: MOMENTUM_UPDATE,
    backendName: "wasm",
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as WasmBackend;
      const { value, accumulation, gradient } = inputs as Record<string, TensorInfo>;
      const { momentum, step } = attrs as unknown as { momentum: number; step: number };
      const [m, c] = [Math.fround(momentum), Math.fround(step)];
      const length = value!.shape.reduce((a, b) => a * b, 1);
      const newValue = wasm.makeOutput(value!.shape, "float32");
      const newAccumulation = wasm.makeOutput(value!.shape, "float32");
      // Offsets and the view after both allocations (an allocation may move the heap).
      const heap = heapFloats(wasm);
      const [v, a, g, nv, na] = [value!, accumulation!, gradient!, newValue, newAccumulation].map(
        (tensor) => heapOffset(wasm, tensor) / 4,
      ) as [number, number, number, number, number];
      for (let i = 0; i < length; i++) {
        // A product or sum of two float32s rounded once to float32 is the float32 operation.
        const accumulated = Math.fround(Math.fround(m * heap[a + i]!) + heap[g + i]!);
        heap[na + i] = accumulated;
        heap[nv + i] = Math.fround(c * accumulated) + heap[v + i]!;
      }
      return [newValue, newAccumulation];
    },
  };
}

/**
 * Values from which a variable keeps TensorFlow.js's four kernels: they are
 * vectorized, the loop here is not, and at that size the calls cost little
 * beside the arithmetic (2.36M values, one of SegNet's 512-channel kernels:
 * 2.3-2.8 ms on the four, 3.9 ms in the loop).
 */
export const MAX_FUSED_MOMENTUM_SIZE = 32768;

/** The parts of tfjs-core's `MomentumOptimizer` this module reads (tfjs 4.22). */
interface MomentumInternals {
  useNesterov: boolean;
  /** The momentum as a float32 scalar (`setMomentum` does not change it, in tfjs either). */
  m: tf.Scalar;
  /** Minus the learning rate as a float32 scalar. */
  c: tf.Scalar;
  accumulations: ({ originalName: string; variable: tf.Variable } | undefined)[];
  incrementIterations(): void;
  applyGradients(gradients: tf.NamedTensorMap | NamedTensor[]): void;
}

/** Marks a wrapped `applyGradients`, so that wrapping twice does nothing. */
const WRAPPED = Symbol("segment fused momentum");

/**
 * Wraps `MomentumOptimizer.prototype.applyGradients` so that each variable's
 * update is one {@linkcode MOMENTUM_UPDATE} where the active backend has it.
 * Safe to call more than once; without the kernel nothing changes.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { useFusedMomentum } from "./momentum.ts";
 * import { assertAlmostEquals } from "../assert.ts";
 * useFusedMomentum();
 * await tf.setBackend("cpu");
 * const weight = tf.variable(tf.tensor1d([1]));
 * const optimizer = tf.train.momentum(0.1, 0.9);
 * for (let i = 0; i < 2; i++) optimizer.minimize(() => tf.sum(tf.mul(weight, 2)) as tf.Scalar);
 * assertAlmostEquals(weight.dataSync()[0]!, 1 - 0.2 - 0.38, 1e-6);
 * ```
 */
export function useFusedMomentum(): void {
  const prototype = tf.MomentumOptimizer.prototype as unknown as MomentumInternals;
  const original = prototype.applyGradients as MomentumInternals["applyGradients"] & {
    [WRAPPED]?: true;
  };
  if (original[WRAPPED]) return;
  const wrapped = function (
    this: MomentumInternals,
    gradients: tf.NamedTensorMap | NamedTensor[],
  ) {
    if (this.useNesterov || tf.getKernel(MOMENTUM_UPDATE, tf.getBackend()) === undefined) {
      return original.call(this, gradients);
    }
    const names = Array.isArray(gradients)
      ? gradients.map((item) => item.name)
      : Object.keys(gradients);
    const attrs = { momentum: this.m.dataSync()[0]!, step: this.c.dataSync()[0]! };
    names.forEach((name, i) => {
      const value = tf.engine().registeredVariables[name]!;
      this.accumulations[i] ??= {
        originalName: `${name}/momentum`,
        variable: tf.tidy(() => tf.zerosLike(value).variable(false)),
      };
      const accumulation = this.accumulations[i]!.variable;
      const gradient = Array.isArray(gradients) ? gradients[i]!.tensor : gradients[name];
      if (gradient == null) return;
      tf.tidy(() => {
        if (value.size > MAX_FUSED_MOMENTUM_SIZE) {
          // TensorFlow.js's own four kernels, as in its MomentumOptimizer.
          const newAccumulation = tf.add(tf.mul(this.m, accumulation), gradient);
          accumulation.assign(newAccumulation);
          value.assign(tf.add(tf.mul(this.c, newAccumulation), value));
          return;
        }
        const [newValue, newAccumulation] = tf.engine().runKernel(
          MOMENTUM_UPDATE,
          { value, accumulation, gradient },
          attrs,
        ) as tf.Tensor[];
        accumulation.assign(newAccumulation!);
        value.assign(newValue!);
      });
    });
    this.incrementIterations();
  };
  (wrapped as typeof original)[WRAPPED] = true;
  prototype.applyGradients = wrapped;
}
