/**
 * SGD with momentum (`tf.train.momentum`, the tutorial's optimizer) as one
 * kernel per variable where the active backend has it (the wasm backend),
 * instead of four (`Multiply`, `Add`, `Multiply`, `Add`) and two scalar
 * tensors:
 *
 * - variables of up to {@linkcode MAX_FUSED_MOMENTUM_SIZE} values run one
 *   JavaScript loop: a training step of bin updates 26 variables, most of 32
 *   values, so its optimizer was about a hundred tiny kernels, each costing
 *   more in TensorFlow.js's bookkeeping than in arithmetic. Where nothing
 *   else shares the variable's memory the loop writes it in place, outside
 *   any kernel call (no dispatch, no new tensors);
 * - larger ones, with oneDNN, run two multi-threaded oneDNN sums
 *   (`scaled_sum_dnnl.ts`), one pass over memory each instead of TensorFlow.js's
 *   four: in place where nothing else shares the variable's memory (as
 *   PyTorch's SGD updates its parameters), else into new tensors through the
 *   kernel. Without oneDNN they keep TensorFlow.js's four kernels, which are
 *   vectorized where the loop is not.
 *
 * Measured on 2 cores while other processes may have been running (medians
 * of 15-31 updates per run, over several runs): the update of SegNet's 25
 * variables above the size (24.9M values) took 26-31 ms on the four kernels,
 * 18-31 ms on the sums into new tensors, 10-21 ms (mostly 10-11) on the sums
 * in place; of one 512x512x3x3 variable (2.36M values) 2.2-2.9 ms, 1.0-2.0
 * ms and 0.6-1.3 ms. A whole SegNet training step (batch 16, 64x64, about
 * 640 ms) took 16 +- 4 ms less in place than on the four kernels (20 pairs of
 * steps alternating the two in one process).
 *
 * The update is TensorFlow.js's, rounded to float32 after every operation as
 * its kernels round it:
 *
 * ```
 * accumulation' = momentum * accumulation + gradient
 * value'        = -learningRate * accumulation' + value
 * ```
 *
 * The loop gives weights and momenta equal to the bit. oneDNN's sums round the
 * same way (each product, then each sum) and measured equal to the bit too:
 * max difference 0 from the cpu backend in weights and momenta after 3 steps
 * of a 40000-value and of a 2.36M-value variable, in place and through the
 * kernel (oneDNN 2.6.3, Debian's `libdnnl2`). Another oneDNN build might fuse
 * the multiply-add; `kernels_test.ts` holds large variables to a relative
 * 1e-6 of cpu.
 *
 * `MomentumOptimizer.prototype.applyGradients` is wrapped: on backends
 * without the kernel, and with Nesterov momentum, TensorFlow.js's own code runs.
 * Updates in place run outside `runKernel`, so `tf.profile` does not list them.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { KernelConfig, TensorInfo } from "@tensorflow/tfjs-core";
import type { DnnlScaledSum } from "./scaled_sum_dnnl.ts";
import { heapFloats, heapOffset, markWritten, type WasmBackend } from "./wasm_heap.ts";

/** A gradient by variable name, as `applyGradients` takes a list of them. */
interface NamedTensor {
  name: string;
  tensor: tf.Tensor;
}

/**
 * The kernel: inputs `value`, `accumulation`, `gradient` (float32, one
 * shape); attributes `momentum` and `step` (minus the learning rate); outputs
 * `[value', accumulation']`.
 */
export const MOMENTUM_UPDATE = "SegmentMomentumUpdate";

/** The attributes of {@linkcode MOMENTUM_UPDATE}. */
export interface MomentumAttrs {
  /** The momentum (used as a float32). */
  momentum: number;
  /** Minus the learning rate (used as a float32). */
  step: number;
}

/** A {@linkcode MOMENTUM_UPDATE} kernel config, with what the optimizer asks of it. */
export interface MomentumKernelConfig extends KernelConfig {
  /**
   * Values above which the optimizer keeps TensorFlow.js's four kernels
   * instead of this one: {@linkcode MAX_FUSED_MOMENTUM_SIZE}, or `Infinity`
   * when large variables run on oneDNN.
   */
  maxSize: number;
  /**
   * Updates a variable and its accumulation in their own memory where that
   * applies (see {@linkcode momentumUpdateWasmConfig}); the optimizer tries it
   * before the kernel.
   *
   * @returns `false`, having written nothing, where it does not apply.
   */
  updateInPlace?: (
    value: tf.Variable,
    accumulation: tf.Variable,
    gradient: tf.Tensor,
    attrs: MomentumAttrs,
  ) => boolean;
}

