/**
 * Exercise 12, segnet: SegNet (Badrinarayanan et al., 2015, arXiv
 * 1511.00561). A VGG16-style encoder: (2, 2, 3, 3, 3) CBR convs at (64, 128,
 * 256, 512, 512) filters, each level ending in a 2x2 max-pooling that keeps
 * where each maximum was. The decoder mirrors it: each level starts with a
 * max-unpooling that puts the values back at those positions (zeros
 * elsewhere), then (3, 3, 3, 2, 2) CBR convs at (512, 256, 128, 64, 64)
 * filters; a 1x1 conv to three classes and a softmax. The input size must be
 * a multiple of 32 (five poolings).
 *
 * Trains, then tests, in one run: `--no-train` tests the saved checkpoint,
 * `--no-test` only trains. `--recipe tuned` trains with the UNet-like
 * network's tuned recipe instead of the answer's protocol.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import {
  convBlock,
  poolWithIndices,
  SeedSequence,
  segmentationHead,
  unpool,
} from "../lib/blocks.ts";
import { runTrainTest } from "../lib/commands.ts";
import { runMain } from "../lib/errors.ts";
import { shellWord } from "../lib/flag_defs.ts";
import { checkSize, type NetOptions } from "../lib/network.ts";
import type { TrainTestRun } from "../lib/test_figures.ts";
import { CLASSES, paintClasses } from "./semaseg_dataset.ts";
import { semasegLoss } from "./semaseg_loss.ts";
import { argmaxClasses } from "./semaseg_test.ts";

const EXERCISE = "segnet";
// Settings: the protocol of the tutorial's answer (SGD with momentum 0.9), every value a flag.
export const PROTOCOL = { size: 64, batchSize: 16, iters: 1000, lr: 0.01 };
/** The next step: the checkpoint just written, on your own photos. */
const NEXT = (checkpoint: string) =>
  `deno task segment --checkpoint ${shellWord(checkpoint)} PHOTO  ` +
  "(use the trained SegNet on your own photos)";

/** The output size for an input size (pixels): five poolings need a multiple of 32. */
export const outputSize = (size: number): number | undefined => size % 32 ? undefined : size;

/**
 * SegNet. The shape comments are for the default input, 64.
 *
 * @param size Input height and width in pixels, a multiple of 32.
 * @param options Classes (3) and the seed of the initial weights.
 * @returns The model: `[batch, size, size, 3]` in [0, 1] to class probabilities
 *   `[batch, size, size, classes]`.
 * @throws {UserError} For a size that cannot work, naming the closest sizes that do.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { Mynet } from "./segnet.ts";
 * import { assertEquals } from "../lib/assert.ts";
 * await tf.setBackend("cpu");
 * assertEquals(Mynet(32).outputs[0]!.shape, [null, 32, 32, 3]);
 * ```
 */
export function Mynet(size = 64, { classes = 3, seed = 0 }: NetOptions = {}): tf.LayersModel {
  checkSize(EXERCISE, size, outputSize);
  const seeds = new SeedSequence(seed);
  // (Conv 3x3 -> BatchNorm -> ReLU) x convs
  const cbr = (x: tf.SymbolicTensor, filters: number, convs: number, name: string) =>
    convBlock(x, filters, { order: "CBR", seeds, name, convs });
  const input = tf.input({ shape: [size, size, 3], name: "image" }); // [batch, 64, 64, 3]
  // Encoder: each level's max-pooling keeps a mask of where its maxima were
  let x = cbr(input, 64, 2, "enc1"); // [batch, 64, 64, 64]
  const [pool1, mask1] = poolWithIndices(x, "pool1"); // [batch, 32, 32, 64], mask [batch, 64, 64, 64]
  x = cbr(pool1, 128, 2, "enc2"); // [batch, 32, 32, 128]
  const [pool2, mask2] = poolWithIndices(x, "pool2"); // [batch, 16, 16, 128]
  x = cbr(pool2, 256, 3, "enc3"); // [batch, 16, 16, 256]
  const [pool3, mask3] = poolWithIndices(x, "pool3"); // [batch, 8, 8, 256]
  x = cbr(pool3, 512, 3, "enc4"); // [batch, 8, 8, 512]
  const [pool4, mask4] = poolWithIndices(x, "pool4"); // [batch, 4, 4, 512]
  x = cbr(pool4, 512, 3, "enc5"); // [batch, 4, 4, 512]
  const [pool5, mask5] = poolWithIndices(x, "pool5"); // [batch, 2, 2, 512]
  // Decoder: each unpooling puts the values back where the maxima were, zeros elsewhere
  x = cbr(unpool(pool5, mask5, "unpool5"), 512, 3, "dec5"); // unpool [batch, 4, 4, 512]
  x = cbr(unpool(x, mask4, "unpool4"), 256, 3, "dec4"); // unpool [batch, 8, 8, 512] -> 256
  x = cbr(unpool(x, mask3, "unpool3"), 128, 3, "dec3"); // unpool [batch, 16, 16, 256] -> 128
  x = cbr(unpool(x, mask2, "unpool2"), 64, 2, "dec2"); // unpool [batch, 32, 32, 128] -> 64
  x = cbr(unpool(x, mask1, "unpool1"), 64, 2, "dec1"); // unpool [batch, 64, 64, 64]
  const probabilities = segmentationHead(x, classes, "softmax", { seeds }); // [batch, 64, 64, 3]
  return tf.model({ inputs: input, outputs: probabilities, name: EXERCISE });
}

/** Trains Mynet, then tests it (`--help` lists the flags). */
export const run = (args: string[]): Promise<TrainTestRun> =>
  runTrainTest(args, {
    name: EXERCISE,
    summary: "Train and test SegNet (VGG16 encoder, unpooling with the max-pool positions).",
    protocol: PROTOCOL, // data: the four flips of the answers, or the recipe's random crops
    build: Mynet,
    outputSize,
    mode: CLASSES, // masks as class indices
    // semasegLoss, the softmax cross-entropy of every pixel, is taken on the logits:
    // training runs Mynet without its final softmax (logitsModel in lib/train.ts)
    loss: semasegLoss,
    classify: argmaxClasses, // test: the argmax class of each pixel, painted, and the mIoU
    paint: paintClasses,
    next: NEXT,
    carryData: false, // segment takes no --data
    recipes: true, // --recipe tuned: see docs/results.md
  });

if (import.meta.main) await runMain(async () => void (await run(Deno.args)).model?.dispose());
