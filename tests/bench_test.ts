import { assert, assertEquals, assertRejects } from "../lib/assert.ts";
import { UserError } from "../lib/errors.ts";
import { join } from "../lib/path.ts";
import { writeSyntheticDataset } from "../lib/synthetic_newts.ts";
import { type BenchReport, formatTable, run } from "../tools/bench.ts";

Deno.test("bench trains and tests each model and writes the JSON report", async () => {
  const root = await Deno.makeTempDir({ prefix: "bench_test_" });
  await writeSyntheticDataset(join(root, "data"), { trainPerClass: 1, testPerClass: 1 });
  const json = join(root, "out", "bench.json");
  const report = await run([
    "--models",
    "bin,nearest",
    "--iters",
    "2",
    "--size",
    "16",
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
  assertEquals(written.results.map((result) => result.model), ["bin", "nearest"]);
  for (const result of written.results) {
    assertEquals(result.seed, 0);
    assertEquals(result.pytorch, undefined);
    assertEquals([result.iters, result.batch, result.size], [2, 4, 16]);
    assertEquals(result.ms_per_iter, 0); // all iterations were warm-up
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

const CONCAT = {
  model: "concat",
  seed: 0,
  iters: 500,
  batch: 4,
  size: 64,
  ms_per_iter: 150,
  train_s: 75,
  test_miou: 0.7,
  pixel_acc: 0.9,
};

Deno.test("formatTable() puts SPEC.md's PyTorch figures and the ratio beside a result", () => {
  const table = formatTable([CONCAT]);
  const row = table.split("\n")[1]!.split(/\s+/);
  assertEquals(row, [
    "concat",
    "0",
    "500",
    "150.0",
    "0.700",
    "0.900",
    "75",
    "2.00x",
    "0.68",
    "SPEC.md",
  ]);
});

Deno.test("formatTable() uses PyTorch measured in the run and adds a mean row over seeds", () => {
  const pytorch = (ms: number, miou: number) => ({
    ms_per_iter: ms,
    train_s: 1,
    test_miou: miou,
    pixel_acc: 0.8,
    threads: 1,
    version: "1.13",
  });
  const table = formatTable([
    { ...CONCAT, pytorch: pytorch(50, 0.6) },
    { ...CONCAT, seed: 1, ms_per_iter: 50, test_miou: 0.5, pytorch: pytorch(100, 0.4) },
  ]);
  const rows = table.split("\n").slice(1).map((line) => line.split(/\s+/));
  assertEquals(rows.map((row) => row[1]), ["0", "1", "mean"]);
  assertEquals(rows[0]!.slice(3), [
    "150.0",
    "0.700",
    "0.900",
    "50.0",
    "3.00x",
    "0.600",
    "this",
    "run",
  ]);
  assertEquals(rows[2]!.slice(3), [
    "100.0",
    "0.600",
    "0.900",
    "75.0",
    "1.33x",
    "0.500",
    "this",
    "run",
  ]);
});

Deno.test("bench --pytorch without PyTorch stops before training, naming the fix", async () => {
  await assertRejects(
    () => run(["--models", "bin", "--pytorch", "--python", "/nonexistent/python3"]),
    (error: Error) =>
      error instanceof UserError && error.message.includes("apt-get install python3-torch"),
  );
});
