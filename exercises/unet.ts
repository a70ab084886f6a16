/**
 * Exercise 10, unet: the paper's UNet (Ronneberger et al., 2015, arXiv
 * 1505.04597). Encoder: two CBR convs with no padding at 64, 128, 256, 512
 * and 1024 filters, 2x2 max-pool between levels. Decoder, four times: a
 * transposed conv (kernel 2, stride 2, half the filters) + BN + ReLU, the
 * encoder map of the same level centre-cropped to the decoder's size,
 * concatenation, two CBR convs. A 1x1 conv to three classes and a softmax.
 *
 * Every unpadded conv loses two pixels, so the output is smaller than the
 * input (572 -> 388, 236 -> 52) and only some input sizes work. The mask is
 * resized to the input size with nearest neighbour and its centre region at
 * the output size is the target (the part of the photo the output sees).
 *
 * The tutorial asks only to build the network and run a training iteration:
 * that is the default (at 236), two iterations, the second timed (the first
 * also sets the kernels up), and what a full run would need. `--full` trains with the answer's protocol (100
 * iterations at learning rate 0.001) and tests: with oneDNN on a 2-core CPU
 * 3 to 5 s an iteration, 5 to 10 minutes in all (test mIoU 0.584 on Imori).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../engine/mod.ts";
import {
  centreCrop,
  convBlock,
  maxPool,
  SeedSequence,
  segmentationHead,
  upsampleTransposed,
} from "../lib/blocks.ts";
import { resolveDataDir } from "../lib/data_dir.ts";
import { loadSplit } from "../lib/dataset.ts";
import { runMain } from "../lib/errors.ts";
import { nextStep, TRAIN_TEST_FLAGS, withDefaults, withHelp } from "../lib/exercise_flags.ts";
import { type FlagDefs, parseFlags } from "../lib/flags.ts";
import { checkBatchFits } from "../lib/memory_budget.ts";
import { checkSize, type NetOptions, showModel } from "../lib/network.ts";
import { formatDuration } from "../lib/progress.ts";
import { testAndShow, type TrainTestRun } from "../lib/test_figures.ts";
import { trainModel } from "../lib/train.ts";
import { trainThenTest } from "../lib/train_then_test.ts";
import { CLASSES, paintClasses } from "./semaseg_dataset.ts";
import { semasegLoss } from "./semaseg_loss.ts";
import { argmaxClasses } from "./semaseg_test.ts";

const EXERCISE = "unet";
// Settings: the protocol of the tutorial's answer for --full (SGD with momentum 0.9); on a CPU
// the default is two iterations at 236, the second timed. Every value is a flag.
export const PROTOCOL = { size: 236, batchSize: 4, iters: 100, lr: 0.001 };
const NEXT = "deno task unetlike  (a UNet with padding and fewer filters, for a CPU)";

/** Filters of the five levels, as in the paper. */
export const FILTERS = [64, 128, 256, 512, 1024] as const;

/**
 * The output size for an input size: each level's two unpadded convs lose 4
 * pixels, each pooling needs an even size, each upsampling doubles.
 *
 * @param size Input height and width in pixels.
 * @returns The output size, or `undefined` when the size cannot work.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { outputSize } from "./unet.ts";
 * import { assertEquals } from "../lib/assert.ts";
 * await tf.setBackend("cpu");
 * assertEquals([outputSize(572), outputSize(236), outputSize(64)], [388, 52, undefined]);
 * ```
 */
export function outputSize(size: number): number | undefined {
  let current = size;
  for (let level = 1; level < FILTERS.length; level++) {
    current -= 4; // two unpadded 3x3 convs
    if (current < 2 || current % 2 !== 0) return undefined;
    current /= 2; // max-pool
  }
  current -= 4; // the bottom level
  for (let level = 1; level < FILTERS.length; level++) {
    if (current < 1) return undefined;
    current = current * 2 - 4; // upsample, then two unpadded convs
  }
  return current >= 1 ? current : undefined;
}

