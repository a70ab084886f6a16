/**
 * The training page's Web Worker: everything that computes runs here, so the
 * page never freezes. Bundled with TensorFlow.js into `web/build/train_worker.js`
 * by `deno task build_web`.
 *
 * Messages in: `{ type: "init", backend }` first (the backend stays for the
 * worker's life; the page starts another worker for another backend), then
 * `{ type: "describe", exercise, size }` (the idea, protocol and layer table),
 * `{ type: "train", exercise, size, batchSize, iters, lr, seed, every }`,
 * `{ type: "stop" }`. Messages out: `loaded` (on start), `backend`,
 * `described`, `data`, `iteration`, `predictions`, `done`, `error` (see
 * `web/train.js`, which reads them).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { registerBrowserKernels } from "../engine/browser.ts";
import { type BackendWish, chooseBackend } from "./backend.ts";
import { lessonNamed, LESSONS } from "./lessons.ts";
import { type PredictionPictures, trainLesson } from "./training.ts";
import { checkSize, modelSummary } from "../lib/network.ts";

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
  }
  | { type: "stop" };

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

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
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

async function train(request: Extract<Request, { type: "train" }>): Promise<void> {
  if (running) throw new Error("Already training: stop first");
  running = new AbortController();
  try {
    const lesson = lessonNamed(request.exercise);
    scope.postMessage({
      type: "data",
      text: `data: the synthetic newts drawn here (seed 1, 8 + 3 photos per species), ` +
        `${request.size}x${request.size}, training photos x 4 flips`,
    });
    const result = await trainLesson(lesson, {
      ...request,
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
    result.model.dispose();
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
    : train(request);
  work.catch((error) => scope.postMessage({ type: "error", message: message(error) }));
};

scope.postMessage({
  type: "loaded",
  tfjs: tf.version.tfjs,
  exercises: LESSONS.map((lesson) => ({ name: lesson.name, protocol: lesson.protocol })),
});
