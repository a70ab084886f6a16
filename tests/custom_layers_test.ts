import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import { assert, assertEquals } from "../lib/assert.ts";
import { registerCustomLayers } from "../lib/custom_layers.js";
import { MaxPoolWithMask } from "../lib/max_unpool.ts";
import { join } from "../lib/path.ts";
import { MODEL_NAMES, type ModelName, saveNetwork } from "./networks.ts";

await tf.setBackend("wasm");

const LOADER = new URL("./load_with_plain_tfjs.ts", import.meta.url).pathname;
const CUSTOM_LAYERS = new URL("../lib/custom_layers.js", import.meta.url).href;

/** The smallest input size each network takes (UNet's unpadded convolutions need 188). */
function smallSize(name: ModelName): number {
  return name === "unet" ? 188 : 32;
}

Deno.test("load_with_plain_tfjs.ts imports nothing of the project but custom_layers.js", async () => {
  const info = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", LOADER],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  assert(info.success, "deno info failed");
  const graph = JSON.parse(new TextDecoder().decode(info.stdout)) as {
    modules: { specifier: string }[];
  };
  const local = graph.modules.map((module) => module.specifier)
    .filter((specifier) => specifier.startsWith("file:"));
  assertEquals(local.sort(), [CUSTOM_LAYERS, new URL(`file://${LOADER}`).href].sort());
});

Deno.test("registerCustomLayers() twice gives the same classes as lib/max_unpool.ts", () => {
  assertEquals(registerCustomLayers(tf).MaxPoolWithMask, MaxPoolWithMask);
});

for (const name of MODEL_NAMES) {
  Deno.test(`a ${name} checkpoint loads in a fresh process with plain tfjs and custom_layers.js, and predicts the same`, async () => {
    const dir = await Deno.makeTempDir();
    try {
      const size = smallSize(name);
      const model = await saveNetwork(join(dir, name), { name, size });
      const images = tf.randomUniform([2, size, size, 3], 0, 1, "float32", 7);
      const expected = tf.tidy(() => (model.predict(images) as tf.Tensor).dataSync());
      const input = images.dataSync() as Float32Array;
      await Deno.writeFile(join(dir, "images.f32"), new Uint8Array(input.buffer));
      images.dispose();
      model.dispose();
      const run = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-read",
          "--allow-write",
          "--allow-env",
          LOADER,
          join(dir, name),
          join(dir, "images.f32"),
          join(dir, "out.f32"),
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert(run.success, new TextDecoder().decode(run.stderr));
      const bytes = await Deno.readFile(join(dir, "out.f32"));
      const actual = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
      assertEquals(actual.length, expected.length);
      // Same backend, same weights, same input: the same numbers, to the bit.
      assertEquals(Array.from(actual), Array.from(expected));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
