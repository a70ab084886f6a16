/**
 * Batch normalization in training mode as one kernel with one gradient, on
 * oneDNN, for `tf.layers.batchNormalization` layers on the last axis.
 *
 * TensorFlow.js computes a training batch norm as `tf.moments` then
 * `tf.batchNorm`: about 20 passes over the activations per layer, forward
 * and backward (mean, centre, square, mean, normalize; then the gradients of
 * each, their broadcasts and sums). On the wasm backend each pass is a
 * single-threaded kernel, and for bin they took about a third of a training
 * step. Here the forward pass is one oneDNN call that returns the output and
 * the batch's mean and biased variance (the same statistics `tf.moments`
 * gives; above 2048 rows, computed for parts of the rows and joined in
 * float64, then the output: see `norm_dnnl.ts`), and the backward pass one call that
 * returns the gradients of the input (through the statistics), the scale and
 * the offset.
 *
 * The layer's `call` is wrapped: in training, when the active backend has
 * the kernel (the wasm backend) and the layer normalizes the last axis with
 * a scale and an offset, whatever its size, it takes this path and updates the
 * moving averages exactly as TensorFlow.js does; otherwise, and at
 * inference, it runs TensorFlow.js's own code.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { GradConfig, KernelConfig, NamedAttrMap, TensorInfo } from "@tensorflow/tfjs-core";
import type { DnnlBatchNorm } from "./norm_dnnl.ts";

/**
 * A training batch norm the kernels run on: oneDNN's ({@linkcode DnnlBatchNorm})
 * or the SIMD kernels' (`norm_simd.ts`).
 */
export type TrainingBatchNorm = Pick<DnnlBatchNorm, "training" | "backward" | "reluWorkspaceBytes">;
import { markReluApplied, reluFollows } from "./relu_fusion.ts";
import { heapFloats, heapOffset, type WasmBackend } from "./wasm_heap.ts";

/**
 * The kernel: inputs `x`, `scale`, `offset`; outputs `[y, mean, variance]`.
 * With the attribute `fuseRelu`, `y` is `max(y, 0)` and a fourth output, an
 * int32 tensor, holds oneDNN's workspace (where `y > 0`) for the gradient.
 */
export const BATCH_NORM_TRAINING = "SegmentBatchNormTraining";
/**
 * Its gradient: inputs `dy`, `x`, `mean`, `variance`, `scale`, `offset` (oneDNN asks
 * for it, though the gradient does not depend on it), and with `fuseRelu` the
 * forward pass's `workspace`; outputs `[dx, dscale, doffset]`.
 */
export const BATCH_NORM_TRAINING_GRAD = "SegmentBatchNormTrainingGrad";

/**
 * The batch norm of the registered kernels, asked whether a shape can fuse
 * its ReLU before a layer takes that path.
 */
let registeredNorm: TrainingBatchNorm | null = null;

/**
 * Both moving averages of a layer in one kernel: inputs `movingMean`,
 * `movingVariance`, `mean`, `variance` (each `[channels]`), attribute `decay`
 * (1 - the layer's momentum); outputs the new `[movingMean, movingVariance]`,
 * each `moving - (moving - batch) * decay` rounded to float32 after every
 * operation as tfjs-layers' three kernels round it, so the result is the
 * same to the bit. One call instead of six kernels and two scopes per layer.
 */
export const MOVING_AVERAGES = "SegmentMovingAverages";

/**
 * {@linkcode MOVING_AVERAGES} for the wasm backend, a loop over the heap.
 *
 * @returns The kernel config to register.
 *
 * @example
 * ```ts
 * import { movingAveragesWasmConfig } from "./batch_norm_training.ts";
 * import { assertEquals } from "../assert.ts";
 * assertEquals(movingAveragesWasmConfig().kernelName, "SegmentMovingAverages");
 * ```
 */
