/**
 * A network's first convolution, the one that reads the model's input, in
 * training on the wasm backend: the `FusedConv2D` kernel run directly, with
 * {@linkcode fusedConv2dGrad}, instead of tfjs's fused convolution op. The
 * op's gradient computes the gradient of every input at once, including that
 * of the input photos, which nothing uses (the optimizer asks for the
 * weights' gradients only): on bin's first layer (4 x 64 x 64 x 3 from 32
 * channels) 0.45 ms of a ~20 ms step. This gradient computes each input's
 * only when it is asked for, so the photos' is skipped. Where it is asked for
 * (`tf.grad` of a loss with respect to the photos) it is computed as before:
 * the result is the same either way, only the work differs. (`tf.conv2d`
 * plus a bias `tf.add` would skip it too, but the wasm backend's broadcast
 * add took 0.25 ms.)
 *
 * `Conv2D.prototype.call` of tfjs-layers is wrapped; other layers, other
 * backends, inference, activations other than linear and layers without a
 * bias run tfjs-layers' own code.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { GradConfig } from "@tensorflow/tfjs-core";

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
 * The gradient of the `FusedConv2D` kernel when it is run directly (linear
 * activation, NHWC), one input at a time: tfjs's own fused convolution op
 * records its own gradient (computing all three at once) and does not use
 * this one.
 */
export const fusedConv2dGrad: GradConfig = {
  kernelName: "FusedConv2D",
  inputsToSave: ["x", "filter"],
  gradFunc: (dy, saved, attrs) => {
    const [x, filter] = saved as [tf.Tensor4D, tf.Tensor4D];
    const gradient = dy as tf.Tensor4D;
    const { strides, pad, activation } = attrs as unknown as {
      strides: [number, number];
      pad: "same" | "valid";
      activation: string;
    };
    if (activation !== "linear") {
      throw new Error(`fusedConv2dGrad takes a linear activation, not ${activation}`);
    }
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
 * wasm backend a model's first convolution skips the input photos' gradient.
 * Safe to call more than once.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { useUnfusedInputConv } from "./input_conv.ts";
 * import { assertEquals } from "../assert.ts";
 * useUnfusedInputConv();
 * await tf.setBackend("cpu");
 * const input = tf.input({ shape: [4, 4, 3] });
 * const conv = tf.layers.conv2d({ filters: 2, kernelSize: 3, padding: "same" });
 * const model = tf.model({ inputs: input, outputs: conv.apply(input) as tf.SymbolicTensor });
 * const y = model.apply(tf.ones([1, 4, 4, 3]), { training: true }) as tf.Tensor;
 * assertEquals(y.shape, [1, 4, 4, 2]);
 * ```
 */
export function useUnfusedInputConv(): void {
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
    const unfused = kwargs?.training === true && tf.getBackend() === "wasm" &&
      input !== undefined && input.rank === 4 && this.rank === 2 &&
      this.dataFormat === "channelsLast" && this.bias !== null &&
      this.activation.getClassName() === "linear" && readsModelInput(this);
    if (!unfused) return original.call(this, inputs, kwargs);
    // The fused kernel itself (bias added as the convolution writes), recorded with
    // fusedConv2dGrad below, which computes each input's gradient only when asked for.
    return tf.engine().runKernel("FusedConv2D", {
      x: input,
      filter: this.kernel.read(),
      bias: this.bias!.read(),
    }, {
      strides: this.strides,
      pad: this.padding === "same" ? "same" : "valid",
      dataFormat: "NHWC",
      dilations: this.dilationRate,
      activation: "linear",
    }) as tf.Tensor;
  };
  (wrapped as typeof original)[WRAPPED] = true;
  prototype.call = wrapped;
}
