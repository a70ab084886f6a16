/**
 * The training page's Web Worker: everything that computes runs here, so the
 * page never freezes. Bundled with TensorFlow.js into `web/build/train_worker.js`
 * by `deno task build_web`.
 *
 * Messages in: `{ type: "init", backend }` first (the backend stays for the
 * worker's life; the page starts another worker for another backend), then
 * `{ type: "describe", exercise, size }` (the idea, protocol and layer table),
 * `{ type: "train", exercise, size, batchSize, iters, lr, seed, every, source }`
 * (`source`: the synthetic newts, the dataset the server serves, or the files
 * of a dropped folder), `{ type: "stop" }`, and once trained
 * `{ type: "segment", name, file }` (a photo segmented by the network just
 * trained, as `deno task segment` does). Messages out: `loaded` (on start),
 * `backend`, `described`, `data`, `iteration`, `predictions`, `done`,
 * `segmented`, `error` (see `web/train.js`, which reads them).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { registerBrowserKernels } from "../engine/browser.ts";
import { type BackendWish, chooseBackend } from "./backend.ts";
import { lessonNamed, LESSONS } from "./lessons.ts";
import { type LessonData, type PredictionPictures, trainLesson } from "./training.ts";
import { droppedData, type DroppedFile, servedData } from "./page_data.ts";
import { decodeFile } from "./decode.ts";
import { checkSize, modelSummary } from "../lib/network.ts";
import { classesOf } from "../lib/classes.js";
import {
  classMapToPhoto,
  classShares,
  formatShares,
  paintMask,
  paintOverlay,
  resizeBilinear,
} from "../lib/segment_pixels.js";

/** The worker's global scope, as far as this module uses it. */
interface WorkerScope {
  postMessage(message: unknown, transfer?: Transferable[]): void;
  onmessage: ((event: { data: Request }) => void) | null;
}

/** What the page asks. */
type Request =
  | { type: "init"; backend: BackendWish }
  | { type: "describe"; exercise: string; size: number }
  | {
    type: "train";
    exercise: string;
    size: number;
    batchSize: number;
    iters: number;
    lr: number;
    seed: number;
    every: number;
    source: DataSource;
  }
  | { type: "segment"; name: string; file: Blob }
  | { type: "stop" };

/** The photos to train on. */
type DataSource =
  | { kind: "synthetic" }
  | { kind: "served" }
  | { kind: "dropped"; files: DroppedFile[] };

const scope = globalThis as unknown as WorkerScope;

/** Lets the page's messages (Stop) in between iterations, without a timer's clamping. */
function yieldToMessages(): Promise<void> {
  const channel = new MessageChannel();
  return new Promise((resolve) => {
    channel.port1.onmessage = () => {
      channel.port1.close();
      resolve();
    };
    channel.port2.postMessage(undefined);
  });
}

/**
 * An error's message in the page's words: the command-line flags the shared code names become
 * the page's fields, and the page keeps no checkpoint that could have been saved before.
 */
function message(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text
    .replaceAll("--batch-size", "Minibatch")
    .replaceAll("--size", "Size")
    .replaceAll("--iters", "Iterations")
    .replace(/--lr (\S+)/g, "Learning rate $1")
    .replace("; any checkpoint saved before it is kept", "");
}

function describe(exercise: string, size: number): void {
  const lesson = lessonNamed(exercise);
  try {
    checkSize(lesson.name, size, lesson.outputSize);
  } catch (error) {
    scope.postMessage({ type: "described", exercise, error: message(error) });
    return;
  }
  // Built for its table only, and disposed at once
  const model = lesson.build(size);
  try {
    scope.postMessage({
      type: "described",
      exercise,
      idea: lesson.idea,
      protocol: lesson.protocol,
      summary: modelSummary(model),
    });
  } finally {
    model.dispose();
  }
}

let running: AbortController | undefined;

/**
 * Starts the backend the page asks for; with wasm, the engine's kernels and its SIMD kernels
 * (`/vendor/engine-simd.wasm`, served by `deno task serve`), as Deno's pure wasm path runs them.
 */
async function startBackend(wish: BackendWish): Promise<void> {
  let kernels = "";
  const choice = await chooseBackend(wish, {
    registerKernels: async (name) => {
      const simd = name !== "wasm" ? undefined : await fetch(
        new URL(
          "../vendor/engine-simd.wasm",
          (globalThis as unknown as { location: URL }).location,
        ),
      )
        .then((response) => response.ok ? response.arrayBuffer() : undefined, () => undefined);
      kernels = await registerBrowserKernels(name, { simd });
    },
  });
  scope.postMessage({ type: "backend", name: choice.name, reason: choice.reason, kernels });
}
/** The network trained last, which segments the photos the page sends. */
let trained: { model: tf.LayersModel; name: string; size: number } | undefined;

