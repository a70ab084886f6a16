/**
 * Tensors saved for a gradient without an `Identity` call each
 * (`kernels/saved_tensors.ts`) on the wasm backend: a kernel's saved tensors
 * and a `tf.customGrad`'s (tfjs's `fusedConv2d` op saves four), with the cpu
 * backend's gradients, no tensor left behind, and a gradient of a gradient,
 * where tfjs's own clones must still run.
 */
import * as tf from "@tensorflow/tfjs";
import { assert, assertEquals } from "./assert.ts";
import { setupBackend } from "./backend.ts";

/** Runs `f` and counts the kernels it dispatched, by name. */
function countKernels<T>(f: () => T): { result: T; counts: Map<string, number> } {
  const engine = tf.engine() as unknown as { runKernel: (name: string, ...rest: unknown[]) => T };
  const counts = new Map<string, number>();
  const original = engine.runKernel;
  engine.runKernel = function (name: string, ...rest: unknown[]) {
    counts.set(name, (counts.get(name) ?? 0) + 1);
    return original.call(this, name, ...rest);
  };
  try {
    return { result: f(), counts };
  } finally {
    engine.runKernel = original;
  }
}

/**
 * The gradients of a fused convolution with a bias (tfjs's `fusedConv2d` op, a
 * `tf.customGrad` under a gradient when its activation is linear), then a
 * ReLU and a multiply, on x, filter and bias.
 */
function fusedConvGradients(): Float32Array[] {
  return tf.tidy(() => {
    const x = tf.randomUniform([2, 6, 6, 3], -1, 1, "float32", 1);
    const filter = tf.randomUniform([3, 3, 3, 4], -1, 1, "float32", 2);
    const bias = tf.randomUniform([4], -1, 1, "float32", 3);
    const weights = tf.randomUniform([2, 6, 6, 4], -1, 1, "float32", 4);
    const grads = tf.grads((x: tf.Tensor, filter: tf.Tensor, bias: tf.Tensor) =>
      tf.sum(tf.mul(
        tf.relu(tf.fused.conv2d({
          x: x as tf.Tensor4D,
          filter: filter as tf.Tensor4D,
          strides: 1,
          pad: "same",
          bias,
        })),
        weights,
      ))
    )([x, filter, bias]);
    return grads.map((grad) => grad.dataSync() as Float32Array);
  });
}

Deno.test("a custom gradient's saved tensors on wasm: no Identity call, cpu's gradients, no tensor left", async () => {
  await setupBackend("cpu", { quiet: true });
  const expected = fusedConvGradients();
  await setupBackend("wasm", { quiet: true });
  fusedConvGradients(); // first use: kernels and caches set up
  const before = tf.memory().numTensors;
  const { result, counts } = countKernels(fusedConvGradients);
  assertEquals(tf.memory().numTensors, before);
  // tfjs's fusedConv2d saves x, the filter, the output and the bias as clones: four Identity calls.
  assertEquals(counts.get("Identity") ?? 0, 0);
  assert((counts.get("Conv2DBackpropFilter") ?? 0) + (counts.get("Conv2DBackpropInput") ?? 0) > 0);
  for (const [i, gradient] of result.entries()) {
    for (let j = 0; j < gradient.length; j++) {
      const want = expected[i]![j]!;
      assert(
        Math.abs(gradient[j]! - want) <= 1e-4 * Math.max(1, Math.abs(want)),
        `gradient ${i}[${j}]: ${gradient[j]} on wasm, ${want} on cpu`,
      );
    }
  }
});

Deno.test("a gradient of a gradient through saved tensors on wasm is cpu's", async () => {
  // cube(x) = x^3 saves x for its gradient 3 x^2 dy; the second derivative, 6x, needs the
  // saved x to stay linked to x on the outer tape (tfjs's own clone at that depth).
  const second = () =>
    tf.tidy(() => {
      const cube = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
        const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
        save([x]);
        return {
          value: tf.pow(x, 3),
          gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
            tf.mul(dy, tf.mul(3, tf.square(saved[0]!))),
        };
      });
      const x = tf.tensor1d([-2, 0.5, 3]);
      const d2 = tf.grad((x: tf.Tensor) => tf.grad((x: tf.Tensor) => tf.sum(cube(x)))(x).sum())(x);
      return [...d2.dataSync()];
    });
  await setupBackend("cpu", { quiet: true });
  const expected = second();
  await setupBackend("wasm", { quiet: true });
  assertEquals(second(), expected);
  assertEquals(expected, [-12, 3, 18]);
});
