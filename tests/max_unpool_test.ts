import * as tf from "@tensorflow/tfjs";
import { assert, assertEquals, assertThrows } from "../lib/assert.ts";
import { createRng } from "../lib/rng.ts";
import { MaxPoolWithMask, maxPoolWithMask, MaxUnpool, maxUnpool } from "../lib/max_unpool.ts";
import { setupBackend } from "../engine/mod.ts";

await tf.setBackend("cpu");

type Shape4 = [number, number, number, number];

/** Exact comparison of float arrays, with -0 and 0 equal. */
function assertValues(actual: ArrayLike<number>, expected: ArrayLike<number>): void {
  assertEquals(
    Array.from(actual, (value) => value + 0),
    Array.from(expected, (value) => value + 0),
  );
}

/** Values from a set of `levels` integers, so that windows often hold ties. */
function data(size: number, seed: number, levels: number): Float32Array {
  const next = createRng(seed);
  return Float32Array.from({ length: size }, () => Math.floor(next() * levels) - 1);
}

function index([, height, width, channels]: Shape4, b: number, y: number, x: number, c: number) {
  return ((b * height + y) * width + x) * channels + c;
}

/** Plain-JS reference: pooled values and the one-hot mask of the first maximum (row-major). */
function referencePool(values: Float32Array, shape: Shape4) {
  const [batch, height, width, channels] = shape;
  const pooledShape: Shape4 = [batch, height / 2, width / 2, channels];
  const pooled = new Float32Array(values.length / 4);
  const mask = new Float32Array(values.length);
  for (let b = 0; b < batch; b++) {
    for (let y = 0; y < height / 2; y++) {
      for (let x = 0; x < width / 2; x++) {
        for (let c = 0; c < channels; c++) {
          let best = -1;
          for (const [dy, dx] of [[0, 0], [0, 1], [1, 0], [1, 1]]) {
            const at = index(shape, b, 2 * y + dy!, 2 * x + dx!, c);
            if (best < 0 || values[at]! > values[best]!) best = at;
          }
          pooled[index(pooledShape, b, y, x, c)] = values[best]!;
          mask[best] = 1;
        }
      }
    }
  }
  return { pooled, mask };
}

/** Plain-JS reference unpooling: value at the masked position of its window. */
function referenceUnpool(values: Float32Array, mask: Float32Array, shape: Shape4) {
  const [batch, height, width, channels] = shape;
  const outShape: Shape4 = [batch, height * 2, width * 2, channels];
  const out = new Float32Array(mask.length);
  for (let b = 0; b < batch; b++) {
    for (let y = 0; y < 2 * height; y++) {
      for (let x = 0; x < 2 * width; x++) {
        for (let c = 0; c < channels; c++) {
          const at = index(outShape, b, y, x, c);
          out[at] = mask[at]! * values[index(shape, b, Math.floor(y / 2), Math.floor(x / 2), c)]!;
        }
      }
    }
  }
  return out;
}

/** Plain-JS reference gradient of unpooling: per window, the upstream gradient at the masked position. */
function referencePoolWindowSum(upstream: Float32Array, mask: Float32Array, shape: Shape4) {
  const [, height, width, channels] = shape; // shape of the pooled map
  const grad = new Float32Array(upstream.length / 4);
  for (let at = 0; at < upstream.length; at++) {
    const c = at % channels;
    const x = Math.floor(at / channels) % (2 * width);
    const y = Math.floor(at / channels / (2 * width)) % (2 * height);
    const b = Math.floor(at / channels / (2 * width) / (2 * height));
    grad[index(shape, b, Math.floor(y / 2), Math.floor(x / 2), c)]! += upstream[at]! * mask[at]!;
  }
  return grad;
}

const SHAPES: Shape4[] = [[1, 2, 2, 1], [2, 4, 6, 3], [3, 6, 4, 5]];

