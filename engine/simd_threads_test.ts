/**
 * The SIMD kernels on two threads (`kernels/simd_threads.ts`): the pure wasm
 * path starts tfjs-backend-wasm on a shared heap, and the convolutions that
 * split their work between the caller and the helper match the cpu backend,
 * forward and backward, and give the same floats as one thread. In its own
 * file: the first wasm setup of a test module decides whether its heap is
 * shared.
 */
import * as tf from "@tensorflow/tfjs";
import { assert, assertEquals } from "./assert.ts";
import { setupBackend } from "./backend.ts";
import { loadSimdModule, sharedHeap, simdKernels } from "./kernels/simd.ts";
import type { WasmBackend } from "./kernels/wasm_heap.ts";

/** Two convolutions and a transposed one: Winograd, direct with stride 2, and 2x2 stride 2. */
function loss(x: tf.Tensor4D, w: tf.Tensor4D, strided: tf.Tensor4D, up: tf.Tensor4D): tf.Scalar {
  const a = tf.conv2d(x, w, 1, "same"); // [3, 9, 11, 12]: Winograd, tiles split
  const b = tf.conv2d(x, strided, 2, "same"); // [3, 5, 6, 5]: rows, images and taps split
  const c = tf.conv2dTranspose(b, up, [3, 10, 12, 4], 2, "same"); // [3, 10, 12, 4]
  return tf.addN([tf.sum(tf.mul(a, a)), tf.sum(tf.mul(b, b)), tf.sum(tf.mul(c, c))]) as tf.Scalar;
}

Deno.test({
  name: "convolutions on two SIMD threads match the cpu backend and one thread to the bit",
  // The helper is a Web Worker; it closes when stopped, after the test's end.
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const lines: string[] = [];
    const log = console.log;
    console.log = (...args: unknown[]) => lines.push(args.join(" "));
    try {
      await setupBackend("wasm", { blas: false, dnnl: false, simd: true, threads: 2 });
    } finally {
      console.log = log;
    }
    assert(lines[0]!.includes("SIMD kernels, 2 threads"), String(lines[0]));
    const backend = tf.backend() as WasmBackend;
    assert(sharedHeap(backend), "the pure wasm path should start on a shared heap");
    const module = await loadSimdModule(undefined, { shared: true });
    const threads = simdKernels(backend, module as WebAssembly.Module).threads!;
    const inputs = [
      tf.randomUniform([3, 9, 11, 8], -1, 1, "float32", 1),
      tf.randomUniform([3, 3, 8, 12], -1, 1, "float32", 2),
      tf.randomUniform([3, 3, 8, 5], -1, 1, "float32", 3),
      tf.randomUniform([2, 2, 4, 5], -1, 1, "float32", 4),
    ] as tf.Tensor4D[];
    const grads = tf.grads((x, w, strided, up) =>
      loss(x as tf.Tensor4D, w as tf.Tensor4D, strided as tf.Tensor4D, up as tf.Tensor4D)
    );
    const run = () => {
      const [value, ...gradients] = tf.tidy(() => [
        loss(...(inputs as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D, tf.Tensor4D])),
        ...grads(inputs),
      ]);
      const out = [value!, ...gradients].map((t) => t.dataSync().slice());
      tf.dispose([value!, ...gradients]);
      return out;
    };
    // The first call starts the helper and runs both halves here; later ones split.
    const alone = run();
    const before = threads.helped;
    const split = run();
    assert(threads.helped > before, "the helper should have taken half of the work");
    for (const [i, values] of split.entries()) {
      assert(values.every((v, j) => v === alone[i]![j]), `output ${i} differs from one thread`);
    }
    threads.stop();
    await setupBackend("cpu", { quiet: true });
    const reference = run();
    for (const [i, values] of split.entries()) {
      let error = 0, scale = 0;
      for (const [j, value] of reference[i]!.entries()) {
        error = Math.max(error, Math.abs(value - values[j]!));
        scale = Math.max(scale, Math.abs(value));
      }
      assert(error <= 1e-5 * scale, `output ${i}: max error ${error} of ${scale}`);
    }
    assertEquals(split.length, 5);
    tf.dispose(inputs);
  },
});
