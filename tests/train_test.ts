import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-cpu";
import { assert, assertAlmostEquals, assertEquals, assertThrows } from "../lib/assert.ts";
import { binLoss } from "../exercises/bin_loss.ts";
import { semasegLoss } from "../exercises/semaseg_loss.ts";
import { cropMasks } from "../lib/losses.ts";
import { Progress } from "../lib/progress.ts";
import { createRng, shuffled } from "../lib/rng.ts";
import { learningRateAt } from "../lib/schedule.ts";
import { createOptimizer, logitsModel, minibatchIndices, trainModel } from "../lib/train.ts";
import { crossEntropy } from "./lessons.ts";

await tf.setBackend("cpu");

/** A tiny conv + BN network: enough to train, fast on the cpu backend. */
function tinyModel(classes: number, seed: number, size = 8): tf.LayersModel {
  const input = tf.input({ shape: [size, size, 3] });
  let x = tf.layers.conv2d({
    filters: 4,
    kernelSize: 3,
    padding: "same",
    activation: "relu",
    kernelInitializer: tf.initializers.glorotUniform({ seed }),
  }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ momentum: 0.9 }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.conv2d({
    filters: classes,
    kernelSize: 1,
    kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }),
  }).apply(x) as tf.SymbolicTensor;
  // A separate head activation, as the project's networks have: training takes the logits path.
  x = tf.layers.activation({ activation: classes === 1 ? "sigmoid" : "softmax" })
    .apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: x });
}

/** Images whose red channel says the class: learnable in a few steps. */
function tinyData(count: number, classes: number, size = 8) {
  return tf.tidy(() => {
    const masks = tf.randomUniformInt([count, size, size], 0, Math.max(classes, 2), 3);
    const signal = tf.div(tf.cast(masks, "float32"), Math.max(classes, 2) - 1);
    const noise = tf.randomUniform([count, size, size, 2], 0, 1, "float32", 4);
    const images = tf.concat([tf.expandDims(signal, 3), noise], 3) as tf.Tensor4D; // [n, size, size, 3]
    return { images, masks: masks as tf.Tensor3D };
  });
}

Deno.test("createRng() repeats for a seed and differs between seeds", () => {
  const first = createRng(42);
  const again = createRng(42);
  const other = createRng(43);
  const values = [first(), first(), first()];
  assertEquals(values, [again(), again(), again()]);
  assert(values[0] !== other());
  assert(values.every((value) => value >= 0 && value < 1));
});

Deno.test("shuffled() permutes and is roughly uniform", () => {
  const rng = createRng(5);
  const firstCounts = [0, 0, 0, 0];
  for (let trial = 0; trial < 4000; trial++) {
    firstCounts[shuffled([0, 1, 2, 3], rng)[0]!]! += 1;
  }
  for (const count of firstCounts) assert(count > 850 && count < 1150, `${firstCounts}`);
});

Deno.test("minibatchIndices() covers each epoch once and spans epochs", () => {
  const batches = minibatchIndices(6, 4, 1);
  const stream = [...batches(0), ...batches(1), ...batches(2)]; // 12 = two epochs
  assertEquals(stream.slice(0, 6).sort(), [0, 1, 2, 3, 4, 5]);
  assertEquals(stream.slice(6, 12).sort(), [0, 1, 2, 3, 4, 5]);
  assertEquals(minibatchIndices(6, 4, 1)(2), batches(2));
  const otherSeed = minibatchIndices(6, 4, 2);
  assert(stream.join() !== [...otherSeed(0), ...otherSeed(1), ...otherSeed(2)].join());
});

Deno.test("learningRateAt() follows each schedule", () => {
  assertAlmostEquals(learningRateAt(0, { schedule: "cosine", lr: 1, total: 100 }), 1);
  assertAlmostEquals(learningRateAt(100, { schedule: "cosine", lr: 1, total: 100 }), 0);
  assertAlmostEquals(learningRateAt(0, { schedule: "onecycle", lr: 1, total: 100 }), 0.04);
  assertAlmostEquals(learningRateAt(30, { schedule: "onecycle", lr: 1, total: 100 }), 1);
  assert(learningRateAt(99, { schedule: "onecycle", lr: 1, total: 100 }) < 0.01);
});

Deno.test("semasegLoss() is the mean of -log softmax of the true class over every pixel", () => {
  const logits = tf.randomNormal([2, 3, 3, 3], 0, 1, "float32", 9) as tf.Tensor4D;
  const masks = tf.randomUniformInt([2, 3, 3], 0, 3, 2) as tf.Tensor3D;
  const ours = semasegLoss(logits, masks).dataSync()[0]!;
  const logProbability = tf.logSoftmax(tf.reshape(logits, [-1, 3]));
  const picked = tf.sum(tf.mul(tf.oneHot(tf.reshape(masks, [-1]), 3), logProbability), 1);
  assertAlmostEquals(ours, -tf.mean(picked).dataSync()[0]!, 1e-5);
});

