import * as tf from "@tensorflow/tfjs";
import { assert, assertEquals, assertThrows } from "../lib/assert.ts";
import { UserError } from "../lib/errors.ts";
import { modelSummary, rebuildAtSize } from "../lib/network.ts";
import {
  buildModel,
  MODEL_NAMES,
  type ModelName,
  NETWORKS,
  outputSize,
} from "../tools/networks.ts";

await tf.setBackend("cpu");

/** Parameter counts of a layer or a network. */
interface Params {
  trainable: number;
  total: number;
}

const add = (...parts: Params[]): Params => ({
  trainable: parts.reduce((sum, part) => sum + part.trainable, 0),
  total: parts.reduce((sum, part) => sum + part.total, 0),
});
const times = (count: number, part: Params): Params => add(...Array(count).fill(part));
/** Conv2D or Conv2DTranspose: a kernel of kernel*kernel*in*out and one bias per output. */
const conv = (kernel: number, inputs: number, outputs: number): Params => {
  const count = kernel * kernel * inputs * outputs + outputs;
  return { trainable: count, total: count };
};
/** BatchNorm: gamma and beta trained, moving mean and variance not. */
const norm = (channels: number): Params => ({ trainable: 2 * channels, total: 4 * channels });
/** 3x3 conv + batch norm. */
const conv3 = (inputs: number, outputs: number) => add(conv(3, inputs, outputs), norm(outputs));

/** Expected parameters, computed from the tutorial's layer lists. */
function expectedParams(name: ModelName): Params {
  switch (name) {
    case "bin": // 6 x CRB(32), 1x1 conv to 1 channel
      return add(conv3(3, 32), times(5, conv3(32, 32)), conv(1, 32, 1));
    case "semaseg": // same with a 3-channel head
      return add(conv3(3, 32), times(5, conv3(32, 32)), conv(1, 32, 3));
    case "nearest": // CRB x2, pool, CRB x2, upsample, CRB x2, head
      return add(conv3(3, 32), times(5, conv3(32, 32)), conv(1, 32, 3));
    case "transposeconv": // as nearest, plus transposed conv k2 32 + BN
      return add(
        conv3(3, 32),
        times(5, conv3(32, 32)),
        conv(2, 32, 32),
        norm(32),
        conv(1, 32, 3),
      );
    case "concat": // as transposeconv, plus 1x1 conv 64 -> 32 + BN after the concat
      return add(
        conv3(3, 32),
        times(5, conv3(32, 32)),
        conv(2, 32, 32),
        norm(32),
        conv(1, 64, 32),
        norm(32),
        conv(1, 32, 3),
      );
    case "unet":
      return unetParams([64, 128, 256, 512, 1024]);
    case "unetlike":
      return unetParams([16, 32, 64, 128, 256]);
    case "segnet": {
      const encoder = add(
        conv3(3, 64),
        conv3(64, 64),
        conv3(64, 128),
        conv3(128, 128),
        conv3(128, 256),
        times(2, conv3(256, 256)),
        conv3(256, 512),
        times(2, conv3(512, 512)),
        times(3, conv3(512, 512)),
      );
      const decoder = add(
        times(3, conv3(512, 512)),
        conv3(512, 256),
        times(2, conv3(256, 256)),
        conv3(256, 128),
        times(2, conv3(128, 128)),
        conv3(128, 64),
        conv3(64, 64),
        times(2, conv3(64, 64)),
      );
      return add(encoder, decoder, conv(1, 64, 3));
    }
  }
}

/** UNet: two CBR convs per level; per decoder level a transposed conv + BN and two CBR convs on the concat. */
function unetParams(filters: number[]): Params {
  const parts: Params[] = [];
  filters.forEach((level, index) => {
    parts.push(conv3(index === 0 ? 3 : filters[index - 1]!, level), conv3(level, level));
  });
  for (let index = filters.length - 2; index >= 0; index--) {
    const level = filters[index]!;
    parts.push(conv(2, filters[index + 1]!, level), norm(level));
    parts.push(conv3(2 * level, level), conv3(level, level));
  }
  parts.push(conv(1, filters[0]!, 3));
  return add(...parts);
}

function countParams(model: tf.LayersModel): Params {
  const count = (weights: tf.LayerVariable[]) =>
    weights.reduce((sum, weight) => sum + weight.shape.reduce((a: number, b) => a * b!, 1), 0);
  const trainable = count(model.trainableWeights);
  return { trainable, total: trainable + count(model.nonTrainableWeights) };
}

