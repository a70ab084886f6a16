/**
 * The exercises the training page offers, each as its own module hands it
 * over: the network (`Mynet`), its protocol, the loss it trains on, how masks
 * are read and predictions classified and painted. Nothing is copied here:
 * every value is imported from `exercises/`, whose static imports are
 * platform-neutral (their `run` imports the files, sharp and FFI when called).
 * Only the two lines that say each exercise's idea are written here.
 *
 * SegNet is left out: at its protocol (64 px, minibatch 16, a VGG16 encoder
 * up to 512 filters) Deno's run peaks at 1474 MiB and takes 572 ms per
 * iteration with oneDNN on both cores (docs/results.md); a tab's wasm heap
 * would hold the weights, the activations of 16 images and their gradients
 * next to the data, near the wasm backend's memory limit, and its 1000
 * iterations would take hours on the single-threaded wasm path.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs";
import type { Classify } from "../lib/evaluate.ts";
import type { LogitsLoss } from "../lib/losses.ts";
import type { MaskMode } from "../lib/mask_classes.ts";
import type { NetOptions, OutputSizeOf } from "../lib/network.ts";
import * as binLoss from "../exercises/bin_loss.ts";
import { BINARY, paintBinary } from "../exercises/bin_dataset.ts";
import { threshold } from "../exercises/bin_test.ts";
import * as semasegLoss from "../exercises/semaseg_loss.ts";
import { CLASSES, paintClasses } from "../exercises/semaseg_dataset.ts";
import { argmaxClasses } from "../exercises/semaseg_test.ts";
import * as nearest from "../exercises/nearest.ts";
import * as transposeconv from "../exercises/transposeconv.ts";
import * as concat from "../exercises/concat.ts";
import * as unetlike from "../exercises/unetlike.ts";

/** The tutorial's protocol of an exercise: every value editable in the page. */
export interface Protocol {
  /** Input height and width in pixels. */
  size: number;
  /** Images per minibatch. */
  batchSize: number;
  /** Training iterations. */
  iters: number;
  /** Learning rate of SGD with momentum 0.9. */
  lr: number;
}

/** One exercise as the page trains it. */
export interface PageLesson {
  /** The exercise, as `deno task <name>` runs it. */
  name: string;
  /** The network's name in the checkpoint (`training_state.json`'s `model`). */
  network: string;
  /** What the exercise teaches, in two lines. */
  idea: [string, string];
  /** The exercise's protocol. */
  protocol: Protocol;
  /** The exercise's `Mynet`. */
  build: (size: number, options?: NetOptions) => tf.LayersModel;
  /** Output size for an input size, `undefined` where the network cannot take it. */
  outputSize: OutputSizeOf;
  /** The loss on the logits that the exercise trains on. */
  loss: LogitsLoss;
  /** How the masks are read. */
  mode: MaskMode;
  /** Probabilities to classes. */
  classify: Classify;
  /** Classes to colours in [0, 1]. */
  paint: (classMap: tf.Tensor2D) => tf.Tensor3D;
}

const SEGMENTATION = {
  loss: semasegLoss.semasegLoss,
  mode: CLASSES,
  classify: argmaxClasses,
  paint: paintClasses,
};

/** The exercises the page offers, in the tutorial's order. */
export const LESSONS: readonly PageLesson[] = [
  {
    name: "bin_loss",
    network: "bin",
    idea: [
      "Binarization: is this pixel newt or background? Six conv-ReLU-BN layers keep the size,",
      "a 1x1 conv and a sigmoid give one probability per pixel, trained on binary cross-entropy.",
    ],
    protocol: binLoss.PROTOCOL,
    build: binLoss.Mynet,
    outputSize: (size) => size,
    loss: binLoss.binLoss,
    mode: BINARY,
    classify: (probabilities) => threshold(probabilities),
    paint: paintBinary,
  },
  {
    name: "semaseg_loss",
    network: "semaseg",
    idea: [
      "Semantic segmentation: which class is this pixel, background, akahara or madara?",
      "The same convs, three output channels and a softmax, trained on softmax cross-entropy.",
    ],
    protocol: semasegLoss.PROTOCOL,
    build: semasegLoss.Mynet,
    outputSize: (size) => size,
    ...SEGMENTATION,
  },
  {
    name: "nearest",
    network: "nearest",
    idea: [
      "Down and up again: a 2x2 max-pooling halves the size so each conv sees more of the photo,",
      "nearest-neighbour upsampling doubles it back (each pixel copied into a 2x2 block).",
    ],
    protocol: nearest.PROTOCOL,
    build: nearest.Mynet,
    outputSize: nearest.outputSize,
    ...SEGMENTATION,
  },
  {
    name: "transposeconv",
    network: "transposeconv",
    idea: [
      "Learned upsampling: nearest's copy replaced by a transposed convolution (kernel 2,",
      "stride 2), so the network learns how to fill in the doubled grid.",
    ],
    protocol: transposeconv.PROTOCOL,
    build: transposeconv.Mynet,
    outputSize: transposeconv.outputSize,
    ...SEGMENTATION,
  },
  {
    name: "concat",
    network: "concat",
    idea: [
      "A skip connection: the first convs' full-resolution map is concatenated with the",
      "upsampled one, so the decoder sees both the context and the detail pooling blurred.",
    ],
    protocol: concat.PROTOCOL,
    build: concat.Mynet,
    outputSize: concat.outputSize,
    ...SEGMENTATION,
  },
  {
    name: "unetlike",
    network: "unetlike",
    idea: [
      "UNet made practical: five levels down with max-pooling (16 to 256 filters), four up with",
      "transposed convs, each joined to the encoder map of its level by concatenation.",
    ],
    protocol: unetlike.PROTOCOL,
    build: unetlike.Mynet,
    outputSize: unetlike.outputSize,
    ...SEGMENTATION,
  },
];

/**
 * The lesson of an exercise by name.
 *
 * @param name An exercise the page offers, e.g. `nearest`.
 * @returns Its lesson.
 * @throws {Error} For a name the page does not offer, listing those it does.
 *
 * @example
 * ```ts
 * import { lessonNamed } from "./lessons.ts";
 * import { assertEquals, assertThrows } from "../lib/assert.ts";
 * assertEquals(lessonNamed("nearest").protocol.iters, 500);
 * assertThrows(() => lessonNamed("segnet"), /bin_loss, semaseg_loss/);
 * ```
 */
export function lessonNamed(name: string): PageLesson {
  const lesson = LESSONS.find((one) => one.name === name);
  if (!lesson) {
    throw new Error(
      `No exercise ${name} in the page; it offers ${LESSONS.map((one) => one.name).join(", ")}`,
    );
  }
  return lesson;
}
