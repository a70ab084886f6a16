/**
 * The benchmark: trains each named network with the default protocol for N
 * iterations and each seed, evaluates it on the test set, and prints a table
 * beside PyTorch: PyTorch's figures from SPEC.md, or, with `--pytorch`,
 * PyTorch itself trained in the same run on the same data and minibatch
 * order (tools/pytorch_reference.py) and scored by the same mIoU code.
 * The results are written as JSON.
 *
 * ```
 * deno task bench --models nearest,concat --seeds 0,1,2 --pytorch --data ../shared/imori --json bench.json
 * ```
 *
 * `ms_per_iter` leaves out the first 5 (warm-up) iterations.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../engine/mod.ts";
import { resolveDataDir } from "../lib/data_dir.ts";
import { loadDataset } from "../lib/dataset.ts";
import { runMain, UserError } from "../lib/errors.ts";
import {
  confusionMatrix,
  evaluateModel,
  formatMetricsLine,
  metricsFromConfusion,
} from "../lib/evaluate.ts";
import { type FlagDefs, type FlagValues, parseFlags, TRAIN_FLAGS } from "../lib/flags.ts";
import { buildModel, MODEL_NAMES, type ModelName } from "./networks.ts";
import { dirname } from "../lib/path.ts";
import { trainModel } from "../lib/train.ts";
import {
  BATCH_NORM_STATS,
  type BatchNormStats,
  recomputeBatchNormStats,
} from "../lib/batch_norm_stats.ts";
import { findPyTorch, runPyTorch } from "./pytorch.ts";

/** PyTorch 1.13 on this project's kind of machine (SPEC.md): ms per iteration, test mIoU. */
export const PYTORCH: Partial<Record<ModelName, { msPerIter: number; miou: number }>> = {
  bin: { msPerIter: 38, miou: 0.68 },
  semaseg: { msPerIter: 38, miou: 0.64 },
  nearest: { msPerIter: 28, miou: 0.66 },
  transposeconv: { msPerIter: 71, miou: 0.69 },
  concat: { msPerIter: 75, miou: 0.68 },
  unetlike: { msPerIter: 130, miou: 0.66 },
  segnet: { msPerIter: 348, miou: 0.48 },
};

const FLAGS = {
  models: {
    type: "string",
    default: "bin,semaseg,nearest,transposeconv,concat",
    help: `Comma-separated networks, of ${MODEL_NAMES.join(", ")}`,
  },
  iters: { type: "int", default: 500, min: 1, help: "Training iterations per network" },
  batchSize: TRAIN_FLAGS.batchSize,
  lr: TRAIN_FLAGS.lr,
  seeds: {
    type: "string",
    default: "0",
    help: "Comma-separated seeds; each network is trained once per seed, with a mean row",
  },
  size: { type: "int", default: 64, min: 8, max: 1024, help: "Model input size in pixels" },
  data: {
    type: "string",
    help: "Dataset folder in the Imori layout; default data/imori, else the built-in synthetic set",
  },
  backend: TRAIN_FLAGS.backend,
  bnStats: {
    type: "string",
    default: "recompute",
    choices: BATCH_NORM_STATS,
    help: "Batch-norm statistics for the test, for both frameworks: recomputed over the " +
      "training set after training, or the moving averages",
  },
  pytorch: {
    type: "boolean",
    default: false,
    help: "Also train each network in PyTorch in this run, on the same data and minibatches",
  },
  python: {
    type: "string",
    help:
      "Python interpreter with torch for --pytorch; default the first of python3, /usr/bin/python3",
  },
  torchThreads: {
    type: "int",
    default: 0,
    min: 0,
    help: "Threads for PyTorch; 0: one per core, as OpenBLAS gets",
  },
  json: { type: "string", help: "Write the results to this JSON file" },
} as const satisfies FlagDefs;

/** PyTorch's result for one network and seed, measured in the same run. */
export interface PyTorchResult {
  /** Mean ms per iteration, the first 5 left out. */
  ms_per_iter: number;
  /** Training wall-clock seconds. */
  train_s: number;
  /** Test mIoU, by the project's own metric code. */
  test_miou: number;
  /** Test pixel accuracy. */
  pixel_acc: number;
  /** Threads PyTorch used. */
  threads: number;
  /** PyTorch's version. */
  version: string;
}

