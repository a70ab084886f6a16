import * as tf from "@tensorflow/tfjs";
import { assert, assertAlmostEquals, assertEquals, assertRejects } from "../lib/assert.ts";
import { loadCheckpoint } from "../lib/checkpoint.ts";
import { UserError } from "../lib/errors.ts";
import { decodeImage } from "../lib/image_io.ts";
import { renderLineChart } from "../lib/line_chart.ts";
import { join } from "../lib/path.ts";
import { writeSyntheticDataset } from "../lib/synthetic_files.ts";
import { run as binLoss } from "../exercises/bin_loss.ts";
import { run as binTest } from "../exercises/bin_test.ts";
import { run as semasegLoss } from "../exercises/semaseg_loss.ts";
import { run as semasegTest } from "../exercises/semaseg_test.ts";
import { run as nearest } from "../exercises/nearest.ts";
import { run as transposeconv } from "../exercises/transposeconv.ts";
import { run as concat } from "../exercises/concat.ts";
import { run as segnet } from "../exercises/segnet.ts";
import { run as segment } from "../tools/segment.ts";
import { requireImori } from "./imori.ts";

const METRICS_LINE =
  /^test mIoU \d\.\d{3} \((\w+ (\d\.\d{2}|n\/a)(, )?)+\) pixel accuracy \d\.\d{3}$/;

/** A tiny synthetic dataset (4 training, 2 test photos) in a temporary folder. */
async function tinySetup(): Promise<
  { root: string; flags: (name: string) => string[]; testFlags: (name: string) => string[] }
> {
  const root = await Deno.makeTempDir({ prefix: "exercises_test_" });
  await writeSyntheticDataset(join(root, "data"), { trainPerClass: 2, testPerClass: 1 });
  const flags = (name: string) => [
    "--data",
    join(root, "data"),
    "--size",
    "16",
    "--iters",
    "2",
    "--backend",
    "wasm",
    "--out",
    join(root, "answers"),
    "--checkpoint",
    join(root, "checkpoints", name),
  ];
  // A test script takes no training flag: the same without --iters.
  const testFlags = (name: string) =>
    flags(name).filter((_, i, all) => all[i] !== "--iters" && all[i - 1] !== "--iters");
  return { root, flags, testFlags };
}

/** Runs `body` with console.log captured; returns the lines printed. */
async function capture<T>(body: () => Promise<T>): Promise<{ value: T; lines: string[] }> {
  const lines: string[] = [];
  const original = console.log;
  console.log = (...parts: unknown[]) => lines.push(parts.map(String).join(" "));
  try {
    return { value: await body(), lines: lines.flatMap((line) => line.split("\n")) };
  } finally {
    console.log = original;
  }
}

Deno.test("bin_loss and bin_test train, save, reload and test with figures and IoU", async () => {
  const { root, flags, testFlags } = await tinySetup();
  const trained = await capture(() => binLoss(flags("bin")));
  assertEquals(trained.value.trained!.losses.length, 2);
  assert(trained.lines.some((line) => line.startsWith("loss curve: ")));
  assert((await Deno.stat(trained.value.trained!.lossFigure)).isFile);
  // The next step reads the same photos, tests this checkpoint at its size and writes its figures
  // beside this run's: carried over.
  assertEquals(trained.lines.slice(-2), [
    `next: deno task bin_test --data ${join(root, "data")} --checkpoint ${
      join(root, "checkpoints", "bin")
    } --size 16 --out ${join(root, "answers")}`,
    "      (test it on the test photos)",
  ]);

  // The checkpoint predicts what the trained model predicts.
  const loaded = await loadCheckpoint(join(root, "checkpoints", "bin"), { model: "bin", size: 16 });
  const probe = tf.randomUniform([2, 16, 16, 3], 0, 1, "float32", 5);
  const before = trained.value.model!.predict(probe) as tf.Tensor;
  const after = loaded.model.predict(probe) as tf.Tensor;
  assertAlmostEquals(tf.max(tf.abs(tf.sub(before, after))).dataSync()[0]!, 0, 1e-6);
  assertEquals(loaded.state.iteration, 2);
  tf.dispose([probe, before, after, ...(loaded.optimizerState ?? []).map((w) => w.tensor)]);
  trained.value.model!.dispose();
  loaded.model.dispose();

  const tested = await capture(() => binTest([...testFlags("bin"), "--threshold", "0.4"]));
  assertEquals(tested.value.figures.length, 2);
  assertEquals(
    tested.value.figures[0],
    join(root, "answers", "akahara", "bin_test_akahara_0003.png"),
  );
  assert((await Deno.stat(tested.value.figures[1]!)).isFile);
  assertEquals(tested.value.metrics.classNames, ["background", "newt"]);
  assert(METRICS_LINE.test(tested.lines.at(-1)!), tested.lines.at(-1)!);
  await Deno.remove(root, { recursive: true });
});

