import * as tf from "@tensorflow/tfjs";
import { assert, assertEquals, assertRejects } from "../lib/assert.ts";
import { UserError } from "../lib/errors.ts";
import { join } from "../lib/path.ts";
import { writeSyntheticDataset } from "../lib/synthetic_files.ts";
import { run as runSegnet } from "../exercises/segnet.ts";
import { run as runUnet } from "../exercises/unet.ts";
import { run as runUnetlike } from "../exercises/unetlike.ts";

const METRICS_LINE =
  /^test mIoU \d\.\d{3} \(background (\d\.\d\d|n\/a), akahara (\d\.\d\d|n\/a), madara (\d\.\d\d|n\/a)\) pixel accuracy \d\.\d{3}$/;

/** A tiny synthetic dataset (one train and one test photo per species) and output folders. */
async function workspace() {
  const root = await Deno.makeTempDir({ prefix: "paper_exercises_" });
  const data = join(root, "data");
  await writeSyntheticDataset(data, { trainPerClass: 1, testPerClass: 1 });
  const out = join(root, "answers");
  const checkpoint = join(root, "checkpoint");
  const common = ["--data", data, "--out", out, "--checkpoint", checkpoint, "--backend", "wasm"];
  return { root, out, checkpoint, common };
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/** Captures console.log while `work` runs, so tests can read what a script printed. */
async function captureLog<T>(work: () => Promise<T>): Promise<{ value: T; lines: string[] }> {
  const lines: string[] = [];
  const original = console.log;
  console.log = (...parts: unknown[]) => {
    lines.push(parts.join(" "));
  };
  try {
    return { value: await work(), lines };
  } finally {
    console.log = original;
  }
}

Deno.test("unetlike trains, tests, writes a figure per test photo and reloads its checkpoint", async () => {
  const { root, out, checkpoint, common } = await workspace();
  const args = [
    ...common,
    "--size",
    "16",
    "--iters",
    "2",
    "--batch-size",
    "2",
    "--save-every",
    "0",
  ];
  const { value: result, lines } = await captureLog(() => runUnetlike(args));
  assert(
    lines.some((line) => line.includes("unetlike (Functional)") || line.includes("Model unetlike")),
  );
  assertEquals(result.trained!.losses.length, 2);
  assert(METRICS_LINE.test(lines.at(-1)!), lines.at(-1)!);
  assertEquals(result.tested!.line, lines.at(-1));
  for (const name of ["akahara_0002", "madara_0002"]) {
    assert(await exists(join(out, name.split("_")[0]!, `unetlike_${name}.png`)), name);
  }
  assert(await exists(join(out, "unetlike_loss.png")));
  assert(await exists(join(checkpoint, "model.json")));
  // --no-train tests the checkpoint: the same predictions, so the same metrics
  const reloaded = await captureLog(() => runUnetlike([...args, "--no-train"]));
  assertEquals(reloaded.value.tested!.line, result.tested!.line);
  result.model!.dispose();
  reloaded.value.model!.dispose();
  await Deno.remove(root, { recursive: true });
});

Deno.test("unetlike --recipe tuned trains with augmentation and names its figures apart", async () => {
  const { root, out, common } = await workspace();
  const before = tf.memory().numTensors;
  const args = [
    ...common,
    "--recipe",
    "tuned",
    "--size",
    "16",
    "--iters",
    "2",
    "--batch-size",
    "2",
  ];
  const { value: result, lines } = await captureLog(() => runUnetlike(args));
  assert(lines.some((line) => line.startsWith("recipe: tuned")));
  assert(lines.some((line) => line.includes("adam lr 0.003 (onecycle)")), lines.join("\n"));
  assert(lines.some((line) => line.includes("loss ce+dice")), lines.join("\n"));
  assert(lines.some((line) => line.includes("at 32x32, random crops resized to 16x16")));
  assertEquals(result.trained!.losses.length, 2);
  assert(METRICS_LINE.test(lines.at(-1)!), lines.at(-1)!);
  assert(await exists(join(out, "madara", "unetlike_tuned_madara_0002.png")));
  result.model!.dispose();
  assertEquals(tf.memory().numTensors, before);
  await Deno.remove(root, { recursive: true });
});

Deno.test("segnet trains one iteration, tests, reloads, and refuses a size that is no multiple of 32", async () => {
  const { root, out, common } = await workspace();
  const args = [
    ...common,
    "--size",
    "32",
    "--iters",
    "1",
    "--batch-size",
    "1",
    "--save-every",
    "0",
  ];
  const { value: result, lines } = await captureLog(() => runSegnet(args));
  assert(lines.some((line) => line.includes("unpool5 (MaxUnpool)")));
  assert(METRICS_LINE.test(lines.at(-1)!), lines.at(-1)!);
  assert(await exists(join(out, "akahara", "segnet_akahara_0002.png")));
  // the pooling and unpooling layers load back from model.json
  const reloaded = await captureLog(() => runSegnet([...args, "--no-train"]));
  assertEquals(reloaded.value.tested!.line, result.tested!.line);
  result.model!.dispose();
  reloaded.value.model!.dispose();
  await assertRejects(
    () => runSegnet([...common, "--size", "48"]),
    (error: Error) =>
      error instanceof UserError && /32 \(output 32\), 64 \(output 64\)/.test(error.message),
  );
  await Deno.remove(root, { recursive: true });
});

Deno.test("unet runs two iterations, times the second, says what a full run needs, and tests", async () => {
  const { root, out, common } = await workspace();
  const args = [...common, "--size", "188", "--batch-size", "1"];
  const { value: result, lines } = await captureLog(() => runUnet(args));
  assert(lines.some((line) => line.includes("input 188x188, output 4x4")), lines.join("\n"));
  const timing = lines.find((line) => line.includes("100 iterations would need about"));
  assert(
    /the first iteration took .* with setup, the second /.test(timing ?? ""),
    lines.join("\n"),
  );
  assertEquals(result.trained!.losses.length, 2);
  assert(METRICS_LINE.test(lines.at(-1)!), lines.at(-1)!);
  assert(await exists(join(out, "madara", "unet_madara_0002.png")));
  result.model!.dispose();
  await assertRejects(
    () => runUnet([...common, "--size", "200"]),
    (error: Error) =>
      error instanceof UserError && /188 \(output 4\), 204 \(output 20\)/.test(error.message),
  );
  await Deno.remove(root, { recursive: true });
});