/** One network's result, as written in the JSON file. */
export interface BenchResult {
  /** The network. */
  model: string;
  /** Seed of the weights and minibatch order. */
  seed: number;
  /** Training iterations. */
  iters: number;
  /** Minibatch size. */
  batch: number;
  /** Input size. */
  size: number;
  /** Mean ms per iteration, the first 5 left out. */
  ms_per_iter: number;
  /** Training wall-clock seconds. */
  train_s: number;
  /** Test mIoU. */
  test_miou: number;
  /** Test pixel accuracy. */
  pixel_acc: number;
  /** PyTorch on the same data and minibatches, with `--pytorch`. */
  pytorch?: PyTorchResult;
}

/** The JSON file's content. */
export interface BenchReport {
  /** The tfjs backend that ran, e.g. `wasm`. */
  backend: string;
  /** What `setupBackend` said of it, e.g. `wasm+openblas (OpenBLAS on 2 threads)`. */
  backend_detail: string;
  /** Batch-norm statistics of the test: `recompute` or `moving`. */
  bn_stats: string;
  /** One entry per network and seed. */
  results: BenchResult[];
}

function mean(values: number[]): number {
  return values.reduce((sum, value) => sum + value, 0) / values.length;
}

/**
 * Formats the results as a table beside PyTorch: the figures measured in the
 * same run where there are some (source `this run`), else SPEC.md's (source
 * `SPEC.md`). A network run with several seeds gets a `mean` row after its seeds.
 *
 * @param results The results.
 * @returns The table text.
 *
 * @example
 * ```ts
 * import { formatTable } from "./bench.ts";
 * import { assert } from "../lib/assert.ts";
 * const table = formatTable([{ model: "bin", seed: 0, iters: 500, batch: 4, size: 64,
 *   ms_per_iter: 76, train_s: 38, test_miou: 0.7, pixel_acc: 0.9 }]);
 * assert(table.includes("2.00x"));
 * ```
 */
export function formatTable(results: BenchResult[]): string {
  const header = [
    "model",
    "seed",
    "iters",
    "ms/iter",
    "test mIoU",
    "pixel acc",
    "PyTorch ms/iter",
    "ratio",
    "PyTorch mIoU",
    "PyTorch from",
  ];
  const row = (label: string, seed: string, group: BenchResult[]) => {
    const ms = mean(group.map((result) => result.ms_per_iter));
    const measured = group.every((result) => result.pytorch)
      ? group.map((result) => result.pytorch!)
      : undefined;
    const spec = PYTORCH[label as ModelName];
    const reference = measured
      ? {
        msPerIter: mean(measured.map((result) => result.ms_per_iter)),
        miou: mean(measured.map((result) => result.test_miou)),
      }
      : spec;
    return [
      label,
      seed,
      String(group[0]!.iters),
      ms.toFixed(1),
      mean(group.map((result) => result.test_miou)).toFixed(3),
      mean(group.map((result) => result.pixel_acc)).toFixed(3),
      reference ? reference.msPerIter.toFixed(measured ? 1 : 0) : "-",
      reference ? `${(ms / reference.msPerIter).toFixed(2)}x` : "-",
      reference ? reference.miou.toFixed(measured ? 3 : 2) : "-",
      measured ? "this run" : spec ? "SPEC.md" : "-",
    ];
  };
  const rows: string[][] = [];
  const models = [...new Set(results.map((result) => result.model))];
  for (const model of models) {
    const group = results.filter((result) => result.model === model);
    for (const result of group) rows.push(row(model, String(result.seed), [result]));
    if (group.length > 1) rows.push(row(model, "mean", group));
  }
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((cells) => cells[column]!.length))
  );
  const line = (cells: string[]) =>
    cells.map((cell, column) =>
      column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!)
    )
      .join("  ");
  return [line(header), ...rows.map(line)].join("\n");
}

function parseSeeds(text: string): number[] {
  const seeds = text.split(",").map((part) => part.trim()).filter((part) => part);
  const parsed = seeds.map(Number);
  if (!parsed.length || parsed.some((seed) => !Number.isInteger(seed) || seed < 0)) {
    throw new UserError(
      `Bad value for --seeds: ${text}; give non-negative integers separated by commas, e.g. 0,1,2`,
    );
  }
  return parsed;
}

/**
 * Runs the benchmark.
 *
 * @param args Command-line arguments.
 * @returns The report that was printed and written.
 */
