/**
 * Exercise 10, unet: the paper's UNet (arXiv 1505.04597). Encoder: two CBR
 * convs with no padding at 64, 128, 256, 512 and 1024 filters, 2x2 max-pool
 * between levels; decoder: transposed conv (kernel 2, stride 2, half the
 * filters) + BN + ReLU, centre crop of the encoder map to the decoder's size,
 * concat, two CBR convs, four times; 1x1 conv to three classes with softmax.
 *
 * Every unpadded conv loses two pixels, so the output is smaller than the
 * input (572 -> 388, 236 -> 52) and only some input sizes work. The mask is
 * resized to the input size with nearest-neighbour and its centre region at
 * the output size is the target (the part of the photo the output sees).
 *
 * On a CPU the tutorial asks only to build the network and run one training
 * iteration: that is the default (at 236), with the time it took and what a
 * full run would need. `--full` trains with the default protocol and tests,
 * for users with a GPU backend.
 *
 * @module
 */
import { runMain } from "../lib/errors.ts";
import {
  buildAndShow,
  type ExerciseSpec,
  loadSplit,
  loadTrained,
  nextStep,
  prepareRun,
  testAndShow,
  TRAIN_TEST_FLAGS,
  trainAndSave,
  type TrainTestRun,
} from "../lib/exercise.ts";
import { type FlagDefs, parseFlags } from "../lib/flags.ts";
import { outputSize } from "../lib/models.ts";
import { formatDuration } from "../lib/progress.ts";
import { trainModel } from "../lib/train.ts";

const SPEC: ExerciseSpec = {
  exercise: "unet",
  trainer: "unet",
  model: "unet",
  mode: "classes",
  next: { command: "deno task unetlike", why: "a UNet with padding and fewer filters, for a CPU" },
};

const FLAGS = {
  ...TRAIN_TEST_FLAGS,
  size: { ...TRAIN_TEST_FLAGS.size, default: 236 },
  full: {
    type: "boolean",
    default: false,
    help: "Train the whole protocol and test (needs a GPU backend to finish in reasonable time); " +
      "without it: one training iteration and its timing",
  },
} as const satisfies FlagDefs;

/**
 * Builds UNet and runs one training iteration (or, with `--full`, trains and
 * tests).
 *
 * @param args Command-line arguments.
 * @returns The model (the caller disposes it), the training run and the test metrics.
 */
export async function run(args: string[]): Promise<TrainTestRun> {
  // Settings
  const flags = parseFlags(args, FLAGS, {
    usage: "deno task unet [flags]",
    summary: "Build the paper's UNet (unpadded convs, crops) and run one training iteration, " +
      "or train and test it with --full.",
  });
  const out = outputSize("unet", flags.size); // refuses a size that cannot work
  const context = await prepareRun(flags);
  const result: TrainTestRun = {};
  // Model: input 236 gives output 52
  const model = buildAndShow(SPEC.model, flags);
  console.log(
    `sizes: input ${flags.size}x${flags.size}, output ${out}x${out}; masks are resized to ` +
      `${flags.size}x${flags.size} (nearest) and their centre ${out}x${out} is the target`,
  );
  if (flags.train) {
    // Data: each training photo four times (as is and flipped)
    const train = await loadSplit(context, "train", SPEC.mode, flags.size);
    try {
      if (flags.full) {
        result.trained = await trainAndSave(SPEC, model, train, flags);
      } else {
        // One iteration, timed
        console.log(`train: one iteration, batch ${flags.batchSize}, sgd lr ${flags.lr}`);
        const trained = await trainModel(model, train, {
          iters: 1,
          batchSize: flags.batchSize,
          lr: flags.lr,
          seed: flags.seed,
          warmup: 0,
          progress: { quiet: true },
        });
        trained.optimizer.dispose();
        const seconds = trained.seconds;
        console.log(
          `train: one iteration took ${formatDuration(seconds)} (loss ${
            trained.losses[0]!.toFixed(4)
          }); ${flags.iters} iterations would need about ${
            formatDuration(seconds * flags.iters)
          } on ${context.backend} (the first iteration also sets kernels up, so a little less)`,
        );
        console.log(
          "train: run `deno task unet --full` to train and test on a machine with a GPU backend, " +
            "or go on with the UNet-like network, made for a CPU",
        );
        result.trained = {
          model,
          losses: trained.losses,
          msPerIter: seconds * 1000,
          checkpoint: "",
          lossFigure: "",
        };
      }
      result.model = result.trained.model;
    } finally {
      train.images.dispose();
      train.masks.dispose();
    }
  }
  if (!flags.test) {
    result.model ??= model;
    nextStep(SPEC);
    return result;
  }
  // Test: the trained model (after one iteration the figures show an untrained
  // network), or the checkpoint with --no-train
  if (!result.model) {
    model.dispose();
    result.model = await loadTrained(SPEC, flags);
  }
  result.tested = await testAndShow(SPEC, result.model, context, flags);
  return result;
}

if (import.meta.main) await runMain(async () => void (await run(Deno.args)).model?.dispose());
