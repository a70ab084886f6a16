/**
 * The binary exercise's loss, `tf.losses.sigmoidCrossEntropy` with its
 * default arguments (no weights, no label smoothing, the mean), as one kernel
 * forward and one backward on the wasm backend with oneDNN. TensorFlow.js
 * composes it from about ten kernels forward (`relu(z) - z * t +
 * log1p(exp(-|z|))`) and as many backward, each a pass over the minibatch:
 * 0.75 ms of bin's 20 ms step. Here the transcendental function is one of
 * oneDNN's vectorized element-wise primitives over the whole minibatch and the
 * rest one loop over the heap, summing in float64: 0.29 ms.
 *
 * - value: `mean(softplus(z) - z * t)`, the value of tfjs's formula;
 * - gradient: `(sigmoid(z) - t) / n` (tfjs's differs at `z = 0` exactly,
 *   where its `relu` and `abs` step: `-t / n` there).
 *
 * The gradient with respect to the labels is TensorFlow.js's formula, by its
 * ops, computed only when asked for.
 *
 * The softmax cross-entropy keeps TensorFlow.js's kernels: a kernel like this
 * one, with its float64 sums and unshifted exponentials, failed the parity
 * check on SegNet at 32x32 (whose max-pooling masks flip on a last-digit
 * difference: its loss 1e-2 from float64 after 3 steps, against 2e-3 for
 * PyTorch's float32), and one rounded step by step as tfjs rounds saved
 * nothing (1.1 ms, loops over the heap being slow beside oneDNN's passes).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { GradConfig, KernelConfig, TensorInfo } from "@tensorflow/tfjs-core";
import { DNNL } from "../dnnl.ts";
import type { DnnlEltwise } from "./eltwise_dnnl.ts";
import { disposeInfo, heapFloats, heapOffset, type WasmBackend } from "./wasm_heap.ts";

/**
 * The sigmoid loss: inputs `logits` and `labels` (float32, one shape, labels
 * in [0, 1]); output the mean over all values, a float32 scalar.
 */
export const SIGMOID_CROSS_ENTROPY = "SegmentSigmoidCrossEntropy";
/** Its gradient with respect to the logits: inputs `dy` (scalar), `logits`, `labels`. */
export const SIGMOID_CROSS_ENTROPY_GRAD = "SegmentSigmoidCrossEntropyGrad";

/** The four kernel names, for unregistering. */
export const CROSS_ENTROPY_KERNELS = [SIGMOID_CROSS_ENTROPY, SIGMOID_CROSS_ENTROPY_GRAD];

/** oneDNN's `soft_relu` element-wise algorithm, `log(1 + exp(x))` (oneDNN 2.x). */
const ELTWISE_SOFT_RELU = 159;

/** Element counts of an input, and its heap offset in floats. */
function floats(wasm: WasmBackend, tensor: TensorInfo): number {
  return heapOffset(wasm, tensor) / 4;
}

/**
 * `y = f(x)` over `length` floats on oneDNN, or with `fallback` in a loop
 * where oneDNN declines.
 */
function elementwise(
  wasm: WasmBackend,
  eltwise: DnnlEltwise,
  algorithm: number,
  length: number,
  x: number,
  y: number,
  fallback: (value: number) => number,
): void {
  if (eltwise.forward(wasm, algorithm, length, { x: x * 4, y: y * 4 })) return;
  const heap = heapFloats(wasm);
  for (let i = 0; i < length; i++) heap[y + i] = fallback(heap[x + i]!);
}

const softplus = (z: number) => Math.max(z, 0) + Math.log1p(Math.exp(-Math.abs(z)));
const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

/**
 * The two kernels for the wasm backend on oneDNN's element-wise primitives.
 *
 * @param eltwise oneDNN's element-wise primitives.
 * @returns The kernel configs to register.
 *
 * @example
 * ```ts
 * import { crossEntropyWasmConfigs } from "./cross_entropy.ts";
 * import { assertEquals } from "../assert.ts";
 * assertEquals(crossEntropyWasmConfigs({} as never).length, 2);
 * ```
 */
