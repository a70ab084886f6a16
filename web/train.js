/**
 * The training page: a form, and the pictures of what the worker
 * (`build/train_worker.js`, built from `train_worker.ts`) reports. Nothing
 * heavy runs here, so the page stays responsive while the network trains:
 * each message updates a line, the loss curve (redrawn once per frame) or the
 * small prediction canvases.
 *
 * The data: the synthetic newts (drawn in the worker), the dataset the server
 * serves at `/data/` (`deno task serve --data`), or a folder in the Imori
 * layout the user picks or drops; its files go to the worker, which pairs,
 * decodes and checks them as the Deno dataset reader does. Once trained, a
 * photo picked is segmented in the worker by the network just trained.
 *
 * URL parameters: `backend=auto|wasm|webgl|webgpu|cpu` (default auto: WebGL on
 * a real GPU, wasm elsewhere), `exercise=<name>` the exercise first shown.
 *
 * @module
 */
const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const form = $("controls");
const fields = { size: $("size"), batchSize: $("batch"), iters: $("iters"), lr: $("lr") };

/** What the tests read: the run's reports as the worker sent them. */
const log = {
  losses: [],
  numTensors: [],
  ms: [],
  msPerIter: 0,
  line: "",
  backend: "",
  kernels: "",
};
globalThis.trainLog = log;

/** @type {{ modelJson: string, weights: Uint8Array, trainingState: string } | undefined} */
let checkpoint;
/** The files of the folder picked or dropped, with their paths. */
let dropped = [];
let total = 0;
let curvePending = false;

function say(text, state) {
  $("status").textContent = text;
  $("status").dataset.state = state;
}

function formatSeconds(seconds) {
  if (!Number.isFinite(seconds)) return "?";
  return seconds < 60
    ? `${seconds.toFixed(0)} s`
    : `${Math.floor(seconds / 60)} min ${(seconds % 60).toFixed(0)} s`;
}

/** The last iteration reported, shown at the next frame. */
let latest;

/** When the first iteration was reported: the rate leaves out the setup before it. */
let firstReport;

function drawProgress() {
  if (!latest) return drawCurve(); // the run ended: its last line is already there
  const seconds = (performance.now() - firstReport.at) / 1000;
  const done = latest.iteration - firstReport.iteration;
  const rate = done > 0 && seconds > 0 ? done / seconds : undefined;
  $("progress").textContent = `iteration ${latest.iteration} of ${total}, loss ` +
    `${latest.loss.toFixed(4)}` +
    (rate === undefined
      ? ""
      : `, ${rate.toFixed(1)} it/s, ${formatSeconds((total - latest.iteration) / rate)} left`);
  drawCurve();
}

/** Clears what a previous run left: progress, curve, predictions, metrics, segmented photo. */
function clearResults() {
  $("progress").textContent = "";
  const curve = $("loss-curve");
  curve.getContext("2d").clearRect(0, 0, curve.width, curve.height);
  $("predictions").replaceChildren();
  $("predictions-caption").textContent = "test photos: photo, truth, prediction";
  $("metrics").textContent = "";
  $("files").textContent = "";
  $("download").disabled = true;
  $("photo").disabled = true;
  for (const id of ["class-map", "overlay"]) {
    $(id).width = 0;
    $(id).height = 0;
  }
  $("shares").textContent = "";
  checkpoint = undefined;
}

function drawCurve() {
  curvePending = false;
  const canvas = $("loss-curve");
  const context = canvas.getContext("2d");
  const { width, height } = canvas;
  context.clearRect(0, 0, width, height);
  const losses = log.losses;
  if (losses.length === 0) return;
  const top = Math.max(...losses);
  context.strokeStyle = "#999";
  context.strokeRect(0.5, 0.5, width - 1, height - 1);
  context.fillStyle = "#333";
  context.font = "12px system-ui, sans-serif";
  context.fillText(`${top.toFixed(3)}`, 4, 14);
  context.fillText(`iteration ${losses.length} of ${total}`, width - 120, height - 6);
  context.strokeStyle = "#c33";
  context.beginPath();
  losses.forEach((loss, index) => {
    const x = (index / Math.max(1, total - 1)) * (width - 2) + 1;
    const y = height - 1 - (loss / top) * (height - 20);
    if (index === 0) context.moveTo(x, y);
    else context.lineTo(x, y);
  });
  context.stroke();
}

