/**
 * Convolution layers in training on the wasm backend, as the `FusedConv2D`
 * kernel run directly with {@linkcode fusedConv2dGrad}, instead of tfjs's
 * fused convolution op, in two cases:
 *
 * - a network's first convolution, the one that reads the model's input: the
 *   op's gradient computes the gradient of every input at once, including
 *   that of the input photos, which nothing uses (the optimizer asks for the
 *   weights' gradients only): on bin's first layer (4 x 64 x 64 x 3 from 32
 *   channels) 0.45 ms of a ~20 ms step. This gradient computes each input's
 *   only when it is asked for, so the photos' is skipped. Where it is asked
 *   for (`tf.grad` of a loss with respect to the photos) it is computed as
 *   before: the result is the same either way, only the work differs.
 *   (`tf.conv2d` plus a bias `tf.add` would skip it too, but the wasm
 *   backend's broadcast add took 0.25 ms.)
 * - a convolution whose output goes to a ReLU layer and nowhere else (the CRB
 *   blocks; see `relu_fusion.ts`): the kernel applies the ReLU as it writes
 *   (oneDNN's post-op), the ReLU layer passes the output on, and the gradient
 *   takes the ReLU's from the output (`y > 0` where `x > 0`): one pass over
 *   the activations less per layer forward.
 *
 * `Conv2D.prototype.call` of tfjs-layers is wrapped; other layers, other
 * backends, inference, activations other than linear and layers without a
 * bias run tfjs-layers' own code.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { GradConfig } from "@tensorflow/tfjs-core";
import { markReluApplied, reluFollows } from "./relu_fusion.ts";
import { RELU_GRAD } from "./relu_grad.ts";

/** The parts of a tfjs-layers `Conv2D` layer this module reads (tfjs 4.22). */
interface Conv2DLayer {
  rank: number;
  strides: number[];
  padding: string;
  dataFormat: string;
  dilationRate: number[];
  kernel: tf.LayerVariable;
  bias: tf.LayerVariable | null;
  activation: { getClassName(): string };
  inboundNodes: { inboundLayers: { getClassName(): string }[] }[];
  call(inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown>): tf.Tensor | tf.Tensor[];
}

/**
 * The gradient of the `FusedConv2D` kernel when it is run directly (linear or
 * ReLU activation, NHWC), one input at a time: tfjs's own fused convolution
 * op records its own gradient (computing all three at once) and does not use
 * this one. With a ReLU, the gradient first goes through the ReLU's, from the
 * output (`SegmentReluGrad` where the backend has it).
 */
export const fusedConv2dGrad: GradConfig = {
  kernelName: "FusedConv2D",
  inputsToSave: ["x", "filter"],
  outputsToSave: [true],
  gradFunc: (dy, saved, attrs) => {
    const [x, filter, y] = saved as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
    const { strides, pad, activation } = attrs as unknown as {
      strides: [number, number];
      pad: "same" | "valid";
      activation: string;
    };
    if (activation !== "linear" && activation !== "relu") {
      throw new Error(`fusedConv2dGrad takes a linear or relu activation, not ${activation}`);
    }
    // y > 0 exactly where the convolution's value was > 0.
    const gradient = activation === "linear"
      ? dy as tf.Tensor4D
      : tf.getKernel(RELU_GRAD, tf.getBackend()) !== undefined
      ? tf.engine().runKernel(RELU_GRAD, { dy: dy as tf.Tensor, x: y }) as tf.Tensor4D
      : tf.mul(dy as tf.Tensor4D, tf.step(y));
    const convolution = { strides, pad, dataFormat: "NHWC" };
    return {
      x: () =>
        tf.engine().runKernel("Conv2DBackpropInput", { dy: gradient, filter }, {
          ...convolution,
          inputShape: x.shape,
        }) as tf.Tensor,
      filter: () =>
        tf.engine().runKernel("Conv2DBackpropFilter", { x, dy: gradient }, {
          ...convolution,
          filterShape: filter.shape,
        }) as tf.Tensor,
      bias: () => tf.sum(gradient, [0, 1, 2]),
    };
  },
};

/** Marks a wrapped `call`, so that wrapping twice does nothing. */
const WRAPPED = Symbol("segment input conv");

/**
 * Whether a layer reads the model's input directly: its one inbound node
 * comes from an `InputLayer`.
 *
 * @param layer The layer.
 * @returns `true` for a model's first layer.
 */
function readsModelInput(layer: Conv2DLayer): boolean {
  const nodes = layer.inboundNodes;
  return nodes.length === 1 && nodes[0]!.inboundLayers.length === 1 &&
    nodes[0]!.inboundLayers[0]!.getClassName() === "InputLayer";
}

/**
 * Wraps `Conv2D.prototype.call` of tfjs-layers so that in training on the
 * wasm backend a model's first convolution skips the input photos' gradient
 * and a convolution followed by a ReLU layer applies it. Safe to call more
 * than once.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { useDirectConvLayers } from "./conv_layer_training.ts";
 * import { assertEquals } from "../assert.ts";
 * useDirectConvLayers();
 * await tf.setBackend("cpu");
 * const input = tf.input({ shape: [4, 4, 3] });
 * const conv = tf.layers.conv2d({ filters: 2, kernelSize: 3, padding: "same" });
 * const model = tf.model({ inputs: input, outputs: conv.apply(input) as tf.SymbolicTensor });
 * const y = model.apply(tf.ones([1, 4, 4, 3]), { training: true }) as tf.Tensor;
 * assertEquals(y.shape, [1, 4, 4, 2]);
 * ```
 */
export function useDirectConvLayers(): void {
  const entry = tf.serialization.SerializationMap.getMap().classNameMap["Conv2D"];
  if (entry === undefined) throw new Error("tfjs-layers has no Conv2D layer");
  const prototype = (entry[0] as unknown as { prototype: Conv2DLayer }).prototype;
  const original = prototype.call as Conv2DLayer["call"] & { [WRAPPED]?: true };
  if (original[WRAPPED]) return;
  const wrapped = function (
    this: Conv2DLayer,
    inputs: tf.Tensor | tf.Tensor[],
    kwargs: Record<string, unknown>,
  ) {
    const input = Array.isArray(inputs) ? (inputs.length === 1 ? inputs[0] : undefined) : inputs;
    const direct = kwargs?.training === true && tf.getBackend() === "wasm" &&
      input !== undefined && input.rank === 4 && this.rank === 2 &&
      this.dataFormat === "channelsLast" && this.bias !== null &&
      this.activation.getClassName() === "linear";
    const relu = direct && reluFollows(this as never);
    if (!direct || !(relu || readsModelInput(this))) return original.call(this, inputs, kwargs);
    // The fused kernel itself (bias added as the convolution writes, then the ReLU that
    // follows the layer, if it takes it), recorded with fusedConv2dGrad above, which
    // computes each input's gradient only when asked for.
    const y = tf.engine().runKernel("FusedConv2D", {
      x: input,
      filter: this.kernel.read(),
      bias: this.bias!.read(),
    }, {
      strides: this.strides,
      pad: this.padding === "same" ? "same" : "valid",
      dataFormat: "NHWC",
      dilations: this.dilationRate,
      activation: relu ? "relu" : "linear",
    }) as tf.Tensor;
    return relu ? markReluApplied(y) : y;
  };
  (wrapped as typeof original)[WRAPPED] = true;
  prototype.call = wrapped;
}