for (const shape of SHAPES) {
  Deno.test(`maxPoolWithMask() matches the reference with ties, shape [${shape}]`, () => {
    const values = data(shape.reduce((a, b) => a * b), 1, 3);
    const expected = referencePool(values, shape);
    const [pooled, mask] = maxPoolWithMask(tf.tensor4d(values, shape));
    assertEquals(pooled.shape, [shape[0], shape[1] / 2, shape[2] / 2, shape[3]]);
    assertValues(pooled.dataSync(), expected.pooled);
    assertValues(mask.dataSync(), expected.mask);
    tf.dispose([pooled, mask]);
  });

  Deno.test(`maxUnpool() forward and gradient match the reference, shape [${shape}]`, () => {
    const size = shape.reduce((a, b) => a * b);
    const { mask } = referencePool(data(size, 2, 3), shape);
    const pooledShape: Shape4 = [shape[0], shape[1] / 2, shape[2] / 2, shape[3]];
    const values = data(size / 4, 3, 100);
    const upstream = data(size, 4, 100);
    const maskTensor = tf.tensor4d(mask, shape);
    const x = tf.tensor4d(values, pooledShape);
    const out = maxUnpool(x, maskTensor);
    assertValues(out.dataSync(), referenceUnpool(values, mask, pooledShape));
    const weights = tf.tensor4d(upstream, shape);
    const gradient = tf.grad((input: tf.Tensor) =>
      tf.sum(tf.mul(maxUnpool(input as tf.Tensor4D, maskTensor), weights))
    );
    const grad = gradient(x);
    assertValues(grad.dataSync(), referencePoolWindowSum(upstream, mask, pooledShape));
    tf.dispose([maskTensor, x, out, weights, grad]);
  });

  Deno.test(`maxPoolWithMask() gradient reaches only the first maximum, shape [${shape}]`, () => {
    const size = shape.reduce((a, b) => a * b);
    const values = data(size, 5, 3);
    const { mask } = referencePool(values, shape);
    const pooledShape: Shape4 = [shape[0], shape[1] / 2, shape[2] / 2, shape[3]];
    const upstream = data(size / 4, 6, 100);
    const weights = tf.tensor4d(upstream, pooledShape);
    const x = tf.tensor4d(values, shape);
    const grad = tf.grad((input: tf.Tensor) =>
      tf.sum(tf.mul(maxPoolWithMask(input as tf.Tensor4D)[0], weights))
    )(x);
    // d(sum(pooled * w))/dx = w at the recorded position, 0 elsewhere = unpool(w, mask).
    assertValues(grad.dataSync(), referenceUnpool(upstream, mask, pooledShape));
    tf.dispose([weights, x, grad]);
  });
}

Deno.test("maxUnpool() after maxPoolWithMask() routes the gradient through the same positions", () => {
  const shape: Shape4 = [2, 4, 4, 3];
  const values = data(2 * 4 * 4 * 3, 7, 4);
  const { mask } = referencePool(values, shape);
  const upstream = data(values.length, 8, 100);
  const weights = tf.tensor4d(upstream, shape);
  const x = tf.tensor4d(values, shape);
  const grad = tf.grad((input: tf.Tensor) => {
    const [pooled, poolMask] = maxPoolWithMask(input as tf.Tensor4D);
    return tf.sum(tf.mul(maxUnpool(pooled, poolMask), weights));
  })(x);
  // pool then unpool keeps x at the mask, so the gradient is w * mask.
  assertValues(grad.dataSync(), upstream.map((value, at) => value * mask[at]!));
  tf.dispose([weights, x, grad]);
});

Deno.test("maxPoolWithMask() and maxUnpool() leak no tensors, gradient included", () => {
  const x = tf.randomUniform([2, 4, 4, 3]) as tf.Tensor4D;
  const before = tf.memory().numTensors;
  const grad = tf.grad((input: tf.Tensor) => {
    const [pooled, mask] = maxPoolWithMask(input as tf.Tensor4D);
    return tf.sum(maxUnpool(pooled, mask));
  })(x);
  grad.dispose();
  assertEquals(tf.memory().numTensors, before);
  x.dispose();
});

Deno.test("maxUnpool() refuses a mask of the wrong shape", () => {
  const x = tf.zeros([1, 2, 2, 3]) as tf.Tensor4D;
  const mask = tf.zeros([1, 4, 4, 2]) as tf.Tensor4D;
  assertThrows(() => maxUnpool(x, mask), /mask shape \[1,4,4,2\] does not match/);
  tf.dispose([x, mask]);
});

Deno.test("maxPoolWithMask() refuses an odd height", () => {
  const x = tf.zeros([1, 3, 2, 1]) as tf.Tensor4D;
  assertThrows(() => maxPoolWithMask(x), /even height and width, got 3x2/);
  x.dispose();
});