function picture(rgba, size) {
  const canvas = document.createElement("canvas");
  canvas.width = size;
  canvas.height = size;
  canvas.getContext("2d").putImageData(
    new ImageData(new Uint8ClampedArray(rgba), size, size),
    0,
    0,
  );
  return canvas;
}

function showPredictions({ iteration, size, photos }) {
  const cells = photos.flatMap((one) => {
    const cell = [picture(one.photo, size), picture(one.truth, size), picture(one.predicted, size)];
    cell[0].title = one.name;
    return cell;
  });
  $("predictions").replaceChildren(...cells);
  $("predictions-caption").textContent =
    `test photos at iteration ${iteration}: photo, truth, prediction`;
}

function setRunning(running) {
  $("train").disabled = running;
  $("stop").disabled = !running;
  for (const input of form.querySelectorAll("input, select")) input.disabled = running;
  if (running) $("photo").disabled = true;
}

/** Offers a data source in the select, and picks it. */
function offerSource(value, label, pick) {
  const option = $("source").querySelector(`option[value="${value}"]`);
  option.textContent = label;
  option.disabled = false;
  if (pick) $("source").value = value;
}

/** The dataset the server serves next to the page, if any. */
fetch("data/").then(async (response) => {
  const listing = response.ok ? await response.json() : {};
  if (!listing.name) return;
  offerSource("served", `${listing.name} photos served with the page`, false);
}).catch(() => {});

function useFolder(files) {
  dropped = files.filter((one) => one.path.includes("/"));
  const name = dropped[0]?.path.split("/")[0] ?? "";
  offerSource("dropped", `your folder ${name} (${dropped.length} files)`, true);
}

$("folder").addEventListener("change", () => {
  useFolder([...$("folder").files].map((file) => ({ path: file.webkitRelativePath, file })));
});