/**
 * The paper's UNet. The shape comments are for the paper's input, 572.
 *
 * @param size Input height and width in pixels (572, 236, 188, ...: see {@linkcode outputSize}).
 * @param options Classes (3) and the seed of the initial weights.
 * @returns The model: `[batch, size, size, 3]` in [0, 1] to class probabilities
 *   `[batch, out, out, classes]`, `out = outputSize(size)`.
 * @throws {UserError} For a size that cannot work, naming the closest sizes that do.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { Mynet } from "./unet.ts";
 * import { assertEquals } from "../lib/assert.ts";
 * await tf.setBackend("cpu");
 * assertEquals(Mynet(188).outputs[0]!.shape, [null, 4, 4, 3]);
 * ```
 */
export function Mynet(size = 236, { classes = 3, seed = 0 }: NetOptions = {}): tf.LayersModel {
  checkSize(EXERCISE, size, outputSize);
  const seeds = new SeedSequence(seed);
  // (Conv 3x3, no padding -> BatchNorm -> ReLU) x2: 4 pixels fewer
  const cbr = (x: tf.SymbolicTensor, filters: number, name: string) =>
    convBlock(x, filters, { order: "CBR", padding: "valid", seeds, name });
  // Up one level: upsample, crop the encoder map to the same size, concat, two convs
  const up = (x: tf.SymbolicTensor, skip: tf.SymbolicTensor, filters: number, name: string) => {
    x = upsampleTransposed(x, filters, { order: "CBR", seeds, name }); // [batch, 2h, 2w, filters]
    const [, height, width] = x.shape as number[];
    const cropped = centreCrop(skip, height!, width!, `${name}_crop`); // [batch, 2h, 2w, filters]
    x = tf.layers.concatenate({ axis: -1, name: `${name}_concat` })
      .apply([x, cropped]) as tf.SymbolicTensor; // [batch, 2h, 2w, 2 x filters]
    return cbr(x, filters, name); // [batch, 2h - 4, 2w - 4, filters]
  };
  const input = tf.input({ shape: [size, size, 3], name: "image" }); // [batch, 572, 572, 3]
  const enc1 = cbr(input, FILTERS[0], "enc1"); // [batch, 568, 568, 64]
  const enc2 = cbr(maxPool(enc1, "pool1"), FILTERS[1], "enc2"); // pool 284, conv [batch, 280, 280, 128]
  const enc3 = cbr(maxPool(enc2, "pool2"), FILTERS[2], "enc3"); // pool 140, conv [batch, 136, 136, 256]
  const enc4 = cbr(maxPool(enc3, "pool3"), FILTERS[3], "enc4"); // pool 68, conv [batch, 64, 64, 512]
  let x = cbr(maxPool(enc4, "pool4"), FILTERS[4], "enc5"); // pool 32, conv [batch, 28, 28, 1024]
  x = up(x, enc4, FILTERS[3], "dec4"); // up 56, enc4 cropped 64 -> 56, conv [batch, 52, 52, 512]
  x = up(x, enc3, FILTERS[2], "dec3"); // up 104, enc3 cropped 136 -> 104, [batch, 100, 100, 256]
  x = up(x, enc2, FILTERS[1], "dec2"); // up 200, enc2 cropped 280 -> 200, [batch, 196, 196, 128]
  x = up(x, enc1, FILTERS[0], "dec1"); // up 392, enc1 cropped 568 -> 392, [batch, 388, 388, 64]
  const probabilities = segmentationHead(x, classes, "softmax", { seeds }); // [batch, 388, 388, 3]
  return tf.model({ inputs: input, outputs: probabilities, name: EXERCISE });
}

const FLAGS = {
  ...withHelp(withDefaults(TRAIN_TEST_FLAGS, PROTOCOL), {
    checkpoint: `Checkpoint folder; default checkpoints/${EXERCISE}`,
  }),
  full: {
    type: "boolean",
    default: false,
    help: "Train the answer's whole protocol and test (100 iterations: about 10 minutes with " +
      "oneDNN on a 2-core CPU); without it: two training iterations, the second timed",
  },
} as const satisfies FlagDefs;

