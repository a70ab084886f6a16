/**
 * The mechanisms behind issue 19's kinds: the one output policy
 * (`output_files.ts`: inputs, files not ours, checkpoints, wrong kinds,
 * system errors), the one checkpoint check that Deno and the page share
 * (`checkpoint_check.js`), and the memory check of a minibatch.
 */
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-cpu";
import { assert, assertEquals, assertRejects, assertThrows } from "../lib/assert.ts";
import { fetchCheckedCheckpoint } from "../lib/checkpoint_check.js";
import { loadCheckpoint, saveCheckpoint } from "../lib/checkpoint.ts";
import { systemErrorLine } from "../lib/errors.ts";
import { encodeImage, writeFileAtomic } from "../lib/image_io.ts";
import { checkBatchFits } from "../lib/memory_budget.ts";
import {
  checkOutputFolder,
  claimCheckpoint,
  claimOutputFile,
  guardWrite,
  noteInputs,
} from "../lib/output_files.ts";
import { join, shownPath } from "../lib/path.ts";
import { startServer } from "../tools/serve.ts";

await tf.setBackend("cpu");

const PNG = await encodeImage({ data: new Uint8Array(12), width: 2, height: 2, channels: 3 });

Deno.test("writeFileAtomic() replaces only files this project wrote, never an input or another file", async () => {
  const dir = await Deno.makeTempDir();
  const ours = join(dir, "ours.png");
  await writeFileAtomic(ours, PNG);
  // A later run (another process: the claim is forgotten) may replace it: it carries the mark.
  const copy = join(dir, "copy.png");
  await Deno.copyFile(ours, copy);
  await claimOutputFile(copy);
  const theirs = join(dir, "theirs.png");
  await Deno.writeFile(theirs, PNG); // the same picture, not written by the project
  await assertRejects(
    () => writeFileAtomic(theirs, PNG),
    Error,
    `Cannot write ${theirs}: a file this project did not write is there; move it away, or pass --out <another folder>`,
  );
  const input = join(dir, "input.png");
  noteInputs([input]);
  await assertRejects(() => writeFileAtomic(input, PNG), Error, "it is an input of this run");
  await Deno.mkdir(join(dir, "folder.png"));
  await assertRejects(
    () => writeFileAtomic(join(dir, "folder.png"), PNG),
    Error,
    "a folder is there",
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("claimCheckpoint() refuses another run's checkpoint, a folder of other files and a file", async () => {
  const dir = await Deno.makeTempDir();
  const model = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [1] })] });
  const state = { iteration: 20, model: "tiny", size: 1, classes: 1, optimizer: "sgd" };
  const checkpoint = join(dir, "run");
  await saveCheckpoint(checkpoint, model, state);
  await saveCheckpoint(checkpoint, model, state); // this run's own: replaced
  await assertRejects(
    () => claimCheckpoint(checkpoint, { start: true }),
    Error,
    `${checkpoint} already holds a checkpoint of 20 iterations; pass --resume to continue it, ` +
      "--checkpoint <new folder> to train another, or --overwrite to replace it",
  );
  await claimCheckpoint(checkpoint, { start: true, replace: true });
  const documents = join(dir, "documents");
  await Deno.mkdir(documents);
  await Deno.writeTextFile(join(documents, "letter.txt"), "mine");
  await assertRejects(
    () => saveCheckpoint(documents, model, state, undefined, { replace: true }),
    Error,
    "is a folder of other files, not a checkpoint",
  );
  assertEquals(await Deno.readTextFile(join(documents, "letter.txt")), "mine");
  await assertRejects(
    () => claimCheckpoint(join(checkpoint, "model.json")),
    Error,
    `a checkpoint is a folder holding model.json: pass --checkpoint ${checkpoint}`,
  );
  model.dispose();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("claimCheckpoint() refusing a checkpoint trained on other photos names both and a folder that keeps both", async () => {
  const root = await Deno.makeTempDir();
  const dir = join(root, "nearest");
  await Deno.mkdir(dir);
  await Deno.writeTextFile(join(dir, "model.json"), "{}");
  await Deno.writeTextFile(
    join(dir, "training_state.json"),
    JSON.stringify({ iteration: 500, settings: { data: join(root, "synthetic") } }),
  );
  const message = await claimCheckpoint(dir, { data: join(root, "imori") }).then(
    () => "",
    (error: Error) => error.message,
  );
  assertEquals(
    message,
    `${dir} already holds a checkpoint of 500 iterations trained on ${
      shownPath(join(root, "synthetic"))
    }, and this run trains on ${
      shownPath(join(root, "imori"))
    }; pass --checkpoint ${dir}_imori to keep ` +
      "both, --overwrite to replace it, or --resume to continue it on these photos",
  );
  // The same photos: the plain refusal
  await assertRejects(
    () => claimCheckpoint(dir, { data: join(root, "synthetic") }),
    /pass --resume to continue it, --checkpoint <new folder> to train another/,
  );
  await Deno.remove(root, { recursive: true });
});

