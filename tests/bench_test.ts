import { assert, assertEquals, assertRejects } from "../lib/assert.ts";
import { UserError } from "../lib/errors.ts";
import { join } from "../lib/path.ts";
import { writeSyntheticDataset } from "../lib/synthetic_files.ts";
import {
  type BenchReport,
  type BenchResult,
  formatTable,
  peakRssMb,
  resetPeakRss,
  run,
  windowStats,
} from "../tools/bench.ts";
import { floorMs, stepWork } from "../tools/floor.ts";
import { buildModel, type ModelName, NETWORKS } from "../tools/networks.ts";
import * as tf from "@tensorflow/tfjs";

Deno.test("bench trains and tests each model and writes the JSON report", async () => {
  const root = await Deno.makeTempDir({ prefix: "bench_test_" });
  await writeSyntheticDataset(join(root, "data"), { trainPerClass: 1, testPerClass: 1 });
  const json = join(root, "out", "bench.json");
  const report = await run([
    "--models",
    "bin,nearest",
    "--iters",
    "9",
    "--size",
    "16",
    "--window",
    "2",
    "--data",
    join(root, "data"),
    "--backend",
    "wasm",
    "--json",
    json,
  ]);
  const written = JSON.parse(await Deno.readTextFile(json)) as BenchReport;
  assertEquals(written, report);
  assertEquals(written.backend, "wasm");
  assertEquals(written.window, 2);
  assert(written.load.start >= 0 && written.load.end >= 0, JSON.stringify(written.load));
  assertEquals(written.load.cores, navigator.hardwareConcurrency);
  assertEquals(written.results.map((result) => result.model), ["bin", "nearest"]);
  for (const result of written.results) {
    assertEquals(result.seed, 0);
    assertEquals(result.pytorch, undefined);
    assertEquals([result.iters, result.batch, result.size, result.lr], [9, 4, 16, 0.01]);
    assertEquals(result.timing.window, 2);
    assertEquals(result.timing.windows.length, 2); // 9 - 5 warm-up = 2 windows of 2
    assert(result.timing.min <= result.timing.median && result.timing.median <= result.timing.max);
    assert(result.timing.median > 0);
    assert(result.peak_rss_mb > 10, `peak RSS ${result.peak_rss_mb} MiB`);
    assert(result.train_s > 0);
    assert(result.test_miou >= 0 && result.test_miou <= 1);
    assert(result.pixel_acc >= 0 && result.pixel_acc <= 1);
  }
  await Deno.remove(root, { recursive: true });
});

Deno.test("bench refuses an unknown model", async () => {
  await assertRejects(
    () => run(["--models", "bin,vgg"]),
    (error: Error) => error instanceof UserError && error.message.includes('Unknown model "vgg"'),
  );
});

Deno.test("bench refuses a bad --seeds value with a one-line error", async () => {
  await assertRejects(
    () => run(["--models", "bin", "--seeds", "0,x"]),
    (error: Error) => error instanceof UserError && error.message.includes("--seeds: 0,x"),
  );
});

Deno.test("bench trains each network with its exercise's protocol unless a flag overrides it", async () => {
  const root = await Deno.makeTempDir({ prefix: "bench_test_" });
  await writeSyntheticDataset(join(root, "data"), { trainPerClass: 1, testPerClass: 1 });
  const report = await run([
    "--models",
    "segnet",
    "--iters",
    "1",
    "--size",
    "32",
    "--data",
    join(root, "data"),
    "--backend",
    "wasm",
  ]);
  const [result] = report.results;
  assertEquals([result!.batch, result!.lr, result!.iters, result!.size], [16, 0.01, 1, 32]);
  assertEquals(result!.timing.windows, []); // one iteration: all warm-up
  await Deno.remove(root, { recursive: true });
});

Deno.test("windowStats() cuts the iterations after the warm-up into windows", () => {
  const stats = windowStats([500, 500, 500, 10, 12, 30, 30, 20, 20, 11, 13, 99], 2, 3);
  assertEquals(stats.windows, [11, 30, 20, 12]); // the last, partial window is left out
  assertEquals([stats.median, stats.min, stats.max], [16, 11, 30]);
  assertEquals([stats.q1, stats.q3], [11.75, 22.5]);
  const short = windowStats([500, 8, 10], 20, 1);
  assertEquals([short.window, short.windows, short.median], [2, [9], 9]);
  assertEquals(windowStats([500], 20, 1).windows, []);
});

Deno.test("peakRssMb() reads this process's peak resident set, and resetPeakRss() resets it", () => {
  assert(peakRssMb() >= Deno.memoryUsage().rss / 2 ** 20 * 0.99);
  assert(resetPeakRss(), "the peak can be reset on Linux");
  const before = peakRssMb();
  const big = new Float64Array(64 * 2 ** 20 / 8).fill(1); // 64 MiB, every page touched
  const grown = peakRssMb();
  assert(grown >= before + 48, `peak ${before} -> ${grown} MiB after touching 64 MiB`);
  assertEquals(big[big.length - 1], 1);
});