export function movingAveragesWasmConfig(): KernelConfig {
  return {
    kernelName: MOVING_AVERAGES,
    backendName: "wasm",
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as WasmBackend;
      const { movingMean, movingVariance, mean, variance } = inputs as Record<string, TensorInfo>;
      const decay = Math.fround((attrs as unknown as { decay: number }).decay);
      const channels = mean!.shape.reduce((a, b) => a * b, 1);
      const outputs: TensorInfo[] = [];
      for (const [moving, batch] of [[movingMean!, mean!], [movingVariance!, variance!]]) {
        const out = wasm.makeOutput(moving!.shape, "float32");
        // Views after every allocation: makeOutput may grow (and move) the heap.
        const heap = heapFloats(wasm);
        const [from, value, to] = [moving!, batch!, out].map((t) => heapOffset(wasm, t) / 4);
        for (let c = 0; c < channels; c++) {
          const current = heap[from! + c]!;
          const change = Math.fround(Math.fround(current - heap[value! + c]!) * decay);
          heap[to! + c] = current - change;
        }
        outputs.push(out);
      }
      return outputs;
    },
  };
}

/** Attributes of both kernels. */
interface Attrs {
  varianceEpsilon: number;
  fuseRelu?: boolean;
}

function rowsAndChannels(shape: readonly number[]): [number, number] {
  const channels = shape[shape.length - 1]!;
  return [shape.reduce((a, b) => a * b, 1) / channels, channels];
}

/**
 * The training batch norm kernel for the wasm backend on oneDNN or on the SIMD kernels.
 *
 * @param norm oneDNN's batch normalization, or the SIMD kernels'.
 * @returns The kernel config to register.
 *
 * @example
 * ```ts
 * import { batchNormTrainingConfig } from "./batch_norm_training.ts";
 * import { assertEquals } from "../assert.ts";
 * assertEquals(batchNormTrainingConfig({} as never).kernelName, "SegmentBatchNormTraining");
 * ```
 */
export function batchNormTrainingConfig(norm: TrainingBatchNorm): KernelConfig {
  registeredNorm = norm;
  return {
    kernelName: BATCH_NORM_TRAINING,
    backendName: "wasm",
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as WasmBackend;
      const { x, scale, offset } = inputs as Record<string, TensorInfo>;
      const { varianceEpsilon, fuseRelu } = attrs as unknown as Attrs;
      const [rows, channels] = rowsAndChannels(x!.shape);
      const bytes = fuseRelu ? norm.reluWorkspaceBytes(rows, channels, varianceEpsilon) : 0;
      if (bytes === null) {
        throw new Error(`Cannot fuse a ReLU into a batch norm of shape [${x!.shape}]`);
      }
      const y = wasm.makeOutput(x!.shape, "float32");
      const mean = wasm.makeOutput([channels], "float32");
      const variance = wasm.makeOutput([channels], "float32");
      const workspace = fuseRelu ? wasm.makeOutput([Math.ceil(bytes / 4)], "int32") : null;
      const ran = norm.training(wasm, rows, channels, {
        x: heapOffset(wasm, x!),
        scale: heapOffset(wasm, scale!),
        offset: heapOffset(wasm, offset!),
        y: heapOffset(wasm, y),
        mean: heapOffset(wasm, mean),
        variance: heapOffset(wasm, variance),
        ...(workspace === null ? {} : { workspace: heapOffset(wasm, workspace) }),
      }, varianceEpsilon);
      if (!ran) throw new Error(`Cannot run a training batch norm of shape [${x!.shape}]`);
      return workspace === null ? [y, mean, variance] : [y, mean, variance, workspace];
    },
  };
}

/**
 * The kernel of the training batch norm's gradient for the wasm backend on oneDNN or on
 * the SIMD kernels.
 *
 * @param norm oneDNN's batch normalization, or the SIMD kernels'.
 * @returns The kernel config to register.
 *
 * @example
 * ```ts
 * import { batchNormTrainingGradConfig } from "./batch_norm_training.ts";
 * import { assertEquals } from "../assert.ts";
 * assertEquals(batchNormTrainingGradConfig({} as never).kernelName, "SegmentBatchNormTrainingGrad");
 * ```
 */
