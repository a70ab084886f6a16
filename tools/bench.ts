/**
 * The benchmark: trains each named network with its exercise's protocol
 * (size, minibatch, iterations, learning rate; flags override) for each seed,
 * evaluates it on the test set, and prints a markdown table beside PyTorch:
 * PyTorch's figures measured earlier for the tutorial's answers, or, with `--pytorch`, PyTorch itself
 * trained in the same run on the same data and minibatch order
 * (tools/pytorch_reference.py; with `--share-weights` from the same initial
 * weights) and scored by the same mIoU code. The results are written as JSON.
 *
 * ```
 * deno task bench --models nearest,concat --seeds 0,1,2 --pytorch --data ../shared/imori --json bench.json
 * ```
 *
 * Timing that a noisy machine cannot fool: after 5 warm-up iterations, the
 * iterations are cut into windows of `--window` iterations; the table gives
 * the median of the windows' ms per iteration and their spread (min-max),
 * for ours and PyTorch's, and the ratio of the medians. Peak memory is each
 * process's peak resident set (VmHWM): ours reset before each network,
 * PyTorch's process is fresh for each.
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
import {
  buildModel,
  lessonsOf,
  MODEL_NAMES,
  type ModelName,
  NETWORKS,
  outputSize,
  type Protocol,
} from "./networks.ts";
import { dirname } from "../lib/path.ts";
import { trainModel } from "../lib/train.ts";
import {
  BATCH_NORM_STATS,
  type BatchNormStats,
  recomputeBatchNormStats,
} from "../lib/batch_norm_stats.ts";
import { findPyTorch, pytorchLayers, runPyTorch } from "./pytorch.ts";
import {
  floorMs,
  type Machine,
  measurePeakGflops,
  STATED_BANDWIDTH_GBS,
  stepWork,
} from "./floor.ts";

/** PyTorch 1.13 on this project's kind of machine, measured earlier for the tutorial's answers (500 iterations, batch 4): ms per iteration, test mIoU. */
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
  iters: {
    type: "int",
    min: 1,
    help: "Training iterations per network; default each exercise's protocol",
  },
  batchSize: { type: "int", min: 1, help: "Minibatch size; default each exercise's protocol" },
  lr: { type: "number", min: 0, help: "Learning rate; default each exercise's protocol" },
  window: {
    type: "int",
    default: 20,
    min: 1,
    help: "Iterations per timing window; the table gives the median and spread over windows",
  },
  seeds: {
    type: "string",
    default: "0",
    help: "Comma-separated seeds; each network is trained once per seed, with a mean row",
  },
  size: {
    type: "int",
    min: 8,
    max: 1024,
    help: "Model input size in pixels; default each exercise's protocol",
  },
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
  shareWeights: {
    type: "boolean",
    default: false,
    help: "With --pytorch, PyTorch starts from the project's initial weights instead of its own",
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
  peakGflops: {
    type: "number",
    default: 0,
    min: 0,
    help: "Peak GFLOP/s for each step's floor; 0: measured (the best rate of a large " +
      "convolution on the backend in use, run for 2 s)",
  },
  bandwidthGbs: {
    type: "number",
    default: STATED_BANDWIDTH_GBS,
    min: 0.001,
    help: "Memory bandwidth, GB/s, for each step's floor",
  },
  json: { type: "string", help: "Write the results to this JSON file" },
} as const satisfies FlagDefs;

/** Milliseconds per iteration over timing windows. */
export interface WindowStats {
  /** Iterations per window. */
  window: number;
  /** Mean ms per iteration of each window. */
  windows: number[];
  /** Median over the windows (0 when there is none). */
  median: number;
  /** Smallest window. */
  min: number;
  /** Largest window. */
  max: number;
  /** First and third quartile over the windows. */
  q1: number;
  q3: number;
}

