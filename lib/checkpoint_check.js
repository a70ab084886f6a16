/**
 * The checks of a checkpoint's files before TensorFlow.js reads them, in
 * plain JavaScript with no Deno API, so that `loadCheckpoint` (Deno) and the
 * page in `web/` (a browser) give the same one-line verdict on the same
 * folder: `model.json` holds a topology and a weights manifest, every layer
 * class it names is one this TensorFlow.js knows, every file the manifest
 * names is there with exactly the bytes its entries need, and every float
 * weight is finite (batch-norm variances not negative).
 *
 * @module
 */

const DTYPE_BYTES = {
  float32: 4,
  int32: 4,
  bool: 1,
  complex64: 8,
  uint8: 1,
  uint16: 2,
  float16: 2,
};

/**
 * An error of the checkpoint's files, named `UserError` so that the Deno
 * scripts print it as one line.
 *
 * @param {string} message
 * @returns {Error}
 */
function checkpointError(message) {
  const error = new Error(message);
  error.name = "UserError";
  return error;
}

/**
 * Every layer class name in a Keras/TensorFlow.js topology, nested models included.
 *
 * @param {unknown} topology The `modelTopology` of a `model.json`.
 * @returns {string[]} The class names, in order, each once.
 *
 * @example
 * ```ts
 * import { layerClasses } from "./checkpoint_check.js";
 * import { assertEquals } from "./assert.ts";
 * const topology = { class_name: "Functional", config: { layers: [
 *   { class_name: "InputLayer", config: {} }, { class_name: "Conv2D", config: {} },
 * ] } };
 * assertEquals(layerClasses(topology), ["InputLayer", "Conv2D"]);
 * ```
 */
export function layerClasses(topology) {
  const found = new Set();
  const walk = (node) => {
    const layers = node?.config?.layers ?? node?.model_config?.config?.layers;
    if (!Array.isArray(layers)) return;
    for (const layer of layers) {
      if (typeof layer?.class_name === "string") found.add(layer.class_name);
      walk(layer);
    }
  };
  walk(topology);
  return [...found];
}

/**
 * Reads and checks the weights of a checkpoint folder, throwing one line
 * that names the file, what is wrong and the fix.
 *
 * @param {any} modelJson The parsed `model.json`.
 * @param {(name: string) => Promise<Uint8Array | undefined>} readFile Reads a file of the
 *   folder by name; `undefined` when it is missing.
 * @param {{ where: string, fix: string, knownLayer: (className: string) => boolean }} options
 *   The folder as messages name it, the fix that ends each message (e.g. "run `deno task
 *   nearest` again to rewrite it"), and whether a layer class is registered.
 * @returns {Promise<{ weightSpecs: any[], weightData: ArrayBuffer }>} The manifest's entries
 *   and their bytes, joined in manifest order.
 * @throws {Error} Named `UserError`, for a topology or manifest that is not one, an unknown
 *   layer class, a missing file, a file of the wrong size, or a weight that is not finite.
 *
 * @example
 * ```ts
 * import { readCheckedWeights } from "./checkpoint_check.js";
 * import { assertRejects } from "./assert.ts";
 * const modelJson = {
 *   modelTopology: { config: { layers: [{ class_name: "Dense", config: {} }] } },
 *   weightsManifest: [{ paths: ["weights.bin"], weights: [{ name: "w", shape: [2], dtype: "float32" }] }],
 * };
 * const read = (_name: string) => Promise.resolve(new Uint8Array(new Float32Array([1, NaN]).buffer));
 * await assertRejects(
 *   readCheckedWeights(modelJson, read, { where: "ck", fix: "retrain", knownLayer: () => true }),
 *   /ck\/weights.bin holds a non-finite value \(NaN\) in weight w/,
 * );
 * ```
 */
