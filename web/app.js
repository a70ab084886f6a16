/**
 * The page: loads a checkpoint with `tf.loadLayersModel` (the project's custom
 * layers registered by `lib/custom_layers.js`), and segments the photo the
 * user picks or drops. The pixel work is `lib/segment_pixels.js` (the classes' names and
 * colours `lib/classes.js`), the same
 * file `deno task segment` runs: the photo resized bilinearly to the model's
 * input and scaled to [0, 1], the class map brought back to the photo's size
 * with nearest-neighbour sampling and painted in the dataset's colours.
 *
 * URL parameters: `checkpoint=<name>` picks a checkpoint, `backend=wasm|cpu|webgl`
 * the TensorFlow.js backend (default wasm).
 *
 * @module
 */
import { fetchCheckedCheckpoint } from "/lib/checkpoint_check.js";
import { registerCustomLayers } from "/lib/custom_layers.js";
import { classesOf } from "/lib/classes.js";
import { texturePixels } from "./texture_pixels.js";
import {
  classMapToPhoto,
  classShares,
  formatShares,
  paintMask,
  paintOverlay,
  resizeBilinear,
  rgbaToRgb,
} from "/lib/segment_pixels.js";

/** TensorFlow.js, from the classic script tags (`tf.min.js` and its wasm backend). */
const tf = globalThis.tf;
const params = new URLSearchParams(location.search);
const status = document.getElementById("status");
const select = document.getElementById("checkpoint");
const input = document.getElementById("photo");
const drop = document.getElementById("drop");

/** @type {{ model: any, name: string, inputSize: number, outputSize: number, channels: number } | undefined} */
let loaded;

/**
 * Shows a status line; `state` (loading, ready, working, done, error) is also
 * an attribute that tests wait on.
 */
function say(text, state) {
  status.textContent = text;
  status.dataset.state = state;
}

async function chooseBackend() {
  const wanted = params.get("backend") ?? "wasm";
  if (wanted === "wasm") tf.wasm.setWasmPaths("/vendor/");
  try {
    if (await tf.setBackend(wanted)) return wanted;
  } catch {
    // fall through to cpu
  }
  await tf.setBackend("cpu");
  return "cpu";
}

/**
 * Loads a served checkpoint after the checks `deno task segment` makes (`lib/checkpoint_check.js`:
 * the files model.json names, their sizes, layer classes, finite weights), so that the page
 * and the Deno scripts give the same one-line verdict on the same folder.
 */
async function loadCheckedModel(name) {
  const { modelJson, weightSpecs, weightData } = await fetchCheckedCheckpoint(
    `/checkpoints/${encodeURIComponent(name)}`,
    {
      where: `checkpoints/${name}`,
      fix: "train it again with --overwrite to replace it",
      knownLayer: (className) =>
        className in tf.serialization.SerializationMap.getMap().classNameMap,
    },
  );
  return await tf.loadLayersModel(tf.io.fromMemory({
    modelTopology: modelJson.modelTopology,
    weightSpecs,
    weightData,
    format: modelJson.format,
    generatedBy: modelJson.generatedBy,
    convertedBy: modelJson.convertedBy,
  }));
}

async function loadCheckpoint(name) {
  say(`Loading checkpoint ${name}…`, "loading");
  const model = await loadCheckedModel(name);
  const [, inputSize] = model.inputs[0].shape;
  const [, outputSize, , channels] = model.outputs[0].shape;
  classesOf(channels); // refuses a model of another kind
  tf.tidy(() => model.predict(tf.zeros([1, inputSize, inputSize, 3]))); // warm-up: kernels ready
  loaded?.model.dispose();
  loaded = { model, name, inputSize, outputSize, channels };
  say(
    `Checkpoint ${name}: input ${inputSize}x${inputSize}, backend ${tf.getBackend()}. ` +
      `Pick or drop a photo.`,
    "ready",
  );
}

/** Draws RGBA pixels on a canvas of their size. */
function show(canvas, rgba, width, height) {
  canvas.width = width;
  canvas.height = height;
  canvas.getContext("2d").putImageData(new ImageData(rgba, width, height), 0, 0);
}