Deno.test("MaxPoolWithMask and MaxUnpool layers save and load as model.json", async () => {
  const input = tf.input({ shape: [4, 4, 3] });
  const [pooled, mask] = new MaxPoolWithMask({ name: "pool" }).apply(input) as tf.SymbolicTensor[];
  const output = new MaxUnpool({ name: "unpool" }).apply([pooled!, mask!]) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: output });
  let artifacts: tf.io.ModelArtifacts | undefined;
  await model.save(tf.io.withSaveHandler((saved) => {
    artifacts = saved;
    return Promise.resolve({
      modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" },
    });
  }));
  const topology = JSON.stringify(artifacts!.modelTopology);
  assert(topology.includes('"class_name":"MaxPoolWithMask"'));
  const loaded = await tf.loadLayersModel(tf.io.fromMemory(artifacts!));
  const x = tf.tensor4d(data(48, 9, 3), [1, 4, 4, 3]);
  const expected = model.predict(x) as tf.Tensor;
  const actual = loaded.predict(x) as tf.Tensor;
  assertValues(actual.dataSync(), expected.dataSync());
  tf.dispose([x, expected, actual]);
  model.dispose();
  loaded.dispose();
});

Deno.test("maxPoolWithMask() and maxUnpool() on the engine's wasm backend match the cpu backend, with ties", async () => {
  const seeded = (shape: number[], seed: number) =>
    tf.tidy(() => tf.sub(tf.mul(tf.randomUniform(shape, 0, 1, "float32", seed), 2), 1));
  const run = () =>
    tf.tidy(() => {
      const x = tf.round(tf.mul(seeded([2, 4, 6, 3], 41), 2)) as tf.Tensor4D;
      const dy = seeded([2, 4, 6, 3], 42);
      const f = (x: tf.Tensor) => {
        const [pooled, mask] = maxPoolWithMask(x as tf.Tensor4D);
        return maxUnpool(tf.mul(pooled, 3) as tf.Tensor4D, mask);
      };
      const grad = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(f(x), dy)))(x);
      return [...f(x).dataSync(), ...grad.dataSync()];
    });
  const previous = tf.getBackend();
  await setupBackend("cpu", { quiet: true });
  const expected = run();
  for (const blas of [true, false]) {
    await setupBackend("wasm", { quiet: true, blas });
    // With oneDNN, the mask is the engine's one kernel, not the fallback's ten operations.
    const kernels = (await tf.profile(() => run())).kernelNames;
    if (tf.getKernel("SegmentMaxPoolMask", "wasm") !== undefined) {
      assert(kernels.includes("SegmentMaxPoolMask"), `ran ${kernels}`);
      assert(!kernels.includes("GreaterEqual"), `ran ${kernels}`);
    }
    const actual = run();
    assertEquals(actual.length, expected.length);
    const worst = Math.max(...actual.map((value, i) => Math.abs(value - expected[i]!)));
    assert(worst < 1e-5, `wasm (blas ${blas}) differs from cpu by ${worst}`);
  }
  await tf.setBackend(previous);
});

Deno.test("a model pools once per MaxPoolWithMask layer, though tfjs-layers applies it once per output", async () => {
  const input = tf.input({ shape: [4, 4, 3] });
  const [pooled, mask] = new MaxPoolWithMask({}).apply(input) as tf.SymbolicTensor[];
  const output = new MaxUnpool({}).apply([pooled!, mask!]) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: output });
  const x = tf.tensor4d(data(2 * 48, 10, 3), [2, 4, 4, 3]);
  const count = (info: { kernels: { name: string }[] }) =>
    info.kernels.filter((kernel) => kernel.name === "MaxPool").length;
  const direct = count(await tf.profile(() => maxPoolWithMask(x)));
  const applied = await tf.profile(() => model.apply(x, { training: true }) as tf.Tensor);
  assert(direct > 0);
  assertEquals(count(applied), direct);
  // And the result is the unpooling of the pooling.
  const expected = referencePool(x.dataSync() as Float32Array, [2, 4, 4, 3]);
  const y = model.predict(x) as tf.Tensor;
  assertValues(
    y.dataSync(),
    referenceUnpool(expected.pooled, expected.mask, [2, 2, 2, 3]),
  );
  tf.dispose([x, y]);
  model.dispose();
});