/**
 * {@linkcode MOMENTUM_UPDATE} for the wasm backend: one loop over the heap
 * into new tensors, or with `sums`, for variables above
 * {@linkcode MAX_FUSED_MOMENTUM_SIZE} values, two oneDNN sums (the loop where
 * oneDNN declines). The kernel never writes its inputs.
 *
 * The config's `updateInPlace` runs the same loop (and with `sums`, above
 * the size, the two sums) on the variables' own memory instead, for float32
 * variables whose value and accumulation each have one reference on the wasm
 * backend (the variable: no clone, reshape or gradient shares the memory
 * written), as PyTorch's SGD does: the same passes, but each writes memory it
 * has just read instead of a new buffer, and no tensors are made. Elsewhere
 * it returns `false` and the kernel runs.
 *
 * @param sums oneDNN's sums, or `null` (the default) for the loop only.
 * @returns The kernel config to register.
 *
 * @example
 * ```ts
 * import { momentumUpdateWasmConfig } from "./momentum.ts";
 * import { assertEquals } from "../assert.ts";
 * assertEquals(momentumUpdateWasmConfig().kernelName, "SegmentMomentumUpdate");
 * assertEquals(momentumUpdateWasmConfig().maxSize, 32768);
 * assertEquals(momentumUpdateWasmConfig({} as never).maxSize, Infinity);
 * ```
 */
export function momentumUpdateWasmConfig(
  sums: DnnlScaledSum | null = null,
): MomentumKernelConfig {
  return {
    kernelName: MOMENTUM_UPDATE,
    backendName: "wasm",
    maxSize: sums === null ? MAX_FUSED_MOMENTUM_SIZE : Infinity,
    updateInPlace: (value, accumulation, gradient, attrs) =>
      updateInPlace(sums, value, accumulation, gradient, attrs),
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as WasmBackend;
      const { value, accumulation, gradient } = inputs as Record<string, TensorInfo>;
      const { momentum, step } = attrs as unknown as MomentumAttrs;
      const [m, c] = [Math.fround(momentum), Math.fround(step)];
      const length = value!.shape.reduce((a, b) => a * b, 1);
      const newValue = wasm.makeOutput(value!.shape, "float32");
      const newAccumulation = wasm.makeOutput(value!.shape, "float32");
      const offsets = [value!, accumulation!, gradient!, newValue, newAccumulation].map(
        (tensor) => heapOffset(wasm, tensor),
      ) as [number, number, number, number, number];
      if (
        sums !== null && length > MAX_FUSED_MOMENTUM_SIZE &&
        sums.accepts(length, [m, 1]) && sums.accepts(length, [c, 1])
      ) {
        const [v, a, g, nv, na] = offsets;
        // accumulation' = m * accumulation + gradient; value' = c * accumulation' + value.
        sums.run(wasm, length, [m, 1], { a, b: g, out: na });
        sums.run(wasm, length, [c, 1], { a: na, b: v, out: nv });
        return [newValue, newAccumulation];
      }
      // The view after both allocations (an allocation may move the heap).
      const [v, a, g, nv, na] = offsets.map((offset) => offset / 4) as typeof offsets;
      momentumLoop(heapFloats(wasm), length, m, c, { v, a, g, nv, na });
      return [newValue, newAccumulation];
    },
  };
}

/**
 * The update of one variable over the heap, `length` floats from float
 * offsets `v` (value), `a` (accumulation), `g` (gradient) into `nv` and `na`
 * (the same as `v` and `a` in place: each element is read before it is
 * written). A product or sum of two float32s rounded once to float32 is the
 * float32 operation, so this is tfjs's four kernels to the bit.
 */
function momentumLoop(
  heap: Float32Array,
  length: number,
  m: number,
  c: number,
  at: { v: number; a: number; g: number; nv: number; na: number },
): void {
  const { v, a, g, nv, na } = at;
  for (let i = 0; i < length; i++) {
    const accumulated = Math.fround(Math.fround(m * heap[a + i]!) + heap[g + i]!);
    heap[na + i] = accumulated;
    heap[nv + i] = Math.fround(c * accumulated) + heap[v + i]!;
  }
}

/**
 * The in-place update of {@linkcode momentumUpdateWasmConfig}: the loop for
 * variables up to {@linkcode MAX_FUSED_MOMENTUM_SIZE} values (with or without
 * oneDNN: for bin's 26 small variables it replaces 26 kernel calls and 52 new
 * tensors), oneDNN's two sums above; `false` where it does not apply.
 */