/** Size at which each model is checked: small, and valid for its poolings. */
const TEST_SIZE: Record<ModelName, number> = {
  bin: 16,
  semaseg: 16,
  nearest: 16,
  transposeconv: 16,
  concat: 16,
  unet: 188,
  unetlike: 16,
  segnet: 32,
};

/** Models cheap enough on the cpu backend for a forward pass and a training step. */
const SMALL: ModelName[] = ["bin", "semaseg", "nearest", "transposeconv", "concat", "unetlike"];

for (const name of MODEL_NAMES) {
  Deno.test(`buildModel("${name}") has the output shape and parameter count of the tutorial's network`, () => {
    const size = TEST_SIZE[name];
    const model = buildModel(name, { size });
    const classes = name === "bin" ? 1 : 3;
    const out = outputSize(name, size);
    assertEquals(model.inputs[0]!.shape, [null, size, size, 3]);
    assertEquals(model.outputs[0]!.shape, [null, out, out, classes]);
    assertEquals(countParams(model), expectedParams(name));
    assertEquals(model.countParams(), expectedParams(name).total);
    if (SMALL.includes(name) || name === "segnet") {
      const before = tf.memory().numTensors;
      const probabilities = tf.tidy(() => {
        const y = model.predict(tf.randomUniform([2, size, size, 3], 0, 1, "float32", 1));
        return y as tf.Tensor;
      });
      assertEquals(probabilities.shape, [2, out, out, classes]);
      const sums = tf.tidy(() => tf.sum(probabilities, -1).dataSync());
      const values = probabilities.dataSync();
      assert(values.every((value) => value >= 0 && value <= 1), "probabilities in [0, 1]");
      if (classes > 1) assert(sums.every((sum) => Math.abs(sum - 1) < 1e-5), "softmax sums to 1");
      probabilities.dispose();
      assertEquals(tf.memory().numTensors, before);
    }
    model.dispose();
  });
}

Deno.test('buildModel("unet") maps 572 to 388 with the paper\'s layer shapes', () => {
  assertEquals(outputSize("unet", 572), 388);
  const model = buildModel("unet", { size: 572 });
  const shapeOf = (layer: string) => model.getLayer(layer).outputShape;
  assertEquals(shapeOf("enc1_relu2"), [null, 568, 568, 64]);
  assertEquals(shapeOf("enc4_relu2"), [null, 64, 64, 512]);
  assertEquals(shapeOf("enc5_relu2"), [null, 28, 28, 1024]);
  assertEquals(shapeOf("dec4_relu_up"), [null, 56, 56, 512]);
  assertEquals(shapeOf("dec4_crop"), [null, 56, 56, 512]);
  assertEquals(shapeOf("dec4_concat"), [null, 56, 56, 1024]);
  assertEquals(shapeOf("dec1_crop"), [null, 392, 392, 64]);
  assertEquals(model.outputShape, [null, 388, 388, 3]);
  model.dispose();
});

Deno.test('buildModel("unet") maps 236 to 52', () => {
  assertEquals(outputSize("unet", 236), 52);
  const model = buildModel("unet", { size: 236 });
  assertEquals(model.getLayer("enc5_relu2").outputShape, [null, 7, 7, 1024]);
  assertEquals(model.outputShape, [null, 52, 52, 3]);
  model.dispose();
});

Deno.test("outputSize() refuses a size that cannot work, naming the nearest that do", () => {
  assertThrows(
    () => outputSize("unet", 240),
    (error: Error) =>
      error instanceof UserError && /240 does not work for unet/.test(error.message) &&
      /236 \(output 52\), 252 \(output 68\)/.test(error.message),
  );
  assertThrows(() => buildModel("unet", { size: 100 }), /closest sizes that work: 188 /);
  assertThrows(() => outputSize("segnet", 48), /32 \(output 32\), 64 \(output 64\)/);
  assertThrows(() => outputSize("unetlike", 60), /48 \(output 48\), 64 \(output 64\)/);
  assertThrows(() => outputSize("nearest", 63), /62 \(output 62\), 64 \(output 64\)/);
  assertEquals(outputSize("bin", 63), 63);
});