Deno.test("a confidently wrong pixel keeps its gradient with the losses from logits", () => {
  // The probability of the true class underflows: clipping it leaves no gradient,
  // the logits give the exact one, (softmax - onehot) / pixels and sigmoid - target.
  const logits = tf.tensor4d([[[[0, 0, 120], [0, 3, 1]]]]); // [1, 1, 2, 3]
  const masks = tf.tensor3d([[[0, 1]]], undefined, "int32");
  const exact = tf.div(tf.sub(tf.softmax(logits), tf.oneHot(masks, 3)), 2).arraySync();
  const fromLogits = tf.grad((z: tf.Tensor) => semasegLoss(z as tf.Tensor4D, masks))(
    logits,
  );
  const got = fromLogits.arraySync() as number[][][][];
  const want = exact as number[][][][];
  for (let pixel = 0; pixel < 2; pixel++) {
    for (let c = 0; c < 3; c++) {
      assertAlmostEquals(got[0]![0]![pixel]![c]!, want[0]![0]![pixel]![c]!, 1e-6);
    }
  }
  assertAlmostEquals(got[0]![0]![0]![0]!, -0.5, 1e-6);

  const z = tf.tensor4d([[[[-60], [60]]]]); // [1, 1, 2, 1]
  const target = tf.tensor3d([[[1, 1]]], undefined, "int32");
  const binary = tf.grad((x: tf.Tensor) => binLoss(x as tf.Tensor4D, target))(
    z,
  );
  const expected = [(1 / (1 + Math.exp(60)) - 1) / 2, (1 / (1 + Math.exp(-60)) - 1) / 2];
  const values = binary.dataSync();
  assertAlmostEquals(values[0]!, expected[0]!, 1e-6);
  assertAlmostEquals(values[1]!, expected[1]!, 1e-6);
});

Deno.test("logitsModel() drops a sigmoid or softmax head and shares the weights", () => {
  const input = tf.input({ shape: [4, 4, 3] });
  const conv = tf.layers.conv2d({ filters: 2, kernelSize: 1 }).apply(input) as tf.SymbolicTensor;
  const softmax = tf.layers.activation({ activation: "softmax" }).apply(conv) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: softmax });
  const logits = logitsModel(model)!;
  const x = tf.randomUniform([1, 4, 4, 3], 0, 1, "float32", 3);
  const expected = model.predict(x) as tf.Tensor;
  const got = tf.softmax(logits.predict(x) as tf.Tensor);
  assert(tf.max(tf.abs(tf.sub(expected, got))).dataSync()[0]! < 1e-6);
  assertEquals(
    logits.trainableWeights.map((w) => w.name),
    model.trainableWeights.map((w) => w.name),
  );
  const relu = tf.layers.activation({ activation: "relu" }).apply(conv) as tf.SymbolicTensor;
  assertEquals(logitsModel(tf.model({ inputs: input, outputs: relu })), undefined);
  assertEquals(logitsModel(tf.model({ inputs: input, outputs: conv })), undefined);
});