export function batchNormTrainingGradConfig(norm: TrainingBatchNorm): KernelConfig {
  return {
    kernelName: BATCH_NORM_TRAINING_GRAD,
    backendName: "wasm",
    kernelFunc: ({ inputs, backend, attrs }) => {
      const wasm = backend as WasmBackend;
      const { dy, x, mean, variance, scale, offset, workspace } = inputs as Record<
        string,
        TensorInfo
      >;
      const [rows, channels] = rowsAndChannels(x!.shape);
      const dx = wasm.makeOutput(x!.shape, "float32");
      const dscale = wasm.makeOutput([channels], "float32");
      const doffset = wasm.makeOutput([channels], "float32");
      const ran = norm.backward(wasm, rows, channels, {
        dy: heapOffset(wasm, dy!),
        x: heapOffset(wasm, x!),
        mean: heapOffset(wasm, mean!),
        variance: heapOffset(wasm, variance!),
        scale: heapOffset(wasm, scale!),
        offset: heapOffset(wasm, offset!),
        dx: heapOffset(wasm, dx),
        dscale: heapOffset(wasm, dscale),
        doffset: heapOffset(wasm, doffset),
        ...(workspace === undefined ? {} : { workspace: heapOffset(wasm, workspace) }),
      }, (attrs as unknown as Attrs).varianceEpsilon);
      if (!ran) throw new Error(`Cannot run a batch norm gradient of shape [${x!.shape}]`);
      return [dx, dscale, doffset];
    },
  };
}

/**
 * The gradient of {@linkcode BATCH_NORM_TRAINING}. The mean and variance
 * outputs feed only the moving averages, never the loss, so only `y`'s
 * gradient is propagated.
 */
export const batchNormTrainingGrad: GradConfig = {
  kernelName: BATCH_NORM_TRAINING,
  inputsToSave: ["x", "scale", "offset"],
  outputsToSave: [false, true, true],
  gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: NamedAttrMap) => {
    const [x, scale, offset, mean, variance] = saved as [
      tf.Tensor,
      tf.Tensor,
      tf.Tensor,
      tf.Tensor,
      tf.Tensor,
    ];
    const dys = Array.isArray(dy) ? dy : [dy];
    // All three at once, here: each input's closure runs in its own tidy, which
    // would dispose the other two if the first closure made them.
    const [dx, dscale, doffset] = tf.engine().runKernel(BATCH_NORM_TRAINING_GRAD, {
      dy: dys[0]!,
      x,
      mean,
      variance,
      scale,
      offset,
    }, attrs) as tf.Tensor[];
    return { x: () => dx!, scale: () => dscale!, offset: () => doffset! };
  },
};

/** The parts of a tfjs-layers `BatchNormalization` layer this module reads. */
interface BatchNormLayer {
  axis: number;
  momentum: number;
  epsilon: number;
  center: boolean;
  scale: boolean;
  gamma: tf.LayerVariable;
  beta: tf.LayerVariable;
  movingMean: tf.LayerVariable;
  movingVariance: tf.LayerVariable;
  call(inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown>): tf.Tensor | tf.Tensor[];
}

/** Marks a wrapped `call`, so that wrapping twice does nothing. */
const WRAPPED = Symbol("segment batch norm training");

/**
 * Wraps `BatchNormalization.prototype.call` of tfjs-layers so that training
 * steps take {@linkcode BATCH_NORM_TRAINING} where the active backend has it.
 * Safe to call more than once; without the kernel nothing changes.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { useFusedTrainingBatchNorm } from "./batch_norm_training.ts";
 * import { assertEquals } from "../assert.ts";
 * useFusedTrainingBatchNorm();
 * await tf.setBackend("cpu");
 * const layer = tf.layers.batchNormalization();
 * const y = layer.apply(tf.ones([2, 3]), { training: true }) as tf.Tensor;
 * assertEquals(y.shape, [2, 3]);
 * ```
 */