/**
 * Builds UNet and runs two training iterations (or, with `--full`, trains and
 * tests).
 *
 * @param args Command-line arguments.
 * @returns The model (the caller disposes it), the training run and the test metrics.
 */
export async function run(args: string[]): Promise<TrainTestRun> {
  const flags = parseFlags(args, FLAGS, {
    usage: `deno task ${EXERCISE} [flags]`,
    summary:
      "Build the paper's UNet (unpadded convs, crops) and run two timed training iterations, " +
      "or train and test it with --full.",
  });
  const out = checkSize(EXERCISE, flags.size, outputSize);
  console.log(
    `sizes: input ${flags.size}x${flags.size}, output ${out}x${out}; masks are resized to ` +
      `${flags.size}x${flags.size} (nearest) and their centre ${out}x${out} is the target`,
  );
  // Train Mynet on semasegLoss, the softmax cross-entropy of every output pixel against the
  // mask's centre, taken on the logits: training runs Mynet without its final softmax
  // (logitsModel in lib/train.ts).
  const lesson = {
    name: EXERCISE,
    build: Mynet,
    outputSize,
    mode: CLASSES,
    loss: semasegLoss,
    classify: argmaxClasses,
    paint: paintClasses,
    next: NEXT,
  };
  if (flags.full) return await trainThenTest(flags, lesson);
  // Without --full: two iterations (the first also sets the kernels up), the second timed,
  // and what the whole protocol would take
  const backend = await setupBackend(flags.backend);
  const dataDir = await resolveDataDir(flags.data, { outputs: { "--out": flags.out } });
  const model = showModel(Mynet(flags.size, { seed: flags.seed }));
  checkBatchFits(model, flags.batchSize); // before the data: at 572 one image takes 1.8 GiB
  const train = await loadSplit(dataDir, "train", {
    mode: CLASSES,
    size: flags.size,
    testAfter: flags.test, // an empty test split is refused before training
  });
  const result: TrainTestRun = { model };
  try {
    console.log(`train: two iterations, batch ${flags.batchSize}, sgd momentum 0.9 lr ${flags.lr}`);
    const trained = await trainModel(model, train, {
      ...flags,
      iters: 2,
      loss: semasegLoss,
      warmup: 1, // msPerIter: the second iteration alone
      progress: { quiet: true },
    });
    trained.optimizer.dispose();
    const { losses, msPerIter } = trained;
    result.trained = { model, losses, msPerIter, checkpoint: "", lossFigure: "" };
    console.log(
      `train: the first iteration took ${formatDuration(trained.seconds - msPerIter / 1000)} ` +
        `with setup, the second ${formatDuration(msPerIter / 1000)} (loss ${
          losses.at(-1)!.toFixed(4)
        }); ${flags.iters} iterations would need about ${
          formatDuration(msPerIter / 1000 * flags.iters)
        } on ${backend}`,
    );
    // The flags of this run that --full should keep (those that differ from the protocol)
    const differs = (value: number, protocol: number) => value === protocol ? undefined : value;
    const full = nextStep("deno task unet --full", flags.data, {
      size: differs(flags.size, PROTOCOL.size),
      "batch-size": differs(flags.batchSize, PROTOCOL.batchSize),
      iters: differs(flags.iters, PROTOCOL.iters),
      lr: differs(flags.lr, PROTOCOL.lr),
    });
    console.log(`train: run \`${full}\` to train and test it, or go on with the UNet-like network`);
  } finally {
    tf.dispose([train.images, train.masks]);
  }
  if (!flags.test) {
    console.log(`next: ${nextStep(NEXT, flags.data)}`);
    return result;
  }
  console.log("test: after two iterations the network is as good as untrained; so are its figures");
  result.tested = await testAndShow(model, dataDir, {
    ...flags,
    ...lesson,
    build: (size) => Mynet(size),
    next: nextStep(NEXT, flags.data),
  });
  return result;
}

if (import.meta.main) await runMain(async () => void (await run(Deno.args)).model?.dispose());
