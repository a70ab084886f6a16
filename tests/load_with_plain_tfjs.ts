/**
 * Loads a checkpoint as a script outside the project would: plain
 * `@tensorflow/tfjs` (its wasm backend for speed), `lib/custom_layers.js` and
 * nothing else of the project, `tf.loadLayersModel` over a URL. Predicts the
 * images of a raw float32 file and writes the probabilities beside it.
 *
 * Usage: deno run --allow-read --allow-write <this> CHECKPOINT_DIR IMAGES.f32 OUT.f32
 */
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import { registerCustomLayers } from "../lib/custom_layers.js";

const [checkpoint, imagesFile, outFile] = Deno.args;
if (!checkpoint || !imagesFile || !outFile) {
  throw new Error("Usage: load_with_plain_tfjs.ts CHECKPOINT_DIR IMAGES.f32 OUT.f32");
}
await tf.setBackend("wasm");
registerCustomLayers(tf);
const url = new URL(`file://${await Deno.realPath(checkpoint)}/model.json`).href;
const model = await tf.loadLayersModel(tf.io.http(url, { fetchFunc: fetch }));
const [, height, width, channels] = model.inputs[0]!.shape as number[];
const bytes = await Deno.readFile(imagesFile);
const values = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
const count = values.length / (height! * width! * channels!);
const images = tf.tensor4d(values, [count, height!, width!, channels!]);
const probabilities = model.predict(images) as tf.Tensor;
const out = await probabilities.data() as Float32Array;
await Deno.writeFile(outFile, new Uint8Array(out.buffer, out.byteOffset, out.byteLength));