export function crossEntropyWasmConfigs(eltwise: DnnlEltwise): KernelConfig[] {
  const sigmoidLoss: KernelConfig = {
    kernelName: SIGMOID_CROSS_ENTROPY,
    backendName: "wasm",
    kernelFunc: ({ inputs, backend }) => {
      const wasm = backend as WasmBackend;
      const { logits, labels } = inputs as { logits: TensorInfo; labels: TensorInfo };
      const length = logits.shape.reduce((a, b) => a * b, 1);
      const out = wasm.makeOutput([], "float32");
      const scratch = wasm.makeOutput([length], "float32");
      const [z, t, s] = [logits, labels, scratch].map((x) => floats(wasm, x)) as number[];
      elementwise(wasm, eltwise, ELTWISE_SOFT_RELU, length, z!, s!, softplus);
      const heap = heapFloats(wasm);
      let total = 0;
      for (let i = 0; i < length; i++) total += heap[s! + i]! - heap[z! + i]! * heap[t! + i]!;
      heap[floats(wasm, out)] = total / length;
      disposeInfo(wasm, scratch);
      return out;
    },
  };
  const sigmoidGrad: KernelConfig = {
    kernelName: SIGMOID_CROSS_ENTROPY_GRAD,
    backendName: "wasm",
    kernelFunc: ({ inputs, backend }) => {
      const wasm = backend as WasmBackend;
      const { dy, logits, labels } = inputs as Record<string, TensorInfo>;
      const length = logits!.shape.reduce((a, b) => a * b, 1);
      const dz = wasm.makeOutput(logits!.shape, "float32");
      const [z, t, d, g] = [logits!, labels!, dz, dy!].map((x) => floats(wasm, x)) as number[];
      elementwise(wasm, eltwise, DNNL.eltwiseLogistic, length, z!, d!, sigmoid);
      const heap = heapFloats(wasm);
      const scale = Math.fround(heap[g!]! / length);
      for (let i = 0; i < length; i++) heap[d! + i] = (heap[d! + i]! - heap[t! + i]!) * scale;
      return dz;
    },
  };
  return [sigmoidLoss, sigmoidGrad];
}

/** The registered gradient of the loss (the logits' by the kernel, the labels' by tfjs ops). */
export const crossEntropyGrads: GradConfig[] = [
  {
    kernelName: SIGMOID_CROSS_ENTROPY,
    inputsToSave: ["logits", "labels"],
    gradFunc: (dy, saved) => {
      const [logits, labels] = saved as [tf.Tensor, tf.Tensor];
      const gradient = dy as tf.Tensor;
      return {
        logits: () =>
          tf.engine().runKernel(SIGMOID_CROSS_ENTROPY_GRAD, {
            dy: gradient,
            logits,
            labels,
          }) as tf.Tensor,
        // d/dt of mean(softplus(z) - z * t).
        labels: () => tf.mul(tf.neg(logits), tf.div(gradient, logits.size)),
      };
    },
  },
];

/** The `tf.losses` function this module replaces, with tfjs-core's signature. */
interface Losses {
  sigmoidCrossEntropy(
    labels: tf.Tensor,
    logits: tf.Tensor,
    weights?: tf.Tensor,
    labelSmoothing?: number,
    reduction?: tf.Reduction,
  ): tf.Tensor;
}

/** Marks a wrapped loss, so that wrapping twice does nothing. */
const WRAPPED = Symbol("segment cross entropy");

/**
 * Wraps `tf.losses.sigmoidCrossEntropy` so that, where the active backend
 * has the kernel, a call with the default arguments (no weights, no label
 * smoothing, the default reduction, float32 logits and float32 or int32
 * labels of one shape) runs it. Every other call,
 * and every call on other backends, runs TensorFlow.js's own. Safe to call
 * more than once.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { useFusedCrossEntropy } from "./cross_entropy.ts";
 * import { assertAlmostEquals } from "../assert.ts";
 * useFusedCrossEntropy();
 * await tf.setBackend("cpu");
 * const loss = tf.losses.sigmoidCrossEntropy(tf.tensor1d([1, 0]), tf.tensor1d([0, 0]));
 * assertAlmostEquals(loss.dataSync()[0]!, Math.log(2), 1e-6);
 * ```
 */
export function useFusedCrossEntropy(): void {
  const losses = tf.losses as unknown as Losses;
  const original = losses.sigmoidCrossEntropy as Losses["sigmoidCrossEntropy"] & {
    [WRAPPED]?: true;
  };
  if (original[WRAPPED]) return;
  const wrapped = (
    labels: tf.Tensor,
    logits: tf.Tensor,
    weights?: tf.Tensor,
    labelSmoothing?: number,
    reduction?: tf.Reduction,
  ) => {
    const plain = weights == null && !labelSmoothing &&
      (reduction === undefined || reduction === tf.Reduction.SUM_BY_NONZERO_WEIGHTS) &&
      labels instanceof tf.Tensor && logits instanceof tf.Tensor &&
      (labels.dtype === "float32" || labels.dtype === "int32") &&
      logits.dtype === "float32" && logits.size > 0 &&
      labels.shape.length === logits.shape.length &&
      labels.shape.every((size, axis) => size === logits.shape[axis]) &&
      tf.getKernel(SIGMOID_CROSS_ENTROPY, tf.getBackend()) !== undefined;
    if (!plain) return original(labels, logits, weights, labelSmoothing, reduction);
    // Integer labels as tfjs's own loss takes them: cast to float.
    return tf.tidy(() =>
      tf.engine().runKernel(SIGMOID_CROSS_ENTROPY, {
        logits,
        labels: labels.dtype === "float32" ? labels : tf.cast(labels, "float32"),
      }) as tf.Scalar
    );
  };
  (wrapped as typeof original)[WRAPPED] = true;
  losses.sigmoidCrossEntropy = wrapped;
}
