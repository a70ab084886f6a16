/**
 * The engine replaces parts of TensorFlow.js (kernels, layer calls, the
 * momentum optimizer's update, the tensors saved for gradients); whatever it
 * replaces must give the cpu backend's numbers for any TensorFlow.js program,
 * not only for this project's training loop. These tests train two small
 * models that are not this project's, a convolutional classifier through
 * tfjs-layers' own `model.fit` and a hand-written one through
 * `optimizer.minimize`, with every optimizer `tf.train` offers, on every wasm
 * configuration this machine has, and compare each epoch's loss and the final
 * weights with the cpu backend's.
 *
 * What they caught: momentum's update in place left tfjs-backend-wasm's
 * XNNPACK operators holding the weights they had packed at their first call
 * (their cache is keyed by tensor id), so on pure wasm the classifier did not
 * learn (epoch losses 2.30, 2.27, 2.28 against cpu's 2.10, 0.50, 0.0017) and
 * its dense layer diverged with oneDNN.
 */
import * as tf from "@tensorflow/tfjs";
import { setupBackend } from "./backend.ts";
import { openBlas } from "./blas.ts";
import { openDnnl } from "./dnnl.ts";
import { assert } from "./assert.ts";

/** Every optimizer of `tf.train`, with settings that make each step count. */
const OPTIMIZERS: Record<string, () => tf.Optimizer> = {
  sgd: () => tf.train.sgd(0.05),
  momentum: () => tf.train.momentum(0.05, 0.9),
  "momentum (Nesterov)": () => tf.train.momentum(0.05, 0.9, true),
  adagrad: () => tf.train.adagrad(0.05),
  adadelta: () => tf.train.adadelta(1, 0.95),
  adam: () => tf.train.adam(0.01),
  adamax: () => tf.train.adamax(0.01),
  rmsprop: () => tf.train.rmsprop(0.005),
  "rmsprop (momentum)": () => tf.train.rmsprop(0.002, 0.9, 0.5),
  // Centered RMSProp is left out: tfjs 4.22 takes sqrt(meanSquare - (meanGrad^2 + epsilon)),
  // NaN wherever a gradient has been 0 (a ReLU's dead unit), on every backend, cpu included.
};

/** The wasm configurations, each with the reason it cannot run here, if any. */
const CONFIGURATIONS: { name: string; missing: () => string | null; options: object }[] = [
  { name: "wasm", missing: () => null, options: { blas: false, dnnl: false } },
  {
    name: "wasm+openblas",
    missing: () => {
      const blas = openBlas();
      if (typeof blas === "string") return `OpenBLAS ${blas}`;
      blas.close();
      return null;
    },
    options: { blas: true, dnnl: false },
  },
  {
    name: "wasm+onednn",
    missing: () => {
      const dnnl = openDnnl();
      if (typeof dnnl === "string") return `oneDNN ${dnnl}`;
      dnnl.close();
      return null;
    },
    options: { blas: true, dnnl: true },
  },
];

/** Seeded values in [0, 1). */
function seeded(count: number, seed: number): Float32Array {
  let state = seed >>> 0;
  return Float32Array.from({ length: count }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  });
}

/** 48 images of `side` x `side` x 2 in 4 classes, each class a different brightness pattern. */
function classificationData(side = 12): { images: tf.Tensor4D; labels: tf.Tensor2D } {
  const count = 48;
  const noise = seeded(count * side * side * 2, 7);
  const values = noise.map((value, i) => {
    const image = Math.floor(i / (side * side * 2));
    const row = Math.floor(i / (side * 2)) % side;
    const label = image % 4;
    return value * 0.5 + (row < side / 2 === label < 2 ? 0.5 : 0) + (label % 2) * 0.25;
  });
  const images = tf.tensor4d(values, [count, side, side, 2]);
  const labels = tf.tidy(() =>
    tf.oneHot(tf.tensor1d(Array.from({ length: count }, (_, i) => i % 4), "int32"), 4)
      .toFloat() as tf.Tensor2D
  );
  return { images, labels };
}

/** Conv + pool twice, then a dense softmax: built from tfjs-layers, seeded. */
function classifier(): tf.Sequential {
  return tf.sequential({
    layers: [
      tf.layers.conv2d({
        inputShape: [12, 12, 2],
        filters: 6,
        kernelSize: 3,
        activation: "relu",
        kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
      }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.conv2d({
        filters: 8,
        kernelSize: 3,
        padding: "same",
        activation: "relu",
        kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }),
      }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.flatten(),
      tf.layers.dense({
        units: 4,
        activation: "softmax",
        kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }),
      }),
    ],
  });
}

/**
 * Conv, batch norm and ReLU as separate layers (CBR), twice, then global
 * average pooling and a dense softmax: the layer calls the engine replaces in
 * training (a conv whose output goes only to a ReLU, a batch norm of at least
 * 32768 values at minibatches of 16, followed by a ReLU).
 */
function cbrClassifier(): tf.Sequential {
  const init = (seed: number) => tf.initializers.heNormal({ seed });
  return tf.sequential({
    layers: [
      tf.layers.conv2d({
        inputShape: [16, 16, 2],
        filters: 16,
        kernelSize: 3,
        padding: "same",
        // No bias before a batch norm: its gradient is 0 up to rounding, noise to compare.
        useBias: false,
        kernelInitializer: init(4),
      }),
      tf.layers.batchNormalization(),
      tf.layers.reLU(),
      tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: "same", kernelInitializer: init(5) }),
      tf.layers.reLU(),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.globalAveragePooling2d({}),
      tf.layers.dense({ units: 4, activation: "softmax", kernelInitializer: init(6) }),
    ],
  });
}

interface Trained {
  losses: number[];
  weights: Float32Array[];
  /** Tensors left after the run (tfjs's own optimizers keep a few scalars). */
  leaked: number;
}