/** PyTorch's result for one network and seed, measured in the same run. */
export interface PyTorchResult {
  /** Mean ms per iteration, the first 5 left out. */
  ms_per_iter: number;
  /** ms per iteration over windows. */
  timing: WindowStats;
  /** Peak resident set of the PyTorch process, MiB. */
  peak_rss_mb: number;
  /** Whether it started from the project's initial weights. */
  shared_weights: boolean;
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
  /**
   * What ours ran on, from {@linkcode backendConfiguration}, e.g.
   * `wasm (SEGMENT_NO_DNNL=1 SEGMENT_NO_BLAS=1)`; the table's `ours on` column.
   */
  backend?: string;
  /** Seed of the weights and minibatch order. */
  seed: number;
  /** Training iterations. */
  iters: number;
  /** Minibatch size. */
  batch: number;
  /** Input size. */
  size: number;
  /** Learning rate. */
  lr: number;
  /** Mean ms per iteration, the first 5 left out. */
  ms_per_iter: number;
  /** The step's floor, ms: its work on the report's machine (tools/floor.ts). */
  floor_ms?: number;
  /** ms per iteration over windows. */
  timing: WindowStats;
  /** Peak resident set of this process while the network trained and was tested, MiB. */
  peak_rss_mb: number;
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
  /** The machine the floors assume: peak GFLOP/s (measured or stated) and bandwidth GB/s. */
  machine?: Machine & { peak_measured: boolean };
  /** Batch-norm statistics of the test: `recompute` or `moving`. */
  bn_stats: string;
  /** Iterations per timing window. */
  window: number;
  /** The machine's 1-minute load average at the start and the end (`/proc/loadavg`; -1 unknown). */
  load: { start: number; end: number; cores: number };
  /** One entry per network and seed. */
  results: BenchResult[];
}

function mean(values: number[]): number {
  return values.reduce((sum, value) => sum + value, 0) / values.length;
}

/** Iterations left out of the timing: the first ones compile kernels. */
export const WARMUP = 5;

/** The value at fraction `q` of sorted values, interpolated linearly. */
function quantile(sorted: number[], q: number): number {
  if (!sorted.length) return 0;
  const position = (sorted.length - 1) * q;
  const below = Math.floor(position);
  const above = Math.min(below + 1, sorted.length - 1);
  return sorted[below]! + (sorted[above]! - sorted[below]!) * (position - below);
}

/**
 * Cuts per-iteration times into windows after the warm-up and summarises
 * the windows' ms per iteration: median, min, max and quartiles. Iterations
 * after the last full window are left out; a run shorter than one window
 * after the warm-up gives one window of what is left (none when nothing is).
 *
 * @param iterMs Milliseconds of each iteration, in order.
 * @param window Iterations per window.
 * @param warmup Iterations left out at the start.
 * @returns The windows and their summary.
 *
 * @example
 * ```ts
 * import { windowStats } from "./bench.ts";
 * import { assertEquals } from "../lib/assert.ts";
 * const stats = windowStats([99, 99, 10, 10, 30, 30, 20, 20, 5], 2, 2);
 * assertEquals(stats.windows, [10, 30, 20]);
 * assertEquals([stats.median, stats.min, stats.max], [20, 10, 30]);
 * ```
 */
export function windowStats(iterMs: number[], window: number, warmup = WARMUP): WindowStats {
  const timed = iterMs.slice(warmup);
  const count = Math.max(Math.floor(timed.length / window), timed.length ? 1 : 0);
  const size = Math.min(window, timed.length);
  const windows = Array.from(
    { length: count },
    (_, index) => mean(timed.slice(index * size, (index + 1) * size)),
  );
  const sorted = [...windows].sort((a, b) => a - b);
  return {
    window: size,
    windows,
    median: quantile(sorted, 0.5),
    min: sorted[0] ?? 0,
    max: sorted.at(-1) ?? 0,
    q1: quantile(sorted, 0.25),
    q3: quantile(sorted, 0.75),
  };
}

/**
 * Reads or writes a file of this process under `/proc`: directly when Deno
 * may (it asks for --allow-all there), else through `cat` or `sh` (which
 * --allow-run permits). Returns `undefined` when neither works.
 */
function procFile(name: string, write?: string): string | undefined {
  const path = `/proc/${Deno.pid}/${name}`;
  try {
    if (write === undefined) return Deno.readTextFileSync(path);
    Deno.writeTextFileSync(path, write);
    return "";
  } catch {
    return write === undefined ? catFile(path) : shell(`echo ${write} > ${path}`);
  }
}

/** A file's text through `cat`, `undefined` when that fails. */
function catFile(path: string): string | undefined {
  return command("cat", [path]);
}

/** Runs a shell line, `undefined` when it fails. */
function shell(line: string): string | undefined {
  return command("sh", ["-c", line]);
}