/** The photos of a source, decoded; undefined for the synthetic newts (drawn by trainLesson). */
async function dataOf(source: DataSource, size: number): Promise<LessonData | undefined> {
  if (source.kind === "synthetic") {
    scope.postMessage({
      type: "data",
      text: `data: the synthetic newts drawn here (seed 1, 8 + 3 photos per species), ` +
        `${size}x${size}, training photos x 4 flips`,
    });
    return undefined;
  }
  const onProgress = (done: number, total: number) =>
    scope.postMessage({ type: "data", text: `data: decoding photo ${done} of ${total}…` });
  const data = source.kind === "served"
    ? await servedData(
      new URL("..", (globalThis as unknown as { location: URL }).location).href,
      onProgress,
    )
    : await droppedData(source.files, onProgress);
  scope.postMessage({
    type: "data",
    text: `data: ${data.train.length} training photos (x 4 flips) and ${data.test.length} test ` +
      `photos from ${data.name} at ${size}x${size}`,
  });
  return data;
}

async function train(request: Extract<Request, { type: "train" }>): Promise<void> {
  if (running) throw new Error("Already training: stop first");
  running = new AbortController();
  try {
    const lesson = lessonNamed(request.exercise);
    checkSize(lesson.name, request.size, lesson.outputSize); // before any photo is decoded
    const data = await dataOf(request.source, request.size);
    trained?.model.dispose();
    trained = undefined;
    const result = await trainLesson(lesson, {
      ...request,
      data,
      signal: running.signal,
      onIteration: async (report) => {
        scope.postMessage({ type: "iteration", ...report });
        await yieldToMessages();
      },
      onPredictions: (pictures: PredictionPictures) => {
        const buffers = pictures.photos.flatMap((photo) => [
          photo.photo.buffer,
          photo.truth.buffer,
          photo.predicted.buffer,
        ]) as ArrayBuffer[];
        scope.postMessage({ type: "predictions", ...pictures }, buffers);
      },
    });
    trained = { model: result.model, name: lesson.name, size: request.size };
    const weights = result.checkpoint.weights;
    scope.postMessage({
      type: "done",
      exercise: lesson.name,
      iteration: result.iteration,
      losses: result.losses,
      msPerIter: result.msPerIter,
      metrics: result.metrics,
      line: result.line,
      numTensors: tf.memory().numTensors,
      checkpoint: { ...result.checkpoint, weights },
    }, [weights.buffer as ArrayBuffer]);
  } finally {
    running = undefined;
  }
}

/**
 * Segments a photo with the network just trained, as `deno task segment`
 * does (`lib/segment_pixels.js`): resized bilinearly to the input, argmax
 * (or the 0.5 threshold of a one-channel network), the class map brought
 * back to the photo's size by nearest neighbour and painted.
 */
async function segment(request: Extract<Request, { type: "segment" }>): Promise<void> {
  if (!trained) throw new Error("Train a network first");
  const started = performance.now();
  const photo = await decodeFile(request.file, { what: "image", path: request.name });
  const { model, size } = trained;
  const [, outputSize, , channels] = model.outputs[0]!.shape as number[];
  const classMap = tf.tidy(() => {
    const input = tf.tensor4d(resizeBilinear(photo, size, size), [1, size, size, 3]);
    const probabilities = model.predict(input) as tf.Tensor4D; // [1, out, out, classes]
    return channels === 1
      ? tf.cast(tf.greaterEqual(probabilities, 0.5), "int32") // [1, out, out, 1]
      : tf.argMax(probabilities, 3); // [1, out, out]
  });
  const map = await classMap.data();
  classMap.dispose();
  const { width, height } = photo;
  const classes = classMapToPhoto(map, { outputSize: outputSize!, inputSize: size, width, height });
  const { names, colors } = classesOf(channels!);
  const rgba = new Uint8ClampedArray(width * height * 4);
  for (let pixel = 0; pixel < width * height; pixel++) {
    rgba.set(photo.data.subarray(3 * pixel, 3 * pixel + 3), 4 * pixel);
    rgba[4 * pixel + 3] = 255;
  }
  const painted = paintMask(classes, colors, 4);
  const overlay = paintOverlay(rgba, classes, colors, 4);
  scope.postMessage({
    type: "segmented",
    name: request.name,
    width,
    height,
    classMap: painted,
    overlay,
    shares: `${request.name}: ${formatShares(classShares(classes, names.length), names)}`,
    ms: performance.now() - started,
    network: trained.name,
  }, [painted.buffer as ArrayBuffer, overlay.buffer as ArrayBuffer]);
}

scope.onmessage = (event) => {
  const request = event.data;
  if (request.type === "stop") {
    running?.abort();
    return;
  }
  const work = request.type === "init"
    ? startBackend(request.backend)
    : request.type === "describe"
    ? Promise.resolve().then(() => describe(request.exercise, request.size))
    : request.type === "segment"
    ? segment(request)
    : train(request);
  work.catch((error) => scope.postMessage({ type: "error", message: message(error) }));
};

scope.postMessage({
  type: "loaded",
  tfjs: tf.version.tfjs,
  exercises: LESSONS.map((lesson) => ({ name: lesson.name, protocol: lesson.protocol })),
});
