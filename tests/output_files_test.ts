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
  CHECKPOINT_FILES,
  claimCheckpoint,
  claimOutputFile,
  guardWrite,
  noteInputs,
} from "../lib/output_files.ts";
import { join, shownPath } from "../lib/path.ts";
import { startServer } from "../tools/serve.ts";

await tf.setBackend("cpu");

/** The smallest `model.json` TensorFlow.js reads: a topology and a weights manifest. */
const MODEL_JSON = JSON.stringify({ modelTopology: {}, weightsManifest: [] });

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
    /holds files that are not a checkpoint's \(letter.txt\)/,
  );
  assertEquals(await Deno.readTextFile(join(documents, "letter.txt")), "mine");
  await assertRejects(
    () => claimCheckpoint(join(checkpoint, "model.json")),
    (error: Error) =>
      error.message.endsWith(
        `a checkpoint is a folder holding model.json: pass --checkpoint ${checkpoint}`,
      ),
  );
  model.dispose();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("claimCheckpoint() refusing a checkpoint trained on other photos names both and a folder that keeps both", async () => {
  const root = await Deno.makeTempDir();
  const dir = join(root, "nearest");
  await Deno.mkdir(dir);
  await Deno.writeTextFile(join(dir, "model.json"), MODEL_JSON);
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
  // Resumed on other photos, it lists both (oldest first): either is the same photos.
  const both = [join(root, "synthetic"), join(root, "imori")];
  await Deno.writeTextFile(
    join(dir, "training_state.json"),
    JSON.stringify({ iteration: 600, settings: { data: both } }),
  );
  await assertRejects(
    () => claimCheckpoint(dir, { data: join(root, "imori") }),
    (error: Error) =>
      error.message.startsWith(
        `${dir} already holds a checkpoint of 600 iterations trained on ${
          shownPath(both[0]!)
        } and ${shownPath(both[1]!)}; pass --resume`,
      ),
  );
  await Deno.remove(root, { recursive: true });
});

Deno.test("claimCheckpoint() refuses a folder holding anything besides a checkpoint's files, even to replace it", async () => {
  const root = await Deno.makeTempDir();
  const model = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [1] })] });
  const state = { iteration: 2, model: "tiny", size: 1, classes: 1, optimizer: "sgd" };
  const optimizer = tf.train.momentum(0.1, 0.9);
  try {
    // What saveCheckpoint writes is exactly what a checkpoint may hold.
    const dir = join(root, "ck");
    optimizer.minimize(() => tf.sum(model.predict(tf.ones([1, 1])) as tf.Tensor) as tf.Scalar);
    await saveCheckpoint(dir, model, state, optimizer);
    assertEquals(
      (await Array.fromAsync(Deno.readDir(dir))).map((entry) => entry.name).sort(),
      [...CHECKPOINT_FILES].sort(),
    );
    // A user's file in it: refused even with replace (--overwrite, --resume), nothing removed.
    await Deno.writeTextFile(join(dir, "thesis.txt"), "mine");
    await assertRejects(
      () => claimCheckpoint(dir, { start: true, replace: true }),
      (error: Error) =>
        error.message ===
          `--checkpoint ${dir} holds files that are not a checkpoint's (thesis.txt); saving ` +
            "there would replace them, so it is refused even with --overwrite or --resume: " +
            `pass --checkpoint ${dir}_checkpoint or another new folder`,
    );
    assertEquals(await Deno.readTextFile(join(dir, "thesis.txt")), "mine");
    // Put there while this run trains (after its claim): the save refuses, nothing removed.
    await Deno.remove(join(dir, "thesis.txt"));
    await claimCheckpoint(dir, { start: true, replace: true });
    await Deno.mkdir(join(dir, "photos"));
    await assertRejects(
      () => saveCheckpoint(dir, model, state, undefined, { replace: true }),
      /not a checkpoint's \(photos\/\)/,
    );
    assert((await Deno.stat(join(dir, "photos"))).isDirectory);
    assert((await Deno.stat(join(dir, "optimizer.bin"))).isFile, "the checkpoint is kept");
    // A model.json that is not a TensorFlow.js model is not a checkpoint.
    const mine = join(root, "mine");
    await Deno.mkdir(mine);
    await Deno.writeTextFile(join(mine, "model.json"), '{"my":"config"}');
    await assertRejects(
      () => claimCheckpoint(mine, { replace: true }),
      /\(model.json, which is not a TensorFlow.js model\)/,
    );
    // A damaged checkpoint (model.json cut) still is one: --overwrite may replace it.
    await Deno.remove(join(dir, "photos"));
    const text = await Deno.readTextFile(join(dir, "model.json"));
    await Deno.writeTextFile(join(dir, "model.json"), text.slice(0, text.length >> 1));
    await claimCheckpoint(dir, { start: true, replace: true });
  } finally {
    optimizer.dispose();
    model.dispose();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("guardWrite() makes a full disk one line naming the path; a read-only --out is refused up front", async () => {
  // A full disk, as Deno reports it (os error 28; writing /dev/full would need --allow-all)
  const full = () =>
    Promise.reject(Object.assign(new Error("No space left on device (os error 28)"), {
      code: "ENOSPC",
    }));
  await assertRejects(
    () => guardWrite("/data/answers/a.png", "pass --out <another disk>", full),
    Error,
    "Cannot write /data/answers/a.png: no space left on device; free some space, or pass --out " +
      "<another disk>",
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
  const fix = "run `deno task tiny --overwrite` to train a new one in its place";
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