function command(name: string, args: string[]): string | undefined {
  try {
    const output = new Deno.Command(name, { args, stderr: "null" }).outputSync();
    return output.success ? new TextDecoder().decode(output.stdout) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The peak resident set of this process in MiB: VmHWM of
 * `/proc/<pid>/status`, else (no /proc) the current resident set.
 *
 * @returns Peak resident set, MiB.
 *
 * @example
 * ```ts
 * import { peakRssMb } from "./bench.ts";
 * import { assert } from "../lib/assert.ts";
 * assert(peakRssMb() >= Deno.memoryUsage().rss / 2 ** 20 * 0.5);
 * ```
 */
export function peakRssMb(): number {
  const kb = procFile("status")?.match(/^VmHWM:\s+(\d+)\s+kB/m)?.[1];
  return kb ? Number(kb) / 1024 : Deno.memoryUsage().rss / 2 ** 20;
}

/**
 * Resets the peak resident set to the current one (Linux: `5` into
 * `/proc/<pid>/clear_refs`), so that the next {@linkcode peakRssMb} is the
 * peak of what follows.
 *
 * @returns Whether it could be reset (else the peak is the process's so far).
 */
export function resetPeakRss(): boolean {
  return procFile("clear_refs", "5") !== undefined;
}

/**
 * The machine's 1-minute load average, from `/proc/loadavg`.
 *
 * @returns The load average, or -1 where it cannot be read.
 *
 * @example
 * ```ts
 * import { loadAverage } from "./bench.ts";
 * import { assert } from "../lib/assert.ts";
 * assert(loadAverage() >= -1);
 * ```
 */
export function loadAverage(): number {
  try {
    return Deno.loadavg()[0] ?? -1;
  } catch {
    const text = catFile("/proc/loadavg");
    return text ? Number(text.split(" ")[0]) : -1;
  }
}

/** The environment variables that choose what the engine runs on. */
const ENGINE_SWITCHES = [
  "SEGMENT_NO_DNNL",
  "SEGMENT_NO_BLAS",
  "SEGMENT_NO_SIMD",
  "SEGMENT_THREADS",
  "SEGMENT_BLAS_THREADS",
  "OMP_NUM_THREADS",
];

/**
 * The configuration ours ran on, for the table: the backend as
 * `setupBackend` named it, and the engine's switches set in the environment
 * (`SEGMENT_NO_DNNL=1 SEGMENT_NO_BLAS=1` gives the pure wasm path, on the
 * engine's SIMD kernels unless `SEGMENT_NO_SIMD=1`).
 *
 * @param backend The backend's label, e.g. `wasm` or `wasm+onednn`.
 * @param env Reads an environment variable (default `Deno.env.get`, `undefined` without permission).
 * @returns E.g. `wasm (SEGMENT_NO_DNNL=1 SEGMENT_NO_BLAS=1)`, or the label alone.
 *
 * @example
 * ```ts
 * import { backendConfiguration } from "./bench.ts";
 * import { assertEquals } from "../lib/assert.ts";
 * const env = { SEGMENT_NO_DNNL: "1", SEGMENT_NO_BLAS: "1" } as Record<string, string>;
 * assertEquals(backendConfiguration("wasm", (name) => env[name]), "wasm (SEGMENT_NO_DNNL=1 SEGMENT_NO_BLAS=1)");
 * assertEquals(backendConfiguration("wasm+onednn", () => undefined), "wasm+onednn");
 * ```
 */
export function backendConfiguration(
  backend: string,
  env: (name: string) => string | undefined = readEnv,
): string {
  const set = ENGINE_SWITCHES.flatMap((name) => {
    const value = env(name);
    return value === undefined || value === "" ? [] : [`${name}=${value}`];
  });
  return set.length === 0 ? backend : `${backend} (${set.join(" ")})`;
}

function readEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/** `median (min-max)` of a timing, one decimal. */
function timingCell(timing: WindowStats): string {
  return `${timing.median.toFixed(1)} (${timing.min.toFixed(1)}-${timing.max.toFixed(1)})`;
}

/**
 * Formats the results as a markdown table beside PyTorch, ready for
 * docs/results.md: ms per iteration as the median over timing windows with
 * the spread (min-max) for ours and PyTorch's, the ratio of the medians, the
 * peak resident set of each process, and the test mIoU of each. PyTorch's
 * figures are those measured in the same run where there are some (source
 * `this run`, `shared init` when it started from our weights), else
 * the earlier measurement's (no spread or memory). With floors (tools/floor.ts), the
 * step's floor and ours over it. A network run with several seeds gets a
 * `mean` row after its seeds (means of the medians).
 *
 * @param results The results.
 * @returns The table text, a header, a rule and one line per row.
 *
 * @example
 * ```ts
 * import { formatTable, windowStats } from "./bench.ts";
 * import { assert } from "../lib/assert.ts";
 * const table = formatTable([{ model: "bin", seed: 0, iters: 500, batch: 4, size: 64, lr: 0.01,
 *   ms_per_iter: 76, timing: windowStats([76, 76], 1, 0), peak_rss_mb: 500, train_s: 38,
 *   test_miou: 0.7, pixel_acc: 0.9 }]);
 * assert(table.includes("| 2.00x |"));
 * ```
 */
export function formatTable(results: BenchResult[]): string {
  const configured = results.some((result) => result.backend !== undefined);
  const floored = results.some((result) => result.floor_ms !== undefined);
  const header = [
    "model",
    ...(configured ? ["ours on"] : []),
    "seed",
    "size",
    "batch",
    "iters",
    "ms/iter median (min-max)",
    "PyTorch ms/iter median (min-max)",
    "ratio",
    ...(floored ? ["floor ms", "ours / floor"] : []),
    "peak RSS MiB",
    "PyTorch peak RSS MiB",
    "test mIoU",
    "PyTorch mIoU",
    "PyTorch from",
  ];
  const row = (label: string, seed: string, group: BenchResult[]) => {
    const first = group[0]!;
    const ms = mean(group.map((result) => result.timing.median));
    const measured = group.every((result) => result.pytorch)
      ? group.map((result) => result.pytorch!)
      : undefined;
    const spec = PYTORCH[label as ModelName];
    const referenceMs = measured ? mean(measured.map((r) => r.timing.median)) : spec?.msPerIter;
    const referenceMiou = measured ? mean(measured.map((r) => r.test_miou)) : spec?.miou;
    const single = group.length === 1;
    return [
      label,
      ...(configured ? [first.backend ?? "-"] : []),
      seed,
      String(first.size),
      String(first.batch),
      String(first.iters),
      single ? timingCell(first.timing) : ms.toFixed(1),
      measured
        ? (single ? timingCell(measured[0]!.timing) : referenceMs!.toFixed(1))
        : referenceMs !== undefined
        ? referenceMs.toFixed(0)
        : "-",
      referenceMs ? `${(ms / referenceMs).toFixed(2)}x` : "-",
      ...(floored
        ? first.floor_ms
          ? [first.floor_ms.toFixed(1), `${(ms / first.floor_ms).toFixed(2)}x`]
          : ["-", "-"]
        : []),
      Math.max(...group.map((result) => result.peak_rss_mb)).toFixed(0),
      measured ? Math.max(...measured.map((r) => r.peak_rss_mb)).toFixed(0) : "-",
      mean(group.map((result) => result.test_miou)).toFixed(3),
      referenceMiou !== undefined ? referenceMiou.toFixed(measured ? 3 : 2) : "-",
      measured
        ? (measured.every((r) => r.shared_weights) ? "this run, shared init" : "this run")
        : spec
        ? "measured earlier"
        : "-",
    ];
  };
  const rows: string[][] = [];
  const models = [...new Set(results.map((result) => result.model))];
  for (const model of models) {
    const group = results.filter((result) => result.model === model);
    for (const result of group) rows.push(row(model, String(result.seed), [result]));
    if (group.length > 1) rows.push(row(model, "mean", group));
  }
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  const rule = `|${header.map((_, column) => (column === 0 ? "---" : "---:")).join("|")}|`;
  return [line(header), rule, ...rows.map(line)].join("\n");
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
  }
  const seeds = parseSeeds(flags.seeds);
  const python = flags.pytorch ? await findPyTorch(flags.python) : undefined; // before training
  if (python) console.log(`pytorch: ${python.version} via ${python.python}`);
  const detail = await setupBackend(flags.backend as Parameters<typeof setupBackend>[0]);
  const dataDir = await resolveDataDir(flags.data);
  const machine: Machine = {
    gflops: flags.peakGflops || await measurePeakGflops(),
    gbs: flags.bandwidthGbs,
  };
  console.log(
    `floor: ${machine.gflops.toFixed(0)} GFLOP/s ` +
      (flags.peakGflops ? "(--peak-gflops)" : "(measured: a large convolution on this backend)") +
      `, ${machine.gbs} GB/s (${
        flags.bandwidthGbs === STATED_BANDWIDTH_GBS ? "stated" : "--bandwidth-gbs"
      })`,
  );
  const report: BenchReport = {
    backend: tf.getBackend(),
    backend_detail: detail,
    machine: { ...machine, peak_measured: !flags.peakGflops },
    bn_stats: flags.bnStats,
    window: flags.window,
    load: { start: loadAverage(), end: -1, cores: navigator.hardwareConcurrency },
    results: [],
  };
  for (const name of names as ModelName[]) {
    const protocol = NETWORKS[name].protocol;
    const settings: Protocol = {
      size: flags.size ?? protocol.size,
      batchSize: flags.batchSize ?? protocol.batchSize,
      iters: flags.iters ?? protocol.iters,
      lr: flags.lr ?? protocol.lr,
    };
    outputSize(name, settings.size);
    const { mode } = lessonsOf(name);
    const train = await loadDataset(dataDir, {
      split: "train",
      size: settings.size,
      mode,
      flips: true,
    });
    const test = await loadDataset(dataDir, { split: "test", size: settings.size, mode });
    try {
      for (const seed of seeds) {
        report.results.push(
          await benchOne(
            name,
            seed,
            train,
            test,
            { ...flags, ...settings },
            python?.python,
            backendConfiguration(detail),
            machine,
          ),
        );
      }
    } finally {
      tf.dispose([train.images, train.masks, test.images, test.masks]);
    }
  }
  report.load.end = loadAverage();
  const { start, end, cores } = report.load;
  console.log(
    `\nbackend ${detail}, data ${dataDir}, timing windows of ${flags.window} iterations after ` +
      `${WARMUP} warm-up, batch-norm statistics: ${flags.bnStats}, load average ` +
      `${start.toFixed(1)} at the start and ${end.toFixed(1)} at the end on ${cores} cores` +
      (Math.max(start, end) > cores ? " (other processes competed: compare ratios, not ms)" : "") +
      ". The table gives the median (min-max) of the windows' ms per iteration, and the ratio " +
      "ours / PyTorch; each run's own line above gives the mean over all its timed iterations.\n",
  );
  console.log(formatTable(report.results));
  if (flags.json) {
    await Deno.mkdir(dirname(flags.json), { recursive: true });
    await Deno.writeTextFile(flags.json, JSON.stringify(report, null, 2) + "\n");
    console.log(`json: ${flags.json}`);
  }
  return report;
}

type Flags = FlagValues<typeof FLAGS> & Protocol;
type Split = Awaited<ReturnType<typeof loadDataset>>;

async function benchOne(
  name: ModelName,
  seed: number,
  train: Split,
  test: Split,
  flags: Flags,
  python: string | undefined,
  configuration: string,
  machine: Machine,
): Promise<BenchResult> {
  const model = buildModel(name, { size: flags.size, seed });
  const floor = floorMs(stepWork(model, flags.batchSize), machine);
  const initial = flags.pytorch && flags.shareWeights ? pytorchLayers(model) : undefined;
  let result: BenchResult;
  try {
    console.log(
      `${name}, seed ${seed}: training ${flags.iters} iterations, batch ${flags.batchSize}, ` +
        `size ${flags.size}, lr ${flags.lr}`,
    );
    resetPeakRss();
    const iterMs: number[] = [];
    let last = performance.now();
    const trained = await trainModel(model, train, {
      loss: lessonsOf(name).loss,
      iters: flags.iters,
      batchSize: flags.batchSize,
      lr: flags.lr,
      seed,
      warmup: WARMUP,
      progress: { every: 100 },
      onIteration: () => {
        const now = performance.now();
        iterMs.push(now - last);
        last = now;
      },
    });
    trained.optimizer.dispose();
    if (flags.bnStats === "recompute") {
      recomputeBatchNormStats(model, train.images, flags.batchSize);
    }
    const evaluation = await evaluateModel(model, test.images, test.masks, {
      classify: lessonsOf(name).classify,
      classNames: test.classNames,
    });
    tf.dispose([evaluation.probabilities, evaluation.classMap, evaluation.truth]);
    console.log(
      `${name}, seed ${seed}: ${trained.msPerIter.toFixed(1)} ms per iteration, ` +
        formatMetricsLine(evaluation.metrics),
    );
    result = {
      model: name,
      backend: configuration,
      seed,
      iters: flags.iters,
      batch: flags.batchSize,
      size: flags.size,
      lr: flags.lr,
      ms_per_iter: trained.msPerIter,
      floor_ms: floor,
      timing: windowStats(iterMs, flags.window),
      peak_rss_mb: peakRssMb(),
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
      initWeights: initial,
    });
    const confusion = await confusionMatrix(torch.prediction!, test.masks, test.classNames.length);
    torch.prediction!.dispose();
    const metrics = metricsFromConfusion(confusion, test.classNames);
    console.log(
      `${name}, seed ${seed}, PyTorch ${torch.version} on ${torch.threads} thread(s): ` +
        `${torch.msPerIter.toFixed(1)} ms per iteration, ${formatMetricsLine(metrics)}`,
    );
    result.pytorch = {
      ms_per_iter: torch.msPerIter,
      timing: windowStats(torch.iterMs, flags.window),
      peak_rss_mb: torch.peakRssMb,
      shared_weights: Boolean(initial),
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
