/**
 * The floor of a training step: the least time one iteration of a network
 * could take on a machine, counted from the model's own layers. A step
 * is its convolutions' arithmetic at the machine's peak rate plus every other
 * layer's memory traffic at the machine's bandwidth:
 *
 * - Convolutions (and transposed convolutions): `2 x batch x outH x outW x
 *   outC x kH x kW x inC` floating-point operations for each of the three
 *   directions (forward, gradient of the input, gradient of the weights),
 *   the first layer's input gradient left out (nothing needs it).
 * - Every other layer: float32 tensors read and written, counted as whole
 *   passes over its input (`in`) and output (`out`), forward and backward
 *   together, as the fewest passes an implementation can make: ReLU `in + 4 out`
 *   (forward reads x and writes y; backward reads dy and y and writes dx);
 *   batch norm in training `3 in + 5 out` (statistics and normalisation read x
 *   twice and write y; the backward's two sums read dy and x, then dx is
 *   written from dy and x again); max pooling `3 in + 3 out`; nearest
 *   upsampling and concatenation `2 in + 2 out`; cropping `in + 3 out`;
 *   SegNet's pooling with indices `4 in + 2 out` and unpooling `2 in + 4 out`
 *   (the indices are as large as the bigger side); a convolution's bias
 *   gradient one pass over `out`; the loss on the logits `3 out` (the final
 *   softmax or sigmoid is not run in training); the optimizer (SGD with
 *   momentum) 5 passes over the weights (read weight, gradient and velocity,
 *   write weight and velocity).
 *
 * The floor is `flop / peak + bytes / bandwidth`: the convolutions and the
 * memory-bound layers run one after the other, so their times add. The peak
 * is measured by {@linkcode measurePeakGflops} (the best rate the backend in
 * use reaches on a large convolution) or stated; the bandwidth is stated (40
 * GB/s, this project's 2-core machine's measured copy rate) unless given.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";

/** The work of one training step of a network. */
export interface StepWork {
  /** Floating-point operations of the convolutions, all three directions. */
  flop: number;
  /** Bytes read and written by the other layers, the loss and the optimizer. */
  bytes: number;
  /** Convolution layers counted. */
  convolutions: number;
}

/** What the floor assumes of the machine. */
export interface Machine {
  /** Peak arithmetic rate, GFLOP/s (1e9 floating-point operations a second). */
  gflops: number;
  /** Memory bandwidth, GB/s (1e9 bytes a second). */
  gbs: number;
}

/** The bandwidth the floor assumes unless told: this project's 2-core machine, GB/s. */
export const STATED_BANDWIDTH_GBS = 40;

const FLOAT = 4; // bytes of a float32

/** Number of elements of a shape, its batch dimension (null) counted as `batch`. */
function elements(shape: (number | null)[], batch: number): number {
  return shape.reduce<number>((product, size) => product * (size ?? batch), 1);
}

/** A layer's input shapes, one per input. */
function inputShapes(layer: tf.layers.Layer): (number | null)[][] {
  const input = layer.input as tf.SymbolicTensor | tf.SymbolicTensor[];
  return (Array.isArray(input) ? input : [input]).map((tensor) => tensor.shape);
}

/** A layer's output shapes, one per output. */
function outputShapes(layer: tf.layers.Layer): (number | null)[][] {
  const shape = layer.outputShape;
  return Array.isArray(shape[0]) ? shape as (number | null)[][] : [shape as (number | null)[]];
}

/**
 * Counts the work of one training step of a network: see the module
 * comment for what is counted.
 *
 * @param model The network as its exercise builds it (a final softmax or
 *   sigmoid is not counted: training takes the loss on the logits).
 * @param batch Minibatch size.
 * @returns The convolutions' operations and the other layers' bytes.
 * @throws {Error} For a layer this count does not know.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { stepWork } from "./floor.ts";
 * import { assertEquals } from "../lib/assert.ts";
 * await tf.setBackend("cpu");
 * const input = tf.input({ shape: [8, 8, 3] });
 * const conv = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: "same" }).apply(input);
 * const model = tf.model({ inputs: input, outputs: conv as tf.SymbolicTensor });
 * const work = stepWork(model, 2);
 * // Forward and weight gradient (the input gradient of the first layer is not needed)
 * assertEquals(work.flop, 2 * (2 * 2 * 8 * 8 * 4 * 3 * 3 * 3));
 * // The bias gradient (one pass over the output) and the optimizer (5 passes over 112 weights)
 * assertEquals(work.bytes, 4 * (2 * 8 * 8 * 4 + 5 * 112));
 * ```
 */