export function useFusedTrainingBatchNorm(): void {
  const entry = tf.serialization.SerializationMap.getMap().classNameMap["BatchNormalization"];
  if (entry === undefined) throw new Error("tfjs-layers has no BatchNormalization layer");
  const prototype = (entry[0] as unknown as { prototype: BatchNormLayer }).prototype;
  const original = prototype.call as BatchNormLayer["call"] & { [WRAPPED]?: true };
  if (original[WRAPPED]) return;
  const wrapped = function (
    this: BatchNormLayer,
    inputs: tf.Tensor | tf.Tensor[],
    kwargs: Record<string, unknown>,
  ) {
    const input = Array.isArray(inputs) ? (inputs.length === 1 ? inputs[0] : undefined) : inputs;
    const fused = kwargs?.training === true && input !== undefined &&
      input.dtype === "float32" && input.rank >= 2 &&
      (this.axis === -1 || this.axis === input.rank - 1) && this.center && this.scale &&
      tf.getKernel(BATCH_NORM_TRAINING, tf.getBackend()) !== undefined;
    if (!fused) return original.call(this, inputs, kwargs);
    const [rows, channels] = rowsAndChannels(input.shape);
    if (
      reluFollows(this as never) &&
      registeredNorm?.reluWorkspaceBytes(rows, channels, this.epsilon) != null
    ) {
      return markReluApplied(batchNormRelu(this, input));
    }
    return tf.tidy(() => {
      const [y, mean, variance] = tf.engine().runKernel(
        BATCH_NORM_TRAINING,
        { x: input, scale: this.gamma.read(), offset: this.beta.read() },
        { varianceEpsilon: this.epsilon },
      ) as tf.Tensor[];
      updateMovingAverages(this, mean!, variance!);
      return y!;
    });
  };
  (wrapped as typeof original)[WRAPPED] = true;
  prototype.call = wrapped;
}

/** A layer's moving averages from a batch's statistics, as tfjs-layers updates them. */
function updateMovingAverages(layer: BatchNormLayer, mean: tf.Tensor, variance: tf.Tensor): void {
  const decay = 1 - layer.momentum;
  if (tf.getKernel(MOVING_AVERAGES, tf.getBackend()) !== undefined) {
    const [movingMean, movingVariance] = tf.engine().runKernel(MOVING_AVERAGES, {
      movingMean: layer.movingMean.read(),
      movingVariance: layer.movingVariance.read(),
      mean,
      variance,
    }, { decay }) as tf.Tensor[];
    layer.movingMean.write(movingMean!);
    layer.movingVariance.write(movingVariance!);
    return;
  }
  const update = (variable: tf.LayerVariable, value: tf.Tensor) => {
    tf.tidy(() => {
      const current = variable.read();
      variable.write(tf.sub(current, tf.mul(tf.sub(current, value), decay)));
    });
  };
  update(layer.movingMean, mean);
  update(layer.movingVariance, variance);
}

/**
 * `relu(batchNorm(x))` of a layer in training as one oneDNN call forward and
 * one backward (`fuse_norm_relu`), recorded as one custom-gradient op: the
 * statistics and the workspace stay inside it (saved for the gradient), so
 * the tape gets no extra outputs to fill with zeros.
 */
function batchNormRelu(layer: BatchNormLayer, input: tf.Tensor): tf.Tensor {
  const attrs = { varianceEpsilon: layer.epsilon, fuseRelu: true };
  const op = tf.customGrad((...args) => {
    const [x, scale, offset] = args as tf.Tensor[];
    const save = args[3] as unknown as tf.GradSaveFunc;
    const [y, mean, variance, workspace] = tf.engine().runKernel(
      BATCH_NORM_TRAINING,
      { x: x!, scale: scale!, offset: offset! },
      attrs as unknown as NamedAttrMap,
    ) as tf.Tensor[];
    updateMovingAverages(layer, mean!, variance!);
    save([x!, scale!, offset!, mean!, variance!, workspace!]);
    return {
      value: y!,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [x, scale, offset, mean, variance, workspace] = saved;
        return tf.engine().runKernel(BATCH_NORM_TRAINING_GRAD, {
          dy: dy as tf.Tensor,
          x: x!,
          mean: mean!,
          variance: variance!,
          scale: scale!,
          offset: offset!,
          workspace: workspace!,
        }, attrs as unknown as NamedAttrMap) as tf.Tensor[];
      },
    };
  });
  return op(input, layer.gamma.read(), layer.beta.read());
}
