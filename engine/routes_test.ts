/**
 * What `deno task profile` says a kernel ran on is what ran: a convolution
 * and its two gradients report oneDNN (with its implementation), OpenBLAS,
 * the engine's wasm SIMD kernels or the backend's own kernel, as each layer
 * is switched on and off; on the pure wasm path a concatenation along
 * channels and its split run on the SIMD kernels.
 */
import * as tf from "@tensorflow/tfjs";
import { assert, assertEquals } from "./assert.ts";
import { setupBackend } from "./backend.ts";
import { openBlas } from "./blas.ts";
import { openDnnl } from "./dnnl.ts";
import { callRoute, listenRoutes } from "./routes.ts";

/** The routes of each convolution kernel in one forward and backward pass. */
function convolutionRoutes(): Record<string, string> {
  const x = tf.randomUniform([2, 8, 8, 4], -1, 1, "float32", 1) as tf.Tensor4D;
  const filter = tf.randomUniform([3, 3, 4, 8], -1, 1, "float32", 2) as tf.Tensor4D;
  const dy = tf.randomUniform([2, 8, 8, 8], -1, 1, "float32", 3) as tf.Tensor4D;
  const routes: Record<string, string> = {};
  const record = (name: string, f: () => tf.Tensor) => {
    const { result, routes: reported } = listenRoutes(f);
    routes[name] = callRoute(reported, "none");
    result.dispose();
  };
  const attrs = { strides: 1, pad: "same", dataFormat: "NHWC", dilations: 1 };
  const run = (kernel: string, inputs: Record<string, tf.Tensor>, more = {}) => () =>
    tf.engine().runKernel(kernel, inputs, { ...attrs, ...more }) as tf.Tensor;
  record("Conv2D", run("Conv2D", { x, filter }));
  record(
    "Conv2DBackpropInput",
    run("Conv2DBackpropInput", { dy, filter }, { inputShape: x.shape }),
  );
  record(
    "Conv2DBackpropFilter",
    run("Conv2DBackpropFilter", { x, dy }, { filterShape: filter.shape }),
  );
  tf.dispose([x, filter, dy]);
  return routes;
}

Deno.test("listenRoutes() names the library each convolution kernel ran on, layer by layer", async () => {
  try {
    await setupBackend("wasm", { quiet: true, blas: false, dnnl: false, simd: false });
    const own = convolutionRoutes();
    // The backend's own forward (registered as it is: nothing reports); the engine's
    // gradients call its kernels.
    assertEquals(own, {
      Conv2D: "none",
      Conv2DBackpropInput: "tfjs-backend-wasm",
      Conv2DBackpropFilter: "tfjs-backend-wasm",
    });

    await setupBackend("wasm", { quiet: true, blas: false, dnnl: false });
    assertEquals(convolutionRoutes(), {
      Conv2D: "wasm SIMD",
      Conv2DBackpropInput: "wasm SIMD",
      Conv2DBackpropFilter: "wasm SIMD",
    });
    // Concat and SplitV along channels: the SIMD kernels' strided copies, not the backend's slices.
    const [a, b] = [tf.ones([2, 32, 32, 16]), tf.ones([2, 32, 32, 8])];
    const joined = listenRoutes(() => tf.concat([a, b], 3));
    const split = listenRoutes(() => tf.split(joined.result, [5, 19], 3));
    assertEquals([callRoute(joined.routes, "none"), callRoute(split.routes, "none")], [
      "wasm SIMD",
      "wasm SIMD",
    ]);
    tf.dispose([a, b, joined.result, ...split.result]);

    if (typeof openBlas() !== "string") {
      await setupBackend("wasm", { quiet: true, dnnl: false });
      const blas = convolutionRoutes();
      assert(blas.Conv2D!.startsWith("OpenBLAS"), `Conv2D: ${blas.Conv2D}`);
    } else console.log("OpenBLAS part skipped: not installed");

    const dnnl = openDnnl();
    if (typeof dnnl !== "string") {
      dnnl.close();
      await setupBackend("wasm", { quiet: true });
      for (const [kernel, route] of Object.entries(convolutionRoutes())) {
        // e.g. "oneDNN reorder jit:uni + oneDNN convolution brgconv:avx512_core": each primitive
        // with its kind and implementation, and one of them the convolution.
        const parts = route.split(" + ");
        assert(
          parts.every((part) => /^oneDNN (reorder|convolution) [a-z_0-9]+:[a-z_0-9]+$/.test(part)),
          `${kernel}: ${route}`,
        );
        assert(parts.some((part) => part.startsWith("oneDNN convolution ")), `${kernel}: ${route}`);
      }
    } else console.log(`oneDNN part skipped: ${dnnl}`);
  } finally {
    await setupBackend("cpu", { quiet: true });
  }
});
