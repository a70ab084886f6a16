/**
 * `deno task profile`'s table of convolutions by shape: on the wasm backend
 * (oneDNN where installed), one training step's convolution calls come out
 * one per kernel and direction, their operations add up to what the floor
 * counts for the same model (`tools/floor.ts`), and repeating each call on
 * its own inputs leaves nothing behind in the backend.
 */
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "../engine/mod.ts";
import { assert, assertEquals } from "../lib/assert.ts";
import { trainingLoss } from "../lib/train.ts";
import { stepWork } from "../tools/floor.ts";
import { buildModel, lessonsOf, type ModelName } from "../tools/networks.ts";
import { convolutionTable, timeConvolutions } from "../tools/profile.ts";

for (const name of ["bin", "unetlike"] as ModelName[]) {
  Deno.test(`profile: ${name}'s convolutions by shape add up to the floor's count, leaving nothing behind`, async () => {
    await setupBackend("wasm", { quiet: true });
    const [batch, size] = [2, 32];
    const model = buildModel(name, { size });
    const classes = model.outputs[0]!.shape[3] as number;
    const images = tf.randomUniform([batch, size, size, 3], 0, 1, "float32", 1) as tf.Tensor4D;
    const masks = tf.randomUniform([batch, size, size], 0, classes === 1 ? 2 : classes, "int32", 2);
    const lossOf = trainingLoss(model, lessonsOf(name).loss);
    const optimizer = tf.train.momentum(0.01, 0.9);
    const step = () =>
      optimizer.minimize(() => lossOf(images, masks as tf.Tensor3D), true)?.dispose();
    step();
    const backend = tf.backend() as unknown as { numDataIds(): number };
    const before = backend.numDataIds();
    const rows = convolutionTable(await timeConvolutions(step, 2), 1);
    assertEquals(backend.numDataIds(), before, "repeated calls left data in the backend");
    const flop = rows.reduce((sum, row) => sum + row.flops, 0);
    assertEquals(flop, stepWork(model, batch).flop);
    // One weight gradient per convolution layer, transposed ones included.
    const layers = model.layers.filter((layer) =>
      ["Conv2D", "Conv2DTranspose"].includes(layer.getClassName())
    ).length;
    const weightGradients = rows.filter((row) => row.name === "Conv2DBackpropFilter")
      .reduce((sum, row) => sum + row.calls, 0);
    assertEquals(weightGradients, layers);
    assert(rows.every((row) => row.aloneMs > 0 && row.stepMs > 0));
    tf.dispose([images, masks]);
    optimizer.dispose();
    model.dispose();
  });
}