/** Every file under a dropped folder entry, with its path from the folder on. */
async function filesOf(entry) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    return [{ path: entry.fullPath.replace(/^\//, ""), file }];
  }
  const reader = entry.createReader();
  const entries = [];
  for (;;) {
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (batch.length === 0) break;
    entries.push(...batch);
  }
  return (await Promise.all(entries.map(filesOf))).flat();
}

document.body.addEventListener("dragover", (event) => event.preventDefault());
document.body.addEventListener("drop", async (event) => {
  const entry = [...(event.dataTransfer?.items ?? [])][0]?.webkitGetAsEntry?.();
  if (!entry) return;
  event.preventDefault();
  if (!entry.isDirectory) {
    say("Drop a folder in the Imori layout (train/ and test/ in it), not a file", "error");
    return;
  }
  useFolder(await filesOf(entry));
});

const worker = new Worker("build/train_worker.js", { type: "module" });
let exercises = [];

function describe() {
  const exercise = exercises.find((one) => one.name === $("exercise").value);
  if (!exercise || !log.backend) return; // the backend first: describing builds a network
  worker.postMessage({
    type: "describe",
    exercise: exercise.name,
    size: Number(fields.size.value),
  });
}

worker.onmessage = ({ data }) => {
  switch (data.type) {
    case "loaded": {
      exercises = data.exercises;
      for (const exercise of exercises) $("exercise").append(new Option(exercise.name));
      const wanted = params.get("exercise");
      $("exercise").value = exercises.some((one) => one.name === wanted) ? wanted : "nearest";
      say(`TensorFlow.js ${data.tfjs} loaded in a worker; starting the backend…`, "loading");
      worker.postMessage({ type: "init", backend: params.get("backend") ?? "auto" });
      break;
    }
    case "backend":
      log.backend = data.name;
      log.kernels = data.kernels;
      $("backend").textContent = `Backend: ${data.name} (${data.reason})` +
        (data.kernels ? `, ${data.kernels}.` : ".");
      setProtocol();
      describe();
      break;
    case "described":
      if (data.error) {
        say(`Error: ${data.error}`, "error");
        $("layers").textContent = ""; // the table of a size that works would mislead
        $("train").disabled = true;
        break;
      }
      $("idea").textContent = data.idea.join(" ");
      $("protocol").textContent = `The tutorial's protocol: size ${data.protocol.size}, ` +
        `minibatch ${data.protocol.batchSize}, ${data.protocol.iters} iterations, learning ` +
        `rate ${data.protocol.lr} (SGD with momentum 0.9); edit any of them above.`;
      $("layers").textContent = data.summary;
      $("train").disabled = false;
      say(`Ready: ${$("exercise").value}. Press Train.`, "ready");
      break;
    case "data":
      say(data.text, "training");
      break;
    case "iteration": {
      if (log.losses.length === 0) {
        firstReport = { at: performance.now(), iteration: data.iteration };
      }
      log.losses.push(data.loss);
      log.numTensors.push(data.numTensors);
      log.ms.push(data.ms);
      latest = data;
      if (!curvePending) {
        // The progress line and the curve once per frame, however fast the iterations come
        curvePending = true;
        requestAnimationFrame(drawProgress);
      }
      break;
    }
    case "predictions":
      showPredictions(data);
      break;
    case "segmented": {
      for (const id of ["class-map", "overlay"]) {
        const canvas = $(id);
        canvas.width = data.width;
        canvas.height = data.height;
        canvas.getContext("2d").putImageData(
          new ImageData(id === "class-map" ? data.classMap : data.overlay, data.width, data.height),
          0,
          0,
        );
      }
      $("shares").textContent = data.shares;
      globalThis.segmentResult = { name: data.name, ms: data.ms };
      say(
        `${data.name} (${data.width}x${data.height}) segmented in ${data.ms.toFixed(0)} ms ` +
          `by the ${data.network} network just trained.`,
        "segmented",
      );
      break;
    }
    case "done": {
      log.msPerIter = data.msPerIter;
      log.line = data.line;
      log.endTensors = data.numTensors;
      checkpoint = data.checkpoint;
      setRunning(false);
      drawCurve();
      $("metrics").textContent = `train: ${data.iteration} iterations, ` +
        `${data.msPerIter.toFixed(1)} ms/iteration on ${log.backend}\n${data.line}`;
      $("backend").textContent = $("backend").textContent.replace(/ [\d.]+ ms\/iteration\.$/, "") +
        ` ${data.msPerIter.toFixed(1)} ms/iteration.`;
      $("download").disabled = false;
      $("photo").disabled = false;
      $("files").textContent = "model.json, weights.bin and training_state.json: put them in " +
        `checkpoints/${data.exercise}/ for deno task segment`;
      const stopped = data.iteration < total;
      latest = undefined;
      $("progress").textContent = `${data.iteration} of ${total} iterations, last loss ` +
        `${(log.losses.at(-1) ?? NaN).toFixed(4)}`;
      say(
        `${stopped ? "Stopped" : "Done"} after ${data.iteration} iterations.`,
        stopped ? "stopped" : "done",
      );
      break;
    }
    case "error":
      setRunning(false);
      clearResults(); // nothing on screen belongs to a run that failed
      say(`Error: ${data.message}`, "error");
      break;
  }
};
worker.onerror = (event) => say(`Error: the worker failed: ${event.message}`, "error");

function setProtocol() {
  const exercise = exercises.find((one) => one.name === $("exercise").value);
  if (!exercise) return;
  for (const [name, input] of Object.entries(fields)) input.value = exercise.protocol[name];
}

$("exercise").addEventListener("change", () => {
  setProtocol();
  describe();
});
fields.size.addEventListener("change", describe);

form.addEventListener("submit", (event) => {
  event.preventDefault();
  total = Number(fields.iters.value);
  log.losses = [];
  log.numTensors = [];
  log.ms = [];
  clearResults();
  setRunning(true);
  worker.postMessage({
    type: "train",
    exercise: $("exercise").value,
    size: Number(fields.size.value),
    batchSize: Number(fields.batchSize.value),
    iters: total,
    lr: Number(fields.lr.value),
    seed: Number($("seed").value),
    every: Number($("every").value),
    source: $("source").value === "dropped"
      ? { kind: "dropped", files: dropped }
      : { kind: $("source").value },
  });
});
$("stop").addEventListener("click", () => worker.postMessage({ type: "stop" }));
$("photo").addEventListener("change", () => {
  const file = $("photo").files?.[0];
  if (!file) return;
  say(`Segmenting ${file.name}…`, "working");
  worker.postMessage({ type: "segment", name: file.name, file });
});

$("download").addEventListener("click", () => {
  if (!checkpoint) return;
  const files = [
    ["model.json", checkpoint.modelJson, "application/json"],
    ["weights.bin", checkpoint.weights, "application/octet-stream"],
    ["training_state.json", checkpoint.trainingState, "application/json"],
  ];
  for (const [name, content, type] of files) {
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([content], { type }));
    link.download = name;
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
  }
});
