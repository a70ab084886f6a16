/**
 * The benchmark: trains each named network with the default protocol for N
 * iterations, evaluates it on the test set, prints a table beside PyTorch's
 * figures from SPEC.md, and writes the results as JSON.
 *
 * ```
 * deno task bench --models bin,semaseg --iters 500 --data ../shared/imori --backend wasm --json bench.json
 * ```
 *
 * `ms_per_iter` leaves out the first 5 (warm-up) iterations.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../lib/backend.ts";
import { resolveDataDir } from "../lib/data_dir.ts";
import { loadDataset } from "../lib/dataset.ts";
import { runMain, UserError } from "../lib/errors.ts";
import { evaluateModel, formatMetricsLine } from "../lib/evaluate.ts";
import { type FlagDefs, parseFlags, TRAIN_FLAGS } from "../lib/flags.ts";
import { buildModel, MODEL_NAMES, type ModelName } from "../lib/models.ts";
import { dirname } from "../lib/path.ts";
import { trainModel } from "../lib/train.ts";

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
  seed: TRAIN_FLAGS.seed,
  size: { type: "int", default: 64, min: 8, max: 1024, help: "Model input size in pixels" },
  data: {
    type: "string",
    help: "Dataset folder in the Imori layout; default data/imori, else the built-in synthetic set",
  },
  backend: TRAIN_FLAGS.backend,
  json: { type: "string", help: "Write the results to this JSON file" },
} as const satisfies FlagDefs;

/** One network's result, as written in the JSON file. */
export interface BenchResult {
  /** The network. */
  model: string;
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
}

/** The JSON file's content. */
export interface BenchReport {
  /** The tfjs backend that ran, e.g. `wasm`. */
  backend: string;
  /** What `setupBackend` said of it, e.g. `wasm+openblas (OpenBLAS on 2 threads)`. */
  backend_detail: string;
  /** One entry per network. */
  results: BenchResult[];
}

/**
 * Formats the results as a table beside PyTorch's figures.
 *
 * @param results The results.
 * @returns The table text.
 *
 * @example
 * ```ts
 * import { formatTable } from "./bench.ts";
 * import { assert } from "../lib/assert.ts";
 * const table = formatTable([{ model: "bin", iters: 500, batch: 4, size: 64, ms_per_iter: 76,
 *   train_s: 38, test_miou: 0.7, pixel_acc: 0.9 }]);
 * assert(table.includes("2.00x"));
 * ```
 */
export function formatTable(results: BenchResult[]): string {
  const header = [
    "model",
    "iters",
    "ms/iter",
    "train s",
    "test mIoU",
    "pixel acc",
    "PyTorch ms/iter",
    "ratio",
    "PyTorch mIoU",
  ];
  const rows = results.map((result) => {
    const reference = PYTORCH[result.model as ModelName];
    return [
      result.model,
      String(result.iters),
      result.ms_per_iter.toFixed(1),
      result.train_s.toFixed(1),
      result.test_miou.toFixed(3),
      result.pixel_acc.toFixed(3),
      reference ? String(reference.msPerIter) : "-",
      reference ? `${(result.ms_per_iter / reference.msPerIter).toFixed(2)}x` : "-",
      reference ? reference.miou.toFixed(2) : "-",
    ];
  });
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => row[column]!.length))
  );
  const line = (row: string[]) =>
    row.map((cell, column) =>
      column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!)
    )
      .join("  ");
  return [line(header), ...rows.map(line)].join("\n");
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
  }
  const detail = await setupBackend(flags.backend as Parameters<typeof setupBackend>[0]);
  const dataDir = await resolveDataDir(flags.data);
  const report: BenchReport = { backend: tf.getBackend(), backend_detail: detail, results: [] };
  for (const name of names as ModelName[]) {
    const mode = name === "bin" ? "binary" : "classes";
    const train = await loadDataset(dataDir, {
      split: "train",
      size: flags.size,
      mode,
      flips: true,
    });
    const test = await loadDataset(dataDir, { split: "test", size: flags.size, mode });
    const model = buildModel(name, { size: flags.size, seed: flags.seed });
    try {
      console.log(`${name}: training ${flags.iters} iterations`);
      const trained = await trainModel(model, train, {
        iters: flags.iters,
        batchSize: flags.batchSize,
        lr: flags.lr,
        seed: flags.seed,
        progress: { every: 100 },
      });
      trained.optimizer.dispose();
      const evaluation = await evaluateModel(model, test.images, test.masks, {
        classNames: test.classNames,
      });
      tf.dispose([evaluation.probabilities, evaluation.classMap, evaluation.truth]);
      console.log(
        `${name}: ${trained.msPerIter.toFixed(1)} ms per iteration, ` +
          formatMetricsLine(evaluation.metrics),
      );
      report.results.push({
        model: name,
        iters: flags.iters,
        batch: flags.batchSize,
        size: flags.size,
        ms_per_iter: trained.msPerIter,
        train_s: trained.seconds,
        test_miou: evaluation.metrics.miou,
        pixel_acc: evaluation.metrics.pixelAccuracy,
      });
    } finally {
      model.dispose();
      tf.dispose([train.images, train.masks, test.images, test.masks]);
    }
  }
  console.log(`\nbackend ${detail}, data ${dataDir}, ${flags.size}x${flags.size}\n`);
  console.log(formatTable(report.results));
  if (flags.json) {
    await Deno.mkdir(dirname(flags.json), { recursive: true });
    await Deno.writeTextFile(flags.json, JSON.stringify(report, null, 2) + "\n");
    console.log(`json: ${flags.json}`);
  }
  return report;
}

if (import.meta.main) await runMain(async () => void await run(Deno.args));