const timing = (median: number, min: number, max: number) => ({
  window: 20,
  windows: [min, median, max],
  median,
  min,
  max,
  q1: median,
  q3: median,
});

const CONCAT: BenchResult = {
  model: "concat",
  seed: 0,
  iters: 500,
  batch: 4,
  size: 64,
  lr: 0.01,
  ms_per_iter: 150,
  timing: timing(150, 140, 170),
  peak_rss_mb: 812.4,
  train_s: 75,
  test_miou: 0.7,
  pixel_acc: 0.9,
};

/** The cells of a markdown table's rows after the header and rule. */
function cells(table: string): string[][] {
  const lines = table.split("\n");
  assertEquals(lines[1]!.replace(/[|:\-]/g, ""), "", "the second line is the markdown rule");
  return lines.slice(2).map((line) => {
    assert(line.startsWith("| ") && line.endsWith(" |"), line);
    return line.slice(2, -2).split(" | ");
  });
}

Deno.test("formatTable() writes markdown with the earlier PyTorch figures and the ratio", () => {
  const table = formatTable([CONCAT]);
  const header = table.split("\n")[0]!;
  assert(header.includes("| ms/iter median (min-max) |"), header);
  assertEquals(cells(table), [[
    "concat",
    "0",
    "64",
    "4",
    "500",
    "150.0 (140.0-170.0)",
    "75",
    "2.00x",
    "812",
    "-",
    "0.700",
    "0.68",
    "measured earlier",
  ]]);
});

Deno.test("formatTable() uses PyTorch measured in the run, its spread and memory, and a mean row", () => {
  const pytorch = (median: number, miou: number, shared = false) => ({
    ms_per_iter: median + 1,
    timing: timing(median, median - 5, median + 5),
    peak_rss_mb: 400,
    shared_weights: shared,
    train_s: 1,
    test_miou: miou,
    pixel_acc: 0.8,
    threads: 1,
    version: "1.13",
  });
  const table = formatTable([
    { ...CONCAT, pytorch: pytorch(50, 0.6, true) },
    {
      ...CONCAT,
      seed: 1,
      timing: timing(50, 45, 60),
      peak_rss_mb: 900,
      test_miou: 0.5,
      pytorch: pytorch(100, 0.4, true),
    },
  ]);
  const rows = cells(table);
  assertEquals(rows.map((row) => row[1]), ["0", "1", "mean"]);
  assertEquals(rows[0]!.slice(5), [
    "150.0 (140.0-170.0)",
    "50.0 (45.0-55.0)",
    "3.00x",
    "812",
    "400",
    "0.700",
    "0.600",
    "this run, shared init",
  ]);
  assertEquals(rows[2]!.slice(5), [
    "100.0",
    "75.0",
    "1.33x",
    "900",
    "400",
    "0.600",
    "0.500",
    "this run, shared init",
  ]);
});

Deno.test("bench --pytorch without PyTorch stops before training, naming the fix", async () => {
  await assertRejects(
    () => run(["--models", "bin", "--pytorch", "--python", "/nonexistent/python3"]),
    (error: Error) =>
      error instanceof UserError && error.message.includes("apt-get install python3-torch"),
  );
});

Deno.test("formatTable() says what ours ran on when the results say it", () => {
  const configuration = "wasm (SEGMENT_NO_DNNL=1 SEGMENT_NO_BLAS=1)";
  const table = formatTable([{ ...CONCAT, backend: configuration }]);
  assert(table.split("\n")[0]!.startsWith("| model | ours on | seed |"), table);
  assertEquals(cells(table)[0]!.slice(0, 3), ["concat", configuration, "0"]);
});

Deno.test("stepWork() gives the floors of an independent hand count of each network's step", async () => {
  await tf.setBackend("cpu");
  // A count of every convolution's three directions at 420 GFLOP/s and the other layers' and
  // the optimizer's traffic at 40 GB/s, made by hand from the networks' shapes (issue 23).
  const handCount: Partial<Record<ModelName, number>> = {
    bin: 15.1,
    semaseg: 15.1,
    nearest: 11.2,
    transposeconv: 11.9,
    concat: 13.7,
    unetlike: 15.8,
    segnet: 536,
  };
  for (const [name, expected] of Object.entries(handCount) as [ModelName, number][]) {
    const { size, batchSize } = NETWORKS[name].protocol;
    const model = buildModel(name, { size });
    const floor = floorMs(stepWork(model, batchSize), { gflops: 420, gbs: 40 });
    model.dispose();
    assert(
      Math.abs(floor / expected - 1) < 0.03,
      `${name}: floor ${floor} ms, hand count ${expected}`,
    );
  }
});