Deno.test("rebuildAtSize() keeps every weight and statistic: there and back predicts the same", () => {
  for (const [name, size, other] of [["unetlike", 16, 32], ["segnet", 32, 64]] as const) {
    const model = buildModel(name, { size, seed: 5 });
    // Give the batch-norm statistics values of their own, as training would.
    model.setWeights(
      model.getWeights().map((weight, index) =>
        tf.add(weight, tf.randomUniform(weight.shape, 0, 0.5, "float32", index))
      ),
    );
    const build = (size: number) => NETWORKS[name].build(size);
    const larger = rebuildAtSize(model, build, other);
    assertEquals(larger.outputs[0]!.shape, [null, other, other, 3]);
    const back = rebuildAtSize(larger, build, size);
    const image = tf.randomUniform([2, size, size, 3], 0, 1, "float32", 9);
    const expected = (model.predict(image) as tf.Tensor).dataSync();
    const got = (back.predict(image) as tf.Tensor).dataSync();
    assertEquals(Array.from(got), Array.from(expected), name);
    assertThrows(() => rebuildAtSize(model, build, size + 8), UserError);
    for (const built of [model, larger, back]) built.dispose();
    image.dispose();
  }
});

Deno.test("buildModel() with the same seed gives the same weights, another seed others", () => {
  const weights = (seed: number) => {
    const model = buildModel("concat", { size: 8, seed });
    const values = model.getWeights().map((weight) => Array.from(weight.dataSync()));
    model.dispose();
    return values;
  };
  const first = weights(3);
  assertEquals(weights(3), first);
  const other = weights(4);
  assert(JSON.stringify(other) !== JSON.stringify(first));
  // every kernel has its own seed: no two 32x32 kernels are equal
  const kernels = first.filter((values) => values.length === 9 * 32 * 32).map(String);
  assertEquals(new Set(kernels).size, kernels.length);
});

Deno.test("modelSummary() lists every layer with its output shape and the totals", () => {
  const model = buildModel("concat", { size: 16 });
  const text = modelSummary(model);
  for (const layer of model.layers) assert(text.includes(layer.name), layer.name);
  assert(text.includes("dec1_concat (Concatenate)"));
  assert(/dec1_concat \(Concatenate\)\s+\[batch, 16, 16, 64\]\s+0/.test(text));
  const { trainable, total } = expectedParams("concat");
  assert(
    text.includes(
      `Total params: ${total} (trainable ${trainable}, non-trainable ${total - trainable})`,
    ),
  );
  model.dispose();
});

/** Mean cross-entropy of probabilities against one-hot (or 0/1) targets. */
function crossEntropy(probabilities: tf.Tensor, targets: tf.Tensor, classes: number): tf.Scalar {
  const clipped = tf.clipByValue(probabilities, 1e-7, 1 - 1e-7);
  if (classes === 1) {
    const positive = tf.mul(targets, tf.log(clipped));
    const negative = tf.mul(tf.sub(1, targets), tf.log(tf.sub(1, clipped)));
    return tf.neg(tf.mean(tf.add(positive, negative)));
  }
  return tf.neg(tf.mean(tf.sum(tf.mul(targets, tf.log(clipped)), -1)));
}

for (const name of SMALL) {
  Deno.test(`buildModel("${name}") trains: loss falls over a few steps and no tensor leaks`, () => {
    const size = name === "unetlike" ? 16 : 8;
    const model = buildModel(name, { size, seed: 1 });
    const classes = name === "bin" ? 1 : 3;
    const images = tf.randomUniform([1, size, size, 3], 0, 1, "float32", 2);
    const labels = tf.tidy(() => {
      const index = tf.cast(
        tf.greater(tf.slice(images, [0, 0, 0, 0], [-1, -1, -1, 1]), 0.5),
        "int32",
      );
      return classes === 1 ? tf.cast(index, "float32") : tf.oneHot(tf.squeeze(index, [3]), classes);
    });
    const optimizer = tf.train.momentum(0.01, 0.9);
    const step = () => {
      const loss = optimizer.minimize(() => {
        const probabilities = model.apply(images, { training: true }) as tf.Tensor;
        return crossEntropy(probabilities, labels, classes);
      }, true)!;
      const value = loss.dataSync()[0]!;
      loss.dispose();
      return value;
    };
    const losses = [step(), step()];
    const tensors = tf.memory().numTensors;
    for (let iteration = 0; iteration < 2; iteration++) losses.push(step());
    assertEquals(tf.memory().numTensors, tensors);
    assert(losses.every(Number.isFinite), `finite losses ${losses}`);
    assert(losses.at(-1)! < losses[0]!, `loss falls: ${losses.map((loss) => loss.toFixed(4))}`);
    tf.dispose([images, labels]);
    optimizer.dispose();
    model.dispose();
  });
}