function updateInPlace(
  sums: DnnlScaledSum | null,
  value: tf.Variable,
  accumulation: tf.Variable,
  gradient: tf.Tensor,
  attrs: MomentumAttrs,
): boolean {
  const wasm = tf.backend() as WasmBackend;
  const length = value.size;
  const tensors = [value, accumulation, gradient];
  const small = length <= MAX_FUSED_MOMENTUM_SIZE;
  if ((!small && sums === null) || tensors.some((tensor) => tensor.size !== length)) {
    return false;
  }
  // All float32 and on this backend (data elsewhere moves when a kernel reads it).
  if (tensors.some((t) => t.dtype !== "float32" || !wasm.dataIdMap.has(t.dataId))) return false;
  // The variables are the only references to what is written: kernels such as Reshape,
  // Identity and Cast share their input's memory and count one more reference.
  if (wasm.refCount(value.dataId) !== 1 || wasm.refCount(accumulation.dataId) !== 1) {
    return false;
  }
  const [m, c] = [Math.fround(attrs.momentum), Math.fround(attrs.step)];
  if (small) {
    const [v, a, g] = tensors.map((tensor) => heapOffset(wasm, tensor) / 4) as [
      number,
      number,
      number,
    ];
    momentumLoop(heapFloats(wasm), length, m, c, { v, a, g, nv: v, na: a });
    markWritten(wasm, value);
    markWritten(wasm, accumulation);
    return true;
  }
  // oneDNN writes its first source in place: accumulation first, then value (c * a + v).
  if (sums === null || !sums.accepts(length, [m, 1]) || !sums.accepts(length, [1, c])) {
    return false;
  }
  const [v, a, g] = tensors.map((tensor) => heapOffset(wasm, tensor)) as [number, number, number];
  sums.run(wasm, length, [m, 1], { a, b: g, out: a });
  sums.run(wasm, length, [1, c], { a: v, b: a, out: v });
  markWritten(wasm, value);
  markWritten(wasm, accumulation);
  return true;
}

/**
 * Values above which a variable leaves the loop: for oneDNN's sums when
 * oneDNN is there, else for TensorFlow.js's four kernels. Both are
 * vectorized, the loop is not, and at that size the calls cost little beside
 * the arithmetic (2.36M values, one of SegNet's 512-channel kernels: 2.3-2.8
 * ms on the four, 3.9 ms in the loop, 0.6-2.0 ms on the sums).
 */
export const MAX_FUSED_MOMENTUM_SIZE = 32768;

/** The parts of tfjs-core's `MomentumOptimizer` this module reads (tfjs 4.22). */
interface MomentumInternals {
  useNesterov: boolean;
  /** The momentum as a float32 scalar (`setMomentum` does not change it, in tfjs either). */
  m: tf.Scalar;
  /** Minus the learning rate as a float32 scalar (`setLearningRate` replaces it). */
  c: tf.Scalar;
  accumulations: ({ originalName: string; variable: tf.Variable } | undefined)[];
  incrementIterations(): void;
  applyGradients(gradients: tf.NamedTensorMap | NamedTensor[]): void;
}

/** Marks a wrapped `applyGradients`, so that wrapping twice does nothing. */
const WRAPPED = Symbol("segment fused momentum");

/**
 * Wraps `MomentumOptimizer.prototype.applyGradients` so that each variable's
 * update is the active backend's {@linkcode MOMENTUM_UPDATE} where it has
 * one: its in-place update where that applies, else the kernel where it
 * takes the variable's size ({@linkcode MomentumKernelConfig}), else
 * TensorFlow.js's four kernels. Safe to call more than once; without the
 * kernel nothing changes.
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
    const kernel = tf.getKernel(MOMENTUM_UPDATE, tf.getBackend()) as
      | Partial<MomentumKernelConfig>
      | undefined;
    if (this.useNesterov || kernel === undefined) return original.call(this, gradients);
    const maxSize = kernel.maxSize ?? MAX_FUSED_MOMENTUM_SIZE;
    const names = Array.isArray(gradients)
      ? gradients.map((item) => item.name)
      : Object.keys(gradients);
    const attrs: MomentumAttrs = { momentum: this.m.dataSync()[0]!, step: this.c.dataSync()[0]! };
    names.forEach((name, i) => {
      const value = tf.engine().registeredVariables[name]!;
      this.accumulations[i] ??= {
        originalName: `${name}/momentum`,
        variable: tf.tidy(() => tf.zerosLike(value).variable(false)),
      };
      const accumulation = this.accumulations[i]!.variable;
      const gradient = Array.isArray(gradients) ? gradients[i]!.tensor : gradients[name];
      if (gradient == null) return;
      if (kernel.updateInPlace?.(value, accumulation, gradient, attrs)) return;
      tf.tidy(() => {
        if (value.size > maxSize) {
          // TensorFlow.js's own four kernels, as in its MomentumOptimizer.
          const newAccumulation = tf.add(tf.mul(this.m, accumulation), gradient);
          accumulation.assign(newAccumulation);
          value.assign(tf.add(tf.mul(this.c, newAccumulation), value));
          return;
        }
        const [newValue, newAccumulation] = tf.engine().runKernel(
          MOMENTUM_UPDATE,
          { value, accumulation, gradient },
          attrs as unknown as tf.NamedAttrMap,
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