export async function readCheckedWeights(modelJson, readFile, options) {
  const { where, fix, knownLayer } = options;
  const manifestFile = `${where}/model.json`;
  const manifest = modelJson?.weightsManifest;
  if (
    typeof modelJson?.modelTopology !== "object" || modelJson.modelTopology === null ||
    !Array.isArray(manifest) ||
    !manifest.every((group) =>
      Array.isArray(group?.paths) && group.paths.every((path) => typeof path === "string") &&
      validSpecs(group?.weights)
    )
  ) {
    throw checkpointError(
      `Checkpoint file ${manifestFile} is damaged (JSON, but not a model topology with a ` +
        `weights manifest); ${fix}`,
    );
  }
  const unknown = layerClasses(modelJson.modelTopology).filter((name) => !knownLayer(name));
  if (unknown.length > 0) {
    throw checkpointError(
      `Checkpoint file ${manifestFile} names layer class${unknown.length > 1 ? "es" : ""} ` +
        `${unknown.join(", ")}, which this TensorFlow.js does not have (a checkpoint of ` +
        `another program or version); ${fix}`,
    );
  }
  const weightSpecs = [];
  const parts = [];
  for (const group of manifest) {
    const chunks = [];
    for (const path of group.paths) {
      const bytes = await readFile(path);
      if (bytes === undefined) {
        throw checkpointError(
          `Checkpoint file ${where}/${path} is missing; ${fix}`,
        );
      }
      chunks.push(bytes);
    }
    const bytes = join(chunks);
    const needed = weightBytes(group.weights);
    if (needed !== undefined && bytes.byteLength !== needed) {
      throw checkpointError(
        `Checkpoint file ${where}/${group.paths.join("+")} has ${bytes.byteLength} bytes but ` +
          `its model.json needs ${needed} (${
            bytes.byteLength < needed ? "cut short" : "too long"
          }); ${fix}`,
      );
    }
    checkFinite(bytes, group.weights, `${where}/${group.paths.join("+")}`, fix);
    weightSpecs.push(...group.weights);
    parts.push(bytes);
  }
  const weightData = join(parts);
  return {
    weightSpecs,
    weightData: weightData.buffer.slice(
      weightData.byteOffset,
      weightData.byteOffset + weightData.byteLength,
    ),
  };
}

/**
 * Checks the float32 weights of a weights file: each value finite, and each
 * batch-norm variance (`moving_variance`) not negative.
 *
 * @param {Uint8Array} bytes The weights, in manifest order.
 * @param {any[]} specs The manifest entries.
 * @param {string} file The file, as the message names it.
 * @param {string} fix The end of the message.
 * @throws {Error} Named `UserError`, naming the file and the weight.
 *
 * @example
 * ```ts
 * import { checkFinite } from "./checkpoint_check.js";
 * import { assertThrows } from "./assert.ts";
 * const bytes = new Uint8Array(new Float32Array([-1]).buffer);
 * const specs = [{ name: "bn/moving_variance", shape: [1], dtype: "float32" }];
 * assertThrows(() => checkFinite(bytes, specs, "w.bin", "retrain"), Error, "negative");
 * ```
 */
export function checkFinite(bytes, specs, file, fix) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = 0;
  for (const spec of specs) {
    const dtype = spec.quantization?.dtype ?? spec.dtype;
    const count = spec.shape.reduce((product, length) => product * length, 1);
    const size = DTYPE_BYTES[dtype];
    if (size === undefined) return; // string weights: sizes unknown from here on
    if (dtype === "float32") {
      const variance = /moving_variance$/.test(spec.name);
      for (let index = 0; index < count; index++) {
        const value = view.getFloat32(offset + 4 * index, true);
        if (!Number.isFinite(value) || (variance && value < 0)) {
          const what = Number.isFinite(value)
            ? `a negative batch-norm variance (${value})`
            : `a non-finite value (${value})`;
          throw checkpointError(
            `Checkpoint file ${file} holds ${what} in weight ${spec.name}, so the run that saved ` +
              `it went wrong and its predictions would be meaningless; ${fix}`,
          );
        }
      }
    }
    offset += size * count;
  }
}

