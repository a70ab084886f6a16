import * as tf from "@tensorflow/tfjs";
import { assert, assertEquals, assertRejects, assertThrows } from "../lib/assert.ts";
import { UserError } from "../lib/errors.ts";
import {
  decodeImage,
  encodeImage,
  type RasterImage,
  resizeBilinear,
  resizeNearest,
} from "../lib/image_io.ts";
import { maskToClasses } from "../lib/mask_classes.ts";
import { join } from "../lib/path.ts";

const exists = (path: string) => Deno.stat(path).then(() => true, () => false);
import * as pixels from "../lib/segment_pixels.js";
import { renderNewtPhoto } from "../lib/synthetic_newts.ts";
import { run } from "../tools/segment.ts";
import { saveNetwork } from "./networks.ts";
import { BINARY } from "../exercises/bin_dataset.ts";
import { CLASSES } from "../exercises/semaseg_dataset.ts";

await tf.setBackend("cpu");

const SEGMENT = new URL("../tools/segment.ts", import.meta.url).pathname;

function randomImage(width: number, height: number, seed: number): RasterImage {
  let state = seed;
  const data = Uint8Array.from({ length: width * height * 3 }, () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state >>> 24;
  });
  return { data, width, height, channels: 3 };
}

/** Runs `segment` with the flags that keep a test quick and quiet. */
function segment(args: string[]) {
  return run(["--backend", "cpu", ...args]);
}

