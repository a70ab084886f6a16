/**
 * A ReLU layer folded into the layer before it, in training on the wasm
 * backend with oneDNN: every conv block of every exercise ends its
 * convolution or its batch norm in a `tf.layers.reLU`, a pass of its own over
 * the activations forward (read, write) and backward (read two, write). When
 * the layer before it can apply the ReLU as it writes (a convolution's
 * post-op; a batch norm's `fuse_norm_relu`, which also takes the ReLU's
 * gradient into its backward pass), that layer's output is already the
 * ReLU's, and the ReLU layer passes it on.
 *
 * The producing layer decides ({@linkcode reluFollows}), so it must know that
 * its output goes to the ReLU and nowhere else: its one outbound node leads
 * to a plain ReLU layer (no `maxValue`) called once, that ReLU belongs to the
 * model being run (see {@linkcode useReluFusion}, which tracks it), and the
 * producer's output is not one of that model's outputs. The ReLU layer then
 * returns its input when the producer marked it ({@linkcode markReluApplied});
 * tfjs-layers clones a layer's output that is its input, so it stays a tensor
 * of its own. In every other case, at inference and on other backends, both
 * layers run as written.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";

/** The parts of a tfjs-layers layer this module reads (tfjs 4.22). */
interface LayerLike {
  getClassName(): string;
  maxValue?: number | null;
  activation?: { getClassName(): string };
  inboundNodes: unknown[];
  outboundNodes: { outboundLayer: LayerLike }[];
  output?: unknown;
  call(inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown>): tf.Tensor | tf.Tensor[];
}

/** The parts of a tfjs-layers model (`Container`) this module reads. */
interface ModelLike {
  layers: LayerLike[];
  outputs: { sourceLayer: LayerLike }[];
  call(inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown>): tf.Tensor | tf.Tensor[];
}

/** Models being run, innermost last. */
const running: ModelLike[] = [];

/** Each model's layers, as a set. */
const layerSets = new WeakMap<ModelLike, Set<LayerLike>>();

/** Outputs that already are their ReLU's. */
const reluApplied = new WeakSet<tf.Tensor>();

/** Marks a wrapped `call`, so that wrapping twice does nothing. */
const WRAPPED = Symbol("segment relu fusion");

/** Whether a layer is a plain ReLU: `tf.layers.reLU()` without `maxValue`, or a relu `Activation`. */
function isPlainRelu(layer: LayerLike): boolean {
  const name = layer.getClassName();
  if (name === "ReLU") return layer.maxValue == null;
  return name === "Activation" && layer.activation?.getClassName() === "relu";
}

/**
 * Whether `layer`, being called now in a model's training step, may apply the
 * ReLU that follows it: its output goes to one plain ReLU layer of the model
 * being run and nowhere else.
 *
 * @param layer The producing layer (a convolution or a batch norm).
 * @returns `true` when the layer may write the ReLU's output instead of its own.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { reluFollows } from "./relu_fusion.ts";
 * import { assertEquals } from "../assert.ts";
 * // Outside a model's run nothing is fused.
 * const conv = tf.layers.conv2d({ filters: 1, kernelSize: 1 });
 * tf.layers.reLU().apply(conv.apply(tf.input({ shape: [2, 2, 1] })) as tf.SymbolicTensor);
 * assertEquals(reluFollows(conv as never), false);
 * ```
 */
export function reluFollows(layer: LayerLike): boolean {
  const model = running.at(-1);
  if (model === undefined || layer.inboundNodes.length !== 1) return false;
  const nodes = layer.outboundNodes;
  if (nodes.length !== 1) return false;
  const relu = nodes[0]!.outboundLayer;
  if (!isPlainRelu(relu) || relu.inboundNodes.length !== 1) return false;
  let layers = layerSets.get(model);
  if (layers === undefined) {
    layers = new Set(model.layers);
    layerSets.set(model, layers);
  }
  return layers.has(relu) && !model.outputs.some((output) => output.sourceLayer === layer);
}

/**
 * Marks a tensor as already passed through the ReLU that follows its layer.
 *
 * @param tensor A layer's output, computed with the ReLU applied.
 * @returns The same tensor.
 */
export function markReluApplied<T extends tf.Tensor>(tensor: T): T {
  reluApplied.add(tensor);
  return tensor;
}

/**
 * Wraps tfjs-layers' `Container.prototype.call` (every model's run, to know
 * the model being run) and the `call` of the `ReLU` and `Activation` layers
 * (to pass on an input marked by {@linkcode markReluApplied}). Safe to call
 * more than once.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { useReluFusion } from "./relu_fusion.ts";
 * import { assertEquals } from "../assert.ts";
 * useReluFusion();
 * await tf.setBackend("cpu");
 * const y = tf.layers.reLU().apply(tf.tensor1d([-1, 2])) as tf.Tensor;
 * assertEquals([...y.dataSync()], [0, 2]);
 * ```
 */
export function useReluFusion(): void {
  const map = tf.serialization.SerializationMap.getMap().classNameMap;
  for (const name of ["ReLU", "Activation"]) {
    const entry = map[name];
    if (entry === undefined) throw new Error(`tfjs-layers has no ${name} layer`);
    const prototype = (entry[0] as unknown as { prototype: LayerLike }).prototype;
    const original = prototype.call as LayerLike["call"] & { [WRAPPED]?: true };
    if (original[WRAPPED]) continue;
    const wrapped = function (
      this: LayerLike,
      inputs: tf.Tensor | tf.Tensor[],
      kwargs: Record<string, unknown>,
    ) {
      const input = Array.isArray(inputs) ? (inputs.length === 1 ? inputs[0] : undefined) : inputs;
      if (input !== undefined && reluApplied.has(input) && isPlainRelu(this)) return input;
      return original.call(this, inputs, kwargs);
    };
    (wrapped as typeof original)[WRAPPED] = true;
    prototype.call = wrapped;
  }
  const container = Object.getPrototypeOf(tf.LayersModel.prototype) as ModelLike;
  const original = container.call as ModelLike["call"] & { [WRAPPED]?: true };
  if (original[WRAPPED]) return;
  const wrapped = function (
    this: ModelLike,
    inputs: tf.Tensor | tf.Tensor[],
    kwargs: Record<string, unknown>,
  ) {
    running.push(this);
    try {
      return original.call(this, inputs, kwargs);
    } finally {
      running.pop();
    }
  };
  (wrapped as typeof original)[WRAPPED] = true;
  container.call = wrapped;
}