Deno.test("semaseg_loss and semaseg_test report three classes", async () => {
  const { root, flags, testFlags } = await tinySetup();
  const trained = await capture(() => semasegLoss(flags("semaseg")));
  trained.value.model!.dispose();
  const tested = await capture(() => semasegTest(testFlags("semaseg")));
  assertEquals(tested.value.metrics.classNames, ["background", "akahara", "madara"]);
  assert(tested.lines.at(-1)!.includes("(background "), tested.lines.at(-1)!);
  assert(METRICS_LINE.test(tested.lines.at(-1)!), tested.lines.at(-1)!);
  assertEquals(tested.value.figures.length, 2);
  await Deno.remove(root, { recursive: true });
});

for (
  const [name, run] of [["nearest", nearest], ["transposeconv", transposeconv], [
    "concat",
    concat,
  ]] as const
) {
  Deno.test(`${name} trains then tests, and --no-train tests the same checkpoint`, async () => {
    const { root, flags } = await tinySetup();
    const both = await capture(() => run(flags(name)));
    assertEquals(both.value.trained!.losses.length, 2);
    assert(METRICS_LINE.test(both.lines.at(-1)!), both.lines.at(-1)!);
    assertEquals(
      both.value.tested!.figures[1],
      join(root, "answers", "madara", `${name}_madara_0003.png`),
    );
    both.value.model!.dispose();

    const reloaded = await capture(() => run([...flags(name), "--no-train"]));
    assertEquals(reloaded.value.trained, undefined);
    assertEquals(reloaded.value.tested!.line, both.value.tested!.line);
    reloaded.value.model!.dispose();

    const onlyTrain = await capture(() =>
      run([...flags(name), "--no-test", "--iters", "3", "--resume"])
    );
    assertEquals(onlyTrain.value.tested, undefined);
    assertEquals(onlyTrain.value.trained!.losses.length, 1); // resumed at 2, trained to 3
    onlyTrain.value.model!.dispose();
    await Deno.remove(root, { recursive: true });
  });
}

Deno.test("a train-then-test run names its test split once", async () => {
  const { root, flags } = await tinySetup();
  const both = await capture(() => nearest(flags("nearest")));
  both.value.model!.dispose();
  const said = both.lines.filter((line) => /^data: \d+ test images/.test(line));
  assertEquals(said.length, 1, said.join("\n"));
  // At another test size the split is read again, at that size, and said so.
  const other = await capture(() =>
    nearest([...flags("nearest"), "--resume", "--test-size", "32"])
  );
  other.value.model!.dispose();
  const sizes = other.lines.filter((line) => /^data: \d+ test images/.test(line))
    .map((line) => line.match(/at (\d+x\d+)/)?.[1]);
  assertEquals(sizes, ["16x16", "32x32"]);
  await Deno.remove(root, { recursive: true });
});

Deno.test("a resumed run's checkpoint and loss curve keep the losses from iteration 1", async () => {
  const { root, flags } = await tinySetup();
  const dir = join(root, "checkpoints", "nearest");
  const state = async () => JSON.parse(await Deno.readTextFile(join(dir, "training_state.json")));
  const curve = (values: number[], xStart: number) =>
    renderLineChart({
      title: "nearest: training loss",
      xLabel: "iteration",
      yLabel: "loss",
      series: [{ label: "each iteration", values }],
      yFromZero: true,
      xStart,
    });
  const assertCurve = async (values: number[], xStart: number) => {
    const png = await decodeImage(join(root, "answers", "nearest_loss.png"));
    assertEquals(png.data, curve(values, xStart).data, `the curve of ${xStart}-${values.length}`);
  };
  const run = async (args: string[]) => {
    const { value } = await capture(() => nearest([...flags("nearest"), "--no-test", ...args]));
    value.model!.dispose();
    return value.trained!.losses;
  };
  const first = await run(["--iters", "3"]);
  assertEquals((await state()).losses, first);
  const second = await run(["--iters", "5", "--resume"]);
  assertEquals(second.length, 2);
  assertEquals((await state()).losses, [...first, ...second]);
  await assertCurve([...first, ...second], 1);

  // A checkpoint of an older version kept no losses: the curve starts where the run resumed.
  const { losses: _, ...old } = await state();
  await Deno.writeTextFile(join(dir, "training_state.json"), JSON.stringify(old));
  const third = await run(["--iters", "7", "--resume"]);
  assertEquals((await state()).losses, third);
  await assertCurve(third, 6);
  await Deno.remove(root, { recursive: true });
});

Deno.test("bin_test names the command to run when the checkpoint is missing or of another network", async () => {
  const { root, flags, testFlags } = await tinySetup();
  await assertRejects(
    () => binTest(testFlags("none")),
    (error: Error) =>
      error instanceof UserError &&
      error.message.includes(
        `run \`deno task bin_loss --checkpoint ${join(root, "checkpoints", "none")} --data ${
          join(root, "data")
        }\` first`,
      ),
  );
  const trained = await capture(() => semasegLoss(flags("semaseg")));
  trained.value.model!.dispose();
  await assertRejects(
    () => binTest(testFlags("semaseg")),
    (error: Error) =>
      error instanceof UserError && error.message.includes("trained for network semaseg, not bin"),
  );
  await assertRejects(
    () => semasegTest([...testFlags("semaseg"), "--size", "32"]),
    (error: Error) =>
      error instanceof UserError && error.message.includes("at input size 16, not 32"),
  );
  await Deno.remove(root, { recursive: true });
});