/** A folder with checkpoints (untrained: only shapes and colours matter here) and photos. */
async function withFixture(
  test: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    for (const name of ["unetlike", "bin", "segnet"] as const) {
      (await saveNetwork(join(dir, "checkpoints", name), { name, size: 32 })).dispose();
    }
    await Deno.mkdir(join(dir, "photos", "sub"), { recursive: true });
    const newt = renderNewtPhoto({ kind: "madara", seed: 5, width: 90, height: 60 });
    await Deno.writeFile(join(dir, "photos", "a.JPG"), await encodeImage(newt.image));
    await Deno.writeFile(join(dir, "photos", ".hidden.jpg"), new Uint8Array(3));
    await Deno.writeTextFile(join(dir, "photos", "notes.txt"), "not a photo");
    const grey = {
      data: newt.image.data.filter((_, index) => index % 3 === 0),
      width: 90,
      height: 60,
      channels: 1,
    };
    await Deno.writeFile(join(dir, "photos", "sub", "b.png"), await encodeImage(grey));
    await Deno.mkdir(join(dir, "empty"));
    await Deno.writeTextFile(join(dir, "empty", ".DS_Store.jpg"), "");
    await test(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("segment_pixels resizeBilinear() equals the dataset reader's resizeBilinear() to the bit", () => {
  for (
    const [width, height, toWidth, toHeight] of [[256, 144, 64, 64], [31, 7, 64, 50], [5, 5, 5, 5]]
  ) {
    const image = randomImage(width!, height!, width! * height!);
    assertEquals(
      pixels.resizeBilinear(image, toWidth!, toHeight!),
      resizeBilinear(image, toWidth!, toHeight!),
    );
  }
});

Deno.test("segment_pixels classMapToPhoto() is the masks' nearest-neighbour resize when the map covers the input", () => {
  const map = Uint8Array.from({ length: 16 * 16 }, (_, index) => (index * 7) % 3);
  for (const [width, height] of [[256, 455], [7, 3], [16, 16]]) {
    const expected = resizeNearest(map, {
      width: 16,
      height: 16,
      toWidth: width!,
      toHeight: height!,
    });
    const actual = pixels.classMapToPhoto(map, {
      outputSize: 16,
      inputSize: 16,
      width: width!,
      height: height!,
    });
    assertEquals(actual, expected);
  }
});

Deno.test("segment_pixels classMapToPhoto() puts a smaller (UNet) map at the centre, background around", () => {
  const classes = pixels.classMapToPhoto([1, 2, 2, 1], {
    outputSize: 2,
    inputSize: 4,
    width: 4,
    height: 4,
  });
  assertEquals(Array.from(classes), [0, 0, 0, 0, 0, 1, 2, 0, 0, 2, 1, 0, 0, 0, 0, 0]);
});

Deno.test("segment writes a mask at each photo's size, readable as a training mask, and a figure", async () => {
  await withFixture(async (dir) => {
    const out = join(dir, "out");
    const done = await segment([
      "--checkpoint",
      join(dir, "checkpoints", "unetlike"),
      "--out",
      out,
      join(dir, "photos"),
    ]);
    // Upper-case extension found, hidden file and text file skipped, subfolder kept in the output.
    assertEquals(done.map((one) => one.mask), [
      join(out, "a_mask.png"),
      join(out, "sub", "b_mask.png"),
    ]);
    for (const one of done) {
      const mask = await decodeImage(one.mask);
      assertEquals([mask.width, mask.height], [90, 60]);
      const classes = maskToClasses(mask.data, {
        width: 90,
        height: 60,
        mode: CLASSES,
        file: one.mask,
      });
      assertEquals(pixels.classShares(classes, 3), one.shares);
      assert((await Deno.stat(one.figure)).size > 0);
    }
  });
});

Deno.test("segment run again on a folder it wrote into leaves its own masks and figures out", async () => {
  await withFixture(async (dir) => {
    const photos = join(dir, "photos");
    const args = ["--checkpoint", join(dir, "checkpoints", "bin"), "--out", photos, photos];
    const first = await segment(args);
    const again = await segment(args);
    // The same two photos, not their masks and figures as four more
    assertEquals(again.map((one) => one.photo), first.map((one) => one.photo));
    assertEquals(again.map((one) => one.photo), [
      join(photos, "a.JPG"),
      join(photos, "sub", "b.png"),
    ]);
  });
});

Deno.test("segment goes on past an unreadable photo in a folder and names it", async () => {
  await withFixture(async (dir) => {
    const photos = join(dir, "photos");
    await Deno.writeTextFile(join(photos, "b.jpg"), "not a photo"); // between a.JPG and sub/b.png
    const out = join(dir, "out");
    await assertRejects(
      () => segment(["--checkpoint", join(dir, "checkpoints", "bin"), "--out", out, photos]),
      (error: Error) =>
        error instanceof UserError &&
        error.message.startsWith(
          `1 of 3 photos could not be read (each named above, first ${join(photos, "b.jpg")})`,
        ),
    );
    // The photos before and after it were segmented
    assert(await exists(join(out, "a_mask.png")));
    assert(await exists(join(out, "sub", "b_mask.png")));
  });
});

Deno.test("segment warns that a network trained on the synthetic newts has seen no photo", async () => {
  await withFixture(async (dir) => {
    const checkpoint = join(dir, "checkpoints", "bin");
    const state = JSON.parse(await Deno.readTextFile(join(checkpoint, "training_state.json")));
    const synthetic = join(dir, "data", "synthetic");
    await Deno.mkdir(synthetic, { recursive: true });
    await Deno.writeTextFile(join(synthetic, "synthetic.json"), "{}");
    const args = ["--checkpoint", checkpoint, "--out", join(dir, "out"), join(dir, "photos")];
    const lines: string[] = [];
    const log = console.log;
    console.log = (...parts: unknown[]) => lines.push(parts.join(" "));
    try {
      await segment(args); // no record of the data: no warning
      state.settings = { ...state.settings, data: synthetic };
      await Deno.writeTextFile(join(checkpoint, "training_state.json"), JSON.stringify(state));
      await segment(args);
    } finally {
      console.log = log;
    }
    const warnings = lines.filter((line) => line.startsWith("warning: "));
    assertEquals(warnings.length, 1, lines.join("\n"));
    assert(warnings[0]!.includes("was trained on the built-in synthetic newts"), warnings[0]!);
  });
});

Deno.test("segment says a --model that the --checkpoint's network overrides is ignored", async () => {
  await withFixture(async (dir) => {
    const checkpoint = join(dir, "checkpoints", "bin");
    const lines: string[] = [];
    const warn = console.warn;
    console.warn = (...parts: unknown[]) => lines.push(parts.join(" "));
    try {
      for (const model of ["unetlike", "bin"]) {
        const out = join(dir, `out_${model}`);
        await segment([
          "--model",
          model,
          "--checkpoint",
          checkpoint,
          "--out",
          out,
          join(dir, "photos"),
        ]);
      }
      await segment(["--checkpoint", checkpoint, "--out", join(dir, "out"), join(dir, "photos")]);
    } finally {
      console.warn = warn;
    }
    // Once: for unetlike; --model bin agrees, and the default --model was not typed
    assertEquals(lines, [
      `warning: --model unetlike ignored: ${checkpoint} holds a bin network, which is used`,
    ]);
  });
});

Deno.test("segment of a binarization model writes black and white", async () => {
  await withFixture(async (dir) => {
    const [done] = await segment([
      "--model",
      "bin",
      "--checkpoint",
      join(dir, "checkpoints", "bin"),
      "--out",
      join(dir, "out"),
      join(dir, "photos", "a.JPG"),
    ]);
    const mask = await decodeImage(done!.mask);
    assert(mask.data.every((value) => value === 0 || value === 255));
    assertEquals(done!.shares.length, 2);
    // The mask is a training mask for the binarization exercises: white reads as "newt".
    const { width, height } = mask;
    const newt = maskToClasses(mask.data, { width, height, mode: BINARY, file: done!.mask });
    const white = mask.data.filter((value, index) => index % 3 === 0 && value === 255).length;
    assertEquals(newt.reduce((sum, value) => sum + value, 0), white);
    const one = new Uint8Array(2 * 2 * 3);
    one.set([255, 255, 255], 3 * 3); // white at x 1, y 1
    assertEquals(Array.from(maskToClasses(one, { width: 2, height: 2, mode: BINARY })), [
      0,
      0,
      0,
      1,
    ]);
    assertThrows(
      () => maskToClasses(one, { width: 2, height: 2, mode: CLASSES, file: "m.png" }),
      /Cannot read mask m\.png as three classes: pixel \(x 1, y 1\) is white \(255, 255, 255\), as in a black-and-white newt-or-not mask; use it with the binarization exercises/,
    );
  });
});

Deno.test("segment --size runs the same weights at another size; --flip-average averages 8 views", async () => {
  await withFixture(async (dir) => {
    const photo = join(dir, "photos", "a.JPG");
    const checkpoint = join(dir, "checkpoints", "unetlike");
    const [resized] = await segment([
      "--checkpoint",
      checkpoint,
      "--out",
      join(dir, "a"),
      "--size",
      "64",
      photo,
    ]);
    assertEquals([resized!.width, resized!.height], [90, 60]);
    const [averaged] = await segment([
      "--checkpoint",
      checkpoint,
      "--out",
      join(dir, "b"),
      "--flip-average",
      photo,
    ]);
    assert(Math.abs(averaged!.shares.reduce((sum, share) => sum + share, 0) - 1) < 1e-9);
    await assertRejects(
      () => segment(["--checkpoint", join(dir, "checkpoints", "segnet"), "--size", "48", photo]),
      UserError,
      "Input size 48 does not work for network segnet",
    );
  });
});

Deno.test("segment refuses bad input in one line", async () => {
  await withFixture(async (dir) => {
    const checkpoint = [
      "--checkpoint",
      join(dir, "checkpoints", "unetlike"),
      "--out",
      join(dir, "out"),
    ];
    await Deno.writeTextFile(join(dir, "fake.jpg"), "not a JPEG");
    const cases: [string[], string][] = [
      [checkpoint, "Name at least one photo or folder"],
      [
        [...checkpoint, join(dir, "missing.jpg")],
        `Cannot read photo ${join(dir, "missing.jpg")}: no such file`,
      ],
      [[...checkpoint, join(dir, "empty")], `No photos in folder ${join(dir, "empty")}`],
      [[...checkpoint, join(dir, "fake.jpg")], `Cannot read photo ${join(dir, "fake.jpg")}`],
      [
        ["--checkpoint", join(dir, "nothing"), join(dir, "photos")],
        `run \`deno task unetlike --checkpoint ${join(dir, "nothing")}\` first`,
      ],
      [
        ["--model", "unetlik", join(dir, "photos")],
        "No exercise trains a checkpoint named unetlik",
      ],
    ];
    for (const [args, message] of cases) {
      await assertRejects(() => segment(args), UserError, message);
    }
  });
});

Deno.test("segment prints a refusal as one line and exits with status 1", async () => {
  await withFixture(async (dir) => {
    await Deno.writeTextFile(join(dir, "checkpoints", "unetlike", "model.json"), "{ damaged");
    const result = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", SEGMENT, "--backend", "cpu", "photos"],
      cwd: dir,
      stdout: "null",
      stderr: "piped",
    }).output();
    const lines = new TextDecoder().decode(result.stderr).trim().split("\n")
      .filter((line) => !line.startsWith("backend:"));
    assertEquals(result.code, 1);
    assertEquals(lines.length, 1, lines.join("\n"));
    assert(lines[0]!.startsWith("error: "), lines[0]!);
    assert(lines[0]!.includes("checkpoints/unetlike/model.json"), lines[0]!);
    assert(lines[0]!.includes("run `deno task unetlike --overwrite`"), lines[0]!);
  });
});