export async function run(args: string[]): Promise<BenchReport> {
  const flags = parseFlags(args, FLAGS, {
    usage: "deno task bench [flags]",
    summary: "Train each network with the default protocol, test it, and compare with PyTorch.",
  });
  const names = flags.models.split(",").map((name) => name.trim()).filter((name) => name);
  for (const name of names) {
    if (!MODEL_NAMES.includes(name as ModelName)) {
      throw new UserError(`Unknown model "${name}" in --models: use ${MODEL_NAMES.join(", ")}`);
    }
    if (flags.pytorch && name === "unet") {
      throw new UserError(
        "The PyTorch reference has no unet (one iteration at 236 takes seconds on a CPU); " +
          "leave unet out of --models with --pytorch",
      );
    }
  }
  const seeds = parseSeeds(flags.seeds);
  const python = flags.pytorch ? await findPyTorch(flags.python) : undefined; // before training
  if (python) console.log(`pytorch: ${python.version} via ${python.python}`);
  const detail = await setupBackend(flags.backend as Parameters<typeof setupBackend>[0]);
  const dataDir = await resolveDataDir(flags.data);
  const report: BenchReport = {
    backend: tf.getBackend(),
    backend_detail: detail,
    bn_stats: flags.bnStats,
    results: [],
  };
  for (const name of names as ModelName[]) {
    const mode = name === "bin" ? "binary" : "classes";
    const train = await loadDataset(dataDir, {
      split: "train",
      size: flags.size,
      mode,
      flips: true,
    });
    const test = await loadDataset(dataDir, { split: "test", size: flags.size, mode });
    try {
      for (const seed of seeds) {
        report.results.push(await benchOne(name, seed, train, test, flags, python?.python));
      }
    } finally {
      tf.dispose([train.images, train.masks, test.images, test.masks]);
    }
  }
  console.log(
    `\nbackend ${detail}, data ${dataDir}, ${flags.size}x${flags.size}, ` +
      `batch-norm statistics: ${flags.bnStats}\n`,
  );
  console.log(formatTable(report.results));
  if (flags.json) {
    await Deno.mkdir(dirname(flags.json), { recursive: true });
    await Deno.writeTextFile(flags.json, JSON.stringify(report, null, 2) + "\n");
    console.log(`json: ${flags.json}`);
  }
  return report;
}

type Flags = FlagValues<typeof FLAGS>;
type Split = Awaited<ReturnType<typeof loadDataset>>;

async function benchOne(
  name: ModelName,
  seed: number,
  train: Split,
  test: Split,
  flags: Flags,
  python: string | undefined,
): Promise<BenchResult> {
  const model = buildModel(name, { size: flags.size, seed });
  let result: BenchResult;
  try {
    console.log(`${name}, seed ${seed}: training ${flags.iters} iterations`);
    const trained = await trainModel(model, train, {
      iters: flags.iters,
      batchSize: flags.batchSize,
      lr: flags.lr,
      seed,
      progress: { every: 100 },
    });
    trained.optimizer.dispose();
    if (flags.bnStats === "recompute") {
      recomputeBatchNormStats(model, train.images, flags.batchSize);
    }
    const evaluation = await evaluateModel(model, test.images, test.masks, {
      classNames: test.classNames,
    });
    tf.dispose([evaluation.probabilities, evaluation.classMap, evaluation.truth]);
    console.log(
      `${name}, seed ${seed}: ${trained.msPerIter.toFixed(1)} ms per iteration, ` +
        formatMetricsLine(evaluation.metrics),
    );
    result = {
      model: name,
      seed,
      iters: flags.iters,
      batch: flags.batchSize,
      size: flags.size,
      ms_per_iter: trained.msPerIter,
      train_s: trained.seconds,
      test_miou: evaluation.metrics.miou,
      pixel_acc: evaluation.metrics.pixelAccuracy,
    };
  } finally {
    model.dispose();
  }
  if (python) {
    const classes = name === "bin" ? 1 : test.classNames.length;
    const torch = await runPyTorch({
      model: name,
      classes,
      size: flags.size,
      train,
      testImages: test.images,
      iters: flags.iters,
      batchSize: flags.batchSize,
      lr: flags.lr,
      momentum: 0.9,
      seed,
      threads: flags.torchThreads || navigator.hardwareConcurrency,
      bnStats: flags.bnStats as BatchNormStats,
      python,
    });
    const confusion = await confusionMatrix(torch.prediction, test.masks, test.classNames.length);
    torch.prediction.dispose();
    const metrics = metricsFromConfusion(confusion, test.classNames);
    console.log(
      `${name}, seed ${seed}, PyTorch ${torch.version} on ${torch.threads} thread(s): ` +
        `${torch.msPerIter.toFixed(1)} ms per iteration, ${formatMetricsLine(metrics)}`,
    );
    result.pytorch = {
      ms_per_iter: torch.msPerIter,
      train_s: torch.trainSeconds,
      test_miou: metrics.miou,
      pixel_acc: metrics.pixelAccuracy,
      threads: torch.threads,
      version: torch.version,
    };
  }
  return result;
}

if (import.meta.main) await runMain(async () => void await run(Deno.args));