Deno.test("--test-size tests the trained weights at another size; a size that cannot work stops before training", async () => {
  const { root, flags, testFlags } = await tinySetup();
  await assertRejects(
    () => nearest([...flags("nearest"), "--test-size", "33"]),
    (error: Error) =>
      error instanceof UserError &&
      error.message.includes("Input size 33 does not work for nearest") &&
      error.message.endsWith("pass one with --test-size"),
  );
  assertEquals(
    await Deno.stat(join(root, "checkpoints", "nearest")).then(() => true, () => false),
    false,
  );
  const trained = await capture(() => nearest(flags("nearest")));
  trained.value.model!.dispose();
  const larger = await capture(() =>
    nearest([...flags("nearest"), "--no-train", "--test-size", "32"])
  );
  assert(
    larger.lines.includes("test: the trained weights at input size 32x32"),
    larger.lines.join("\n"),
  );
  assert(METRICS_LINE.test(larger.lines.at(-1)!), larger.lines.at(-1)!);
  // Scored at 32x32 against the masks at 32x32: other pixels, another line.
  assert(larger.lines.at(-1) !== trained.lines.at(-1), larger.lines.at(-1)!);
  larger.value.model!.dispose();
  // bin_test takes it too, with the same check.
  await capture(async () => (await binLoss(flags("bin"))).model!.dispose());
  const binLarger = await capture(() => binTest([...testFlags("bin"), "--test-size", "24"]));
  assert(binLarger.lines.includes("test: the trained weights at input size 24x24"));
  await Deno.remove(root, { recursive: true });
});

Deno.test("exercises refuse a bad flag value with a one-line error", async () => {
  await assertRejects(
    () => binLoss(["--iters", "many"]),
    (error: Error) =>
      error instanceof UserError &&
      error.message === 'Bad value for --iters: "many" is not an integer',
  );
  await assertRejects(
    () => nearest(["--backend", "gpu"]),
    (error: Error) =>
      error instanceof UserError && error.message.startsWith("Bad value for --backend"),
  );
  // A negative number is the flag's value, refused by its range, not taken for a flag
  await assertRejects(
    () => binLoss(["--iters", "-5"]),
    (error: Error) =>
      error instanceof UserError &&
      error.message === "Bad value for --iters: -5 is below the minimum 1",
  );
  // A mistyped flag is named with the one it most likely meant; a flag nothing resembles is not
  await assertRejects(
    () => nearest(["--itres", "5"]),
    (error: Error) =>
      error instanceof UserError &&
      error.message ===
        "Unknown option '--itres'; did you mean --iters? run with --help to see the flags",
  );
  await assertRejects(
    () => nearest(["--model", "unet"]),
    (error: Error) =>
      error instanceof UserError &&
      error.message === "Unknown option '--model'; run with --help to see the flags",
  );
});

Deno.test({
  name: "bin_loss and semaseg_loss lower the loss over 30 iterations on Imori at 32x32",
  fn: async () => {
    const imori = await requireImori();
    const root = await Deno.makeTempDir({ prefix: "exercises_loss_" });
    for (const [name, run] of [["bin", binLoss], ["semaseg", semasegLoss]] as const) {
      const { value } = await capture(() =>
        run([
          "--data",
          imori,
          "--size",
          "32",
          "--iters",
          "30",
          "--backend",
          "wasm",
          "--out",
          join(root, "answers"),
          "--checkpoint",
          join(root, name),
        ])
      );
      const mean = (values: number[]) =>
        values.reduce((sum, value) => sum + value, 0) / values.length;
      const early = mean(value.trained!.losses.slice(0, 5));
      const late = mean(value.trained!.losses.slice(-5));
      assert(late < early * 0.85, `${name}: loss ${early.toFixed(3)} -> ${late.toFixed(3)}`);
      value.model!.dispose();
    }
    await Deno.remove(root, { recursive: true });
  },
});

Deno.test("segnet's next line runs as printed: segment on the checkpoint just written", async () => {
  const { root, flags } = await tinySetup();
  const checkpoint = join(root, "checkpoints", "segnet");
  const args = [
    ...flags("segnet"),
    "--size",
    "32",
    "--batch-size",
    "2",
    "--iters",
    "1",
    "--no-test",
  ];
  const trained = await capture(() => segnet(args));
  trained.value.model?.dispose();
  const [next, note] = trained.lines.slice(-2);
  assertEquals(next, `next: deno task segment --checkpoint ${checkpoint} PHOTO`);
  assertEquals(note, "      (use the trained SegNet on your own photos)");
  // The command, PHOTO replaced by a photo, the output kept in the test's folder.
  const photos = join(root, "data", "test", "images");
  const [, , , ...rest] = next!.slice("next: ".length).split(" ");
  const command = rest.map((word) => word === "PHOTO" ? photos : word);
  const segmented = await capture(() => segment([...command, "--out", join(root, "segment")]));
  assert(segmented.value.length > 0, segmented.lines.join("\n"));
  await Deno.remove(root, { recursive: true });
});