async function segment(file) {
  if (!loaded) return;
  const started = performance.now();
  say(`Segmenting ${file.name}…`, "working");
  // As the dataset reader (sharp): EXIF orientation applied, a photo with a colour profile
  // converted to sRGB (sharp and Chromium may then differ by one level here and there), the
  // colour under alpha kept, then alpha dropped.
  const bitmap = await createImageBitmap(file, {
    imageOrientation: "from-image",
    colorSpaceConversion: "default",
    premultiplyAlpha: "none",
  });
  const { width, height } = bitmap;
  const photoCanvas = document.getElementById("photo-canvas");
  photoCanvas.width = width;
  photoCanvas.height = height;
  const context = photoCanvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(bitmap, 0, 0);
  // Through a WebGL texture, which keeps the colour under alpha; else the canvas's pixels
  const rgba = texturePixels(bitmap) ?? context.getImageData(0, 0, width, height).data;
  bitmap.close();
  const { model, inputSize, outputSize, channels } = loaded;
  const pixels = resizeBilinear(
    { data: rgbaToRgb(rgba), width, height, channels: 3 },
    inputSize,
    inputSize,
  );
  const classMap = tf.tidy(() => {
    const probabilities = model.predict(tf.tensor4d(pixels, [1, inputSize, inputSize, 3]));
    return channels === 1
      ? tf.cast(tf.greaterEqual(probabilities, 0.5), "int32") // [1, out, out, 1]
      : tf.argMax(probabilities, 3); // [1, out, out]
  });
  const map = await classMap.data();
  classMap.dispose();
  const classes = classMapToPhoto(map, { outputSize, inputSize, width, height });
  const { names, colors } = classesOf(channels);
  show(document.getElementById("class-map"), paintMask(classes, colors, 4), width, height);
  show(document.getElementById("overlay"), paintOverlay(rgba, classes, colors, 4), width, height);
  const ms = performance.now() - started;
  const shares = classShares(classes, names.length);
  document.getElementById("shares").textContent = `${file.name}: ${formatShares(shares, names)}`;
  globalThis.segmentResult = { name: file.name, width, height, shares, ms };
  say(
    `${file.name} (${width}x${height}) segmented in ${ms.toFixed(0)} ms with ${loaded.name} ` +
      `on ${tf.getBackend()}.`,
    "done",
  );
}

async function guarded(work) {
  try {
    await work();
  } catch (error) {
    say(`Error: ${error instanceof Error ? error.message : error}`, "error");
  }
}

input.addEventListener("change", () => {
  const file = input.files?.[0];
  if (file) guarded(() => segment(file));
});
drop.addEventListener("dragover", (event) => {
  event.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  const file = event.dataTransfer?.files?.[0];
  if (file) guarded(() => segment(file));
});
select.addEventListener("change", () => guarded(() => loadCheckpoint(select.value)));

guarded(async () => {
  registerCustomLayers(tf);
  const backend = await chooseBackend();
  say(`TensorFlow.js ${tf.version.tfjs} on ${backend}; listing checkpoints…`, "loading");
  const checkpoints = await (await fetch("/checkpoints/")).json();
  if (checkpoints.length === 0) {
    say("No checkpoints served yet: train one (deno task unetlike), then reload.", "error");
    return;
  }
  for (const entry of checkpoints) {
    const option = document.createElement("option");
    option.value = entry.name;
    option.textContent = entry.model && entry.model !== entry.name
      ? `${entry.name} (${entry.model})`
      : entry.name;
    select.append(option);
  }
  const names = checkpoints.map((entry) => entry.name);
  const wanted = params.get("checkpoint");
  if (wanted && !names.includes(wanted)) {
    say(`No checkpoint named ${wanted}; served: ${names.join(", ")}`, "error");
    return;
  }
  select.value = wanted ?? (names.includes("unetlike") ? "unetlike" : names[0]);
  await loadCheckpoint(select.value);
});