Deno.test("guardWrite() makes a full disk one line naming the path; a read-only --out is refused up front", async () => {
  await assertRejects(
    () =>
      guardWrite("/dev/full", "pass --out <another disk>", () => Deno.writeFile("/dev/full", PNG)),
    Error,
    "Cannot write /dev/full: no space left on device; free some space, or pass --out <another disk>",
  );
  if (Deno.uid() === 0) return; // root writes anywhere: no read-only folder to show
  const dir = await Deno.makeTempDir();
  await Deno.chmod(dir, 0o555);
  assertThrows(
    () => checkOutputFolder(join(dir, "answers"), "--out"),
    Error,
    `Cannot write ${dir}: permission denied; pass --out <a folder you can write>`,
  );
  await Deno.chmod(dir, 0o755);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("systemErrorLine() turns running out of memory into one line naming the flags", () => {
  assertEquals(
    systemErrorLine(new Error("memory access out of bounds")),
    "Out of memory (memory access out of bounds); lower --batch-size or --size and run again",
  );
});

Deno.test("checkBatchFits() names the largest batch that fits", () => {
  const input = tf.input({ shape: [8, 8, 3] });
  const model = tf.model({ inputs: input, outputs: input, name: "tiny" });
  // 768 bytes of activations per image; training takes 1.5 times that
  checkBatchFits(model, 10, { memory: 1152 * 10 });
  assertThrows(
    () => checkBatchFits(model, 11, { memory: 1152 * 10 }),
    Error,
    "--batch-size 11 needs about 12.4 KiB to train one minibatch (1.1 KiB per image for tiny), " +
      "more than the 11.3 KiB this backend can use; pass --batch-size 10 or lower",
  );
  assertThrows(
    () => checkBatchFits(model, 1, { memory: 1000 }),
    Error,
    "pass a smaller --size (one image does not fit)",
  );
});

Deno.test("the page's checkpoint check gives the verdict of loadCheckpoint() on the same folder", async () => {
  const dir = await Deno.makeTempDir();
  const checkpoints = join(dir, "checkpoints");
  const input = tf.input({ shape: [4, 4, 3] });
  const conv = tf.layers.conv2d({ filters: 2, kernelSize: 1 }).apply(input) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: conv });
  const state = { iteration: 1, model: "tiny", size: 4, classes: 2, optimizer: "sgd" };
  const server = await startServer({ port: 0, checkpoints });
  const fix = "run `deno task tiny` again to rewrite it";
  const knownLayer = (name: string) =>
    name in tf.serialization.SerializationMap.getMap().classNameMap;
  try {
    const faults: [string, (folder: string) => Promise<void>][] = [
      ["missing weights", (folder) => Deno.remove(join(folder, "weights.bin"))],
      ["non-finite weight", async (folder) => {
        const bytes = await Deno.readFile(join(folder, "weights.bin"));
        new DataView(bytes.buffer).setFloat32(4, Infinity, true);
        await Deno.writeFile(join(folder, "weights.bin"), bytes);
      }],
      ["unknown layer", async (folder) => {
        const text = await Deno.readTextFile(join(folder, "model.json"));
        await Deno.writeTextFile(join(folder, "model.json"), text.replace('"Conv2D"', '"Conv9D"'));
      }],
    ];
    for (const [name, fault] of faults) {
      const folder = join(checkpoints, name.replaceAll(" ", "_"));
      await saveCheckpoint(folder, model, state);
      await fault(folder);
      const deno = await loadCheckpoint(folder, { command: "deno task tiny" }).then(
        () => "loaded",
        (error: Error) => error.message,
      );
      const page = await fetchCheckedCheckpoint(
        `${server.url}checkpoints/${name.replaceAll(" ", "_")}`,
        { where: folder, fix, knownLayer },
      ).then(() => "loaded", (error: Error) => error.message);
      assert(deno !== "loaded", name);
      assertEquals(page, deno, name);
    }
  } finally {
    await server.close();
    model.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});