/**
 * Whether `specs` is a list of weight entries, each with a name, a shape and a dtype.
 *
 * @param {unknown} specs
 * @returns {boolean}
 *
 * @example
 * ```ts
 * import { validSpecs } from "./checkpoint_check.js";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(validSpecs([{ name: "w", shape: [2], dtype: "float32" }]), true);
 * assertEquals(validSpecs([{ name: "w", shape: ["2"], dtype: "float32" }]), false);
 * ```
 */
export function validSpecs(specs) {
  return Array.isArray(specs) &&
    specs.every((spec) =>
      typeof spec?.name === "string" && typeof spec?.dtype === "string" &&
      Array.isArray(spec?.shape) && spec.shape.every(Number.isInteger)
    );
}

/**
 * The bytes a weights file must have for its manifest entries, or
 * `undefined` when they cannot be known (string weights).
 *
 * @param {any[]} specs
 * @returns {number | undefined}
 *
 * @example
 * ```ts
 * import { weightBytes } from "./checkpoint_check.js";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(weightBytes([{ name: "w", shape: [2, 3], dtype: "float32" }]), 24);
 * ```
 */
export function weightBytes(specs) {
  let total = 0;
  for (const spec of specs) {
    const size = DTYPE_BYTES[spec.quantization?.dtype ?? spec.dtype];
    if (size === undefined) return undefined;
    total += size * spec.shape.reduce((product, length) => product * length, 1);
  }
  return total;
}

/** @param {Uint8Array[]} chunks @returns {Uint8Array} */
function join(chunks) {
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

/**
 * Fetches a served checkpoint folder and checks it as {@linkcode readCheckedWeights}
 * does: what the page runs, so that it gives the verdict `loadCheckpoint` gives.
 *
 * @param {string} base The folder's address, e.g. `/checkpoints/unetlike`.
 * @param {{ where: string, fix: string, knownLayer: (className: string) => boolean,
 *   fetch?: typeof fetch }} options As for `readCheckedWeights`, and the fetch to use.
 * @returns {Promise<{ modelJson: any, weightSpecs: any[], weightData: ArrayBuffer }>}
 * @throws {Error} Named `UserError`, as `readCheckedWeights`, or for a `model.json` that is
 *   missing or not JSON.
 *
 * @example
 * ```ts
 * import { fetchCheckedCheckpoint } from "./checkpoint_check.js";
 * import { assertRejects } from "./assert.ts";
 * const fetch = () => Promise.resolve(new Response("no", { status: 404 }));
 * await assertRejects(
 *   fetchCheckedCheckpoint("/checkpoints/x", { where: "x", fix: "retrain", knownLayer: () => true, fetch }),
 *   /Checkpoint file x\/model.json is missing; retrain/,
 * );
 * ```
 */
export async function fetchCheckedCheckpoint(base, options) {
  const get = options.fetch ?? globalThis.fetch;
  const { where, fix } = options;
  const response = await get(`${base}/model.json`);
  if (!response.ok) throw checkpointError(`Checkpoint file ${where}/model.json is missing; ${fix}`);
  const text = await response.text();
  let modelJson;
  try {
    modelJson = JSON.parse(text);
  } catch (error) {
    throw checkpointError(
      `Checkpoint file ${where}/model.json is damaged (${text.length} bytes, not JSON: ` +
        `${String(error?.message ?? error).split("\n")[0]}); ${fix}`,
    );
  }
  const read = async (file) => {
    const reply = await get(`${base}/${file.split("/").map(encodeURIComponent).join("/")}`);
    return reply.ok ? new Uint8Array(await reply.arrayBuffer()) : undefined;
  };
  return { modelJson, ...(await readCheckedWeights(modelJson, read, options)) };
}