export function stepWork(model: tf.LayersModel, batch: number): StepWork {
  let flop = 0, passes = 0, convolutions = 0;
  const modelInputs = new Set(model.inputs.map((input) => input.name));
  const layers = model.layers;
  const last = layers.at(-1)!;
  const head = last.getClassName() === "Activation" ? last : undefined;
  for (const layer of layers) {
    const kind = layer.getClassName();
    const ins = inputShapes(layer).map((shape) => elements(shape, batch));
    const outs = outputShapes(layer).map((shape) => elements(shape, batch));
    const input = ins.reduce((sum, size) => sum + size, 0);
    const output = outs.reduce((sum, size) => sum + size, 0);
    if (layer === head) {
      passes += 3 * input; // the loss on the logits: read logits and masks, write their gradient
      continue;
    }
    switch (kind) {
      case "InputLayer":
        break;
      case "Conv2D":
      case "Conv2DTranspose": {
        const kernel = layer.getWeights()[0]!.shape; // [kH, kW, in, out]; transposed [kH, kW, out, in]
        const [kH, kW] = kernel;
        const [inShape] = inputShapes(layer);
        const [outShape] = outputShapes(layer);
        const inC = inShape!.at(-1)!, outC = outShape!.at(-1)!;
        // A transposed convolution is the input gradient of a convolution from its output to
        // its input: the multiply-adds are counted over the smaller (input) side.
        const positions = kind === "Conv2D"
          ? elements(outShape!.slice(0, 3), batch)
          : elements(inShape!.slice(0, 3), batch);
        const once = 2 * positions * kH! * kW! * inC * outC;
        const first = (layer.input as tf.SymbolicTensor).sourceLayer?.getClassName() ===
            "InputLayer" && modelInputs.has((layer.input as tf.SymbolicTensor).name);
        flop += once * (first ? 2 : 3);
        if (layer.getWeights().length > 1) passes += output; // the bias gradient
        convolutions++;
        break;
      }
      case "ReLU":
      case "Activation":
        passes += input + 4 * output;
        break;
      case "BatchNormalization":
        passes += 3 * input + 5 * output;
        break;
      case "MaxPooling2D":
        passes += 3 * input + 3 * output;
        break;
      case "UpSampling2D":
      case "Concatenate":
        passes += 2 * input + 2 * output;
        break;
      case "Cropping2D":
        passes += input + 3 * output;
        break;
      case "MaxPoolWithMask":
        passes += 4 * input + 2 * output;
        break;
      case "MaxUnpool":
        passes += 2 * input + 4 * output;
        break;
      default:
        throw new Error(`stepWork() does not know layer ${layer.name} (${kind})`);
    }
  }
  passes += 5 * model.countParams(); // SGD with momentum
  return { flop, bytes: passes * FLOAT, convolutions };
}

/**
 * The floor of a step in milliseconds: its arithmetic at the peak rate plus
 * its memory traffic at the bandwidth.
 *
 * @param work From {@linkcode stepWork}.
 * @param machine Peak GFLOP/s and bandwidth GB/s.
 * @returns Milliseconds.
 *
 * @example
 * ```ts
 * import { floorMs } from "./floor.ts";
 * import { assertEquals } from "../lib/assert.ts";
 * assertEquals(floorMs({ flop: 4e9, bytes: 8e7, convolutions: 1 }, { gflops: 400, gbs: 40 }), 12);
 * ```
 */
export function floorMs(work: StepWork, machine: Machine): number {
  return (work.flop / (machine.gflops * 1e9) + work.bytes / (machine.gbs * 1e9)) * 1000;
}

/**
 * The best arithmetic rate the backend in use reaches: a large convolution
 * (batch 8, 32x32, 256 to 256 channels, 3x3; 9.7 GFLOP), run for a while,
 * the fastest kept. It stands for the machine's peak as this backend can use
 * it (a backend without native libraries gets its own, lower, peak).
 *
 * The first half second is slow: on this project's 2-core machine with
 * oneDNN, right after the process started, the best of 3 runs read 208-213
 * GFLOP/s and the best of 20 204, where a second measurement in the same
 * process read 386-418 (oneDNN takes the second core once `free_cores.ts`
 * sees it free, and Deno's start-up work had it busy). A floor twice too
 * high put bin at 0.80x "its floor". So it runs for `seconds` (at least 5
 * timed runs, at most 200).
 *
 * @param seconds How long to keep running the convolution, s.
 * @returns GFLOP/s.
 */
export async function measurePeakGflops(seconds = 2): Promise<number> {
  const [batch, size, channels, kernel] = [8, 32, 256, 3];
  const x = tf.randomUniform([batch, size, size, channels], -1, 1, "float32", 1);
  const w = tf.randomUniform([kernel, kernel, channels, channels], -0.05, 0.05, "float32", 2);
  const flop = 2 * batch * size * size * channels * kernel * kernel * channels;
  let best = Infinity;
  const started = performance.now();
  try {
    for (let run = 0; run <= 200; run++) {
      const start = performance.now();
      const y = tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, "same");
      await y.data();
      const ms = performance.now() - start;
      y.dispose();
      if (run > 0) best = Math.min(best, ms); // the first run sets the kernel up
      if (run >= 5 && performance.now() - started > seconds * 1000) break;
    }
  } finally {
    tf.dispose([x, w]);
  }
  return flop / (best / 1000) / 1e9;
}