/**
 * Trains each classifier with `model.fit` for 3 epochs, in order: the
 * conv-pool one on minibatches of 8, the CBR one of 16.
 */
async function trainWithFit(makeOptimizer: () => tf.Optimizer): Promise<Trained> {
  const before = tf.memory().numTensors;
  const losses: number[] = [];
  const weights: Float32Array[] = [];
  for (const [build, side, batchSize] of [[classifier, 12, 8], [cbrClassifier, 16, 16]] as const) {
    const { images, labels } = classificationData(side);
    const model = build();
    const optimizer = makeOptimizer();
    model.compile({ optimizer, loss: "categoricalCrossentropy" });
    const history = await model.fit(images, labels, {
      epochs: 3,
      batchSize,
      shuffle: false,
      verbose: 0,
    });
    losses.push(...history.history.loss as number[]);
    weights.push(...model.getWeights().map((weight) => weight.dataSync() as Float32Array));
    model.dispose();
    optimizer.dispose();
    tf.dispose([images, labels]);
  }
  return { losses, weights, leaked: tf.memory().numTensors - before };
}

/**
 * A classifier written with ops and `tf.variable`s (conv with bias, ReLU, max
 * pool, matrix product), trained with `optimizer.minimize` for 12 steps.
 */
function trainWithMinimize(makeOptimizer: () => tf.Optimizer): Trained {
  const optimizer = makeOptimizer();
  const before = tf.memory().numTensors;
  const { images, labels } = classificationData();
  const scaled = (shape: number[], seed: number, scale: number) =>
    tf.variable(
      tf.tidy(() =>
        tf.tensor(seeded(shape.reduce((a, b) => a * b, 1), seed), shape).sub(0.5).mul(scale)
      ),
    );
  const filter = scaled([3, 3, 2, 5], 11, 0.6) as tf.Variable<tf.Rank.R4>;
  const bias = scaled([5], 12, 0.1);
  const dense = scaled([6 * 6 * 5, 4], 13, 0.2);
  const variables = [filter, bias, dense];
  const losses: number[] = [];
  for (let step = 0; step < 12; step++) {
    const start = (step % 6) * 8;
    const cost = tf.tidy(() => {
      const x = images.slice([start, 0, 0, 0], [8, 12, 12, 2]);
      const y = labels.slice([start, 0], [8, 4]);
      return optimizer.minimize(() => {
        const features = tf.maxPool(
          tf.relu<tf.Tensor4D>(tf.add(tf.conv2d(x as tf.Tensor4D, filter, 1, "same"), bias)),
          2,
          2,
          0,
        );
        const logits = tf.matMul(tf.reshape(features, [8, -1]), dense);
        return tf.losses.softmaxCrossEntropy(y, logits) as tf.Scalar;
      }, true)!;
    });
    losses.push(cost.dataSync()[0]!);
    cost.dispose();
  }
  const weights = variables.map((variable) => variable.dataSync() as Float32Array);
  tf.dispose([...variables, images, labels]);
  optimizer.dispose();
  return { losses, weights, leaked: tf.memory().numTensors - before };
}

/**
 * Asserts each loss within a relative 1e-4 of cpu's (|a - b| / max(|b|, 1e-3))
 * and each weight within a relative L2 error of 1e-3. The bug these tests
 * caught was off by a factor of two in the loss within three epochs.
 */
function assertClose(actual: Trained, expected: Trained, what: string): void {
  for (const [i, loss] of actual.losses.entries()) {
    const wanted = expected.losses[i]!;
    const error = Math.abs(loss - wanted) / Math.max(Math.abs(wanted), 1e-3);
    assert(
      error < 1e-4,
      `${what}: loss ${
        i + 1
      } is ${loss}, cpu's ${wanted} (losses ${actual.losses} against ${expected.losses})`,
    );
  }
  for (const [i, values] of actual.weights.entries()) {
    const wanted = expected.weights[i]!;
    let difference = 0, norm = 0;
    for (let j = 0; j < wanted.length; j++) {
      difference += (values[j]! - wanted[j]!) ** 2;
      norm += wanted[j]! ** 2;
    }
    const error = Math.sqrt(difference / Math.max(norm, 1e-12));
    // oneDNN sums in another order than cpu (batch norm: 2e-4 after 9 momentum steps).
    assert(error < 1e-3, `${what}: weight ${i} is ${error} (relative L2) from cpu's`);
  }
}

for (
  const [route, train] of [
    ["model.fit", trainWithFit],
    ["optimizer.minimize", trainWithMinimize],
  ] as const
) {
  Deno.test(`every tf.train optimizer through ${route} on every wasm configuration gives the cpu backend's losses and weights`, async () => {
    try {
      await setupBackend("cpu", { quiet: true });
      const expected = new Map<string, Trained>();
      for (const [name, make] of Object.entries(OPTIMIZERS)) {
        expected.set(name, await train(make));
      }
      for (const configuration of CONFIGURATIONS) {
        const missing = configuration.missing();
        if (missing !== null) {
          console.log(`${configuration.name} left out: ${missing}`);
          continue;
        }
        const label = await setupBackend("wasm", { quiet: true, ...configuration.options });
        assert(label === configuration.name, `expected ${configuration.name}, got ${label}`);
        for (const [name, make] of Object.entries(OPTIMIZERS)) {
          const actual = await train(make);
          const wanted = expected.get(name)!;
          assertClose(actual, wanted, `${name} on ${label}`);
          assert(
            actual.leaked === wanted.leaked,
            `${name} on ${label} left ${actual.leaked} tensors, cpu ${wanted.leaked}`,
          );
        }
      }
    } finally {
      await setupBackend("cpu", { quiet: true });
    }
  });
}