Deno.test("trainingLoss() crops masks to a smaller output", () => {
  const masks = tf.tensor3d(
    [[[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]],
    undefined,
    "int32",
  );
  const sure = tf.fill([1, 2, 2, 1], 10) as tf.Tensor4D; // logits of a sure newt
  assert(binLoss(sure, cropMasks(masks, 2, 2)).dataSync()[0]! < 0.01);
  assertThrows(() => cropMasks(masks, 5, 5), /larger/);
});

Deno.test("Progress writes a plain line every N iterations off a terminal", () => {
  const lines: string[] = [];
  const progress = new Progress({
    total: 10,
    every: 5,
    terminal: false,
    write: (t) => lines.push(t),
  });
  for (let iteration = 1; iteration <= 10; iteration++) progress.update(iteration, 0.5);
  assertEquals(lines.length, 2);
  assert(lines[1]!.startsWith("iteration 10/10  loss 0.5000"), lines[1]!);
});

Deno.test("Progress rewrites one line on a terminal", () => {
  const chunks: string[] = [];
  const progress = new Progress({ total: 3, terminal: true, write: (t) => chunks.push(t) });
  for (let iteration = 1; iteration <= 3; iteration++) progress.update(iteration, 1);
  progress.finish();
  assertEquals(chunks.length, 4);
  assert(chunks.slice(0, 3).every((chunk) => chunk.startsWith("\r")));
  assert(chunks[2]!.includes("it/s") && chunks[2]!.includes("left"));
});

Deno.test("trainModel() leaks no tensors between iteration 10 and 100", async () => {
  const model = tinyModel(3, 1);
  const data = tinyData(6, 3);
  const counts: Record<number, number> = {};
  const result = await trainModel(model, data, {
    loss: crossEntropy,
    iters: 100,
    progress: { quiet: true },
    onIteration: (iteration) => {
      if (iteration === 10 || iteration === 100) counts[iteration] = tf.memory().numTensors;
    },
  });
  assertEquals(counts[100], counts[10]);
  result.optimizer.dispose();
  tf.dispose([data.images, data.masks]);
  model.dispose();
});

Deno.test("trainModel() repeats its losses for the same seed", async () => {
  const data = tinyData(6, 1);
  const run = async (seed: number) => {
    const model = tinyModel(1, 7);
    const result = await trainModel(model, data, {
      loss: crossEntropy,
      iters: 8,
      seed,
      progress: { quiet: true },
    });
    result.optimizer.dispose();
    model.dispose();
    return result.losses;
  };
  const first = await run(0);
  assertEquals(await run(0), first);
  assert((await run(1)).join() !== first.join());
  tf.dispose([data.images, data.masks]);
});

Deno.test("trainModel() lowers the loss and updates batch-norm statistics", async () => {
  const model = tinyModel(3, 2);
  const data = tinyData(8, 3);
  const movingMean = model.layers[2]!.getWeights()[2]!.arraySync() as number[];
  for (const optimizer of ["sgd", "adam"] as const) {
    const result = await trainModel(model, data, {
      loss: crossEntropy,
      iters: 40,
      lr: optimizer === "adam" ? 0.01 : 0.05,
      optimizer,
      schedule: "cosine",
      progress: { quiet: true },
    });
    const early = result.losses.slice(0, 5).reduce((a, b) => a + b) / 5;
    const late = result.losses.slice(-5).reduce((a, b) => a + b) / 5;
    assert(late < early * 0.8, `${optimizer}: ${early} -> ${late}`);
    result.optimizer.dispose();
  }
  const after = model.layers[2]!.getWeights()[2]!.arraySync() as number[];
  assert(after.join() !== movingMean.join());
  tf.dispose([data.images, data.masks]);
  model.dispose();
});

Deno.test("trainModel() applies the augmentation to every minibatch", async () => {
  const model = tinyModel(1, 3);
  const data = tinyData(4, 1);
  let calls = 0;
  const result = await trainModel(model, data, {
    loss: crossEntropy,
    iters: 3,
    batchSize: 2,
    progress: { quiet: true },
    augment: (images, masks, rng) => {
      calls += 1;
      assert(rng() < 1);
      return { images: tf.reverse(images, 2), masks: tf.reverse(masks, 2) };
    },
  });
  assertEquals(calls, 3);
  assertEquals(result.losses.length, 3);
  result.optimizer.dispose();
  tf.dispose([data.images, data.masks]);
  model.dispose();
});

Deno.test("trainModel() resumes with optimizer state as if never stopped", async () => {
  const data = tinyData(6, 3);
  const straight = tinyModel(3, 11);
  const initial = straight.getWeights().map((weight) => weight.clone());
  const full = await trainModel(straight, data, {
    loss: crossEntropy,
    iters: 6,
    progress: { quiet: true },
  });
  full.optimizer.dispose();

  const resumed = tinyModel(3, 11);
  resumed.setWeights(initial);
  const firstHalf = await trainModel(resumed, data, {
    loss: crossEntropy,
    iters: 3,
    progress: { quiet: true },
  });
  const state = await firstHalf.optimizer.getWeights();
  const saved = state.map(({ name, tensor }) => ({ name, tensor: tensor.clone() }));
  firstHalf.optimizer.dispose();
  const secondHalf = await trainModel(resumed, data, {
    loss: crossEntropy,
    iters: 6,
    startIteration: 3,
    optimizerState: saved,
    progress: { quiet: true },
  });
  assertEquals(secondHalf.losses.length, 3);
  for (let index = 0; index < 3; index++) {
    assertAlmostEquals(secondHalf.losses[index]!, full.losses[index + 3]!, 1e-5);
  }
  secondHalf.optimizer.dispose();
  tf.dispose([...initial, ...saved.map((weight) => weight.tensor), data.images, data.masks]);
  tf.dispose(state[0]!.tensor);
  straight.dispose();
  resumed.dispose();
});

Deno.test("createOptimizer() gives plain SGD for momentum 0", () => {
  const optimizer = createOptimizer("sgd", 0.1, 0);
  assertEquals(optimizer.getClassName(), "SGD");
  optimizer.dispose();
});
