import { assert, assertEquals } from "../lib/assert.ts";
import { join } from "../lib/path.ts";
import { type RunningServer, startServer } from "../tools/serve.ts";

/**
 * Sends one request exactly as written (a client such as `fetch` would
 * normalise `..` away before sending) and returns the status and body.
 */
async function rawRequest(
  server: RunningServer,
  requestLine: string,
): Promise<{ status: number; body: string }> {
  const port = Number(new URL(server.url).port);
  const connection = await Deno.connect({ hostname: "127.0.0.1", port });
  await connection.write(
    new TextEncoder().encode(
      `${requestLine}\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`,
    ),
  );
  const text = new TextDecoder().decode(await new Response(connection.readable).arrayBuffer());
  const status = Number(text.split(" ")[1]);
  return { status, body: text.slice(text.indexOf("\r\n\r\n") + 4) };
}

/** A checkpoints folder with one checkpoint, a secret beside it and links that lead out. */
async function withServer(test: (server: RunningServer, dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir();
  const checkpoints = join(dir, "checkpoints");
  await Deno.mkdir(join(checkpoints, "tiny"), { recursive: true });
  await Deno.writeTextFile(join(checkpoints, "tiny", "model.json"), '{"modelTopology":{}}');
  await Deno.writeTextFile(
    join(checkpoints, "tiny", "training_state.json"),
    '{"model":"unetlike","size":32,"iteration":7}',
  );
  await Deno.mkdir(join(checkpoints, "tiny.previous"));
  await Deno.writeTextFile(join(checkpoints, "tiny.previous", "model.json"), "{}");
  await Deno.writeTextFile(join(checkpoints, ".hidden.json"), "{}");
  await Deno.writeTextFile(join(dir, "secret.txt"), "SECRET");
  await Deno.symlink(join(dir, "secret.txt"), join(checkpoints, "leak.txt"));
  await Deno.symlink(dir, join(checkpoints, "up"));
  await Deno.symlink(join(checkpoints, "tiny"), join(checkpoints, "latest")); // stays inside
  const server = await startServer({ port: 0, checkpoints });
  try {
    await test(server, dir);
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("serve listens on 127.0.0.1 and serves the page, the checkpoints and TensorFlow.js", async () => {
  await withServer(async (server) => {
    assertEquals(new URL(server.url).hostname, "127.0.0.1");
    const page = await fetch(server.url);
    assertEquals(page.headers.get("content-type"), "text/html; charset=utf-8");
    assert((await page.text()).includes('id="class-map"'));
    const model = await fetch(new URL("checkpoints/tiny/model.json", server.url));
    assertEquals(await model.text(), '{"modelTopology":{}}');
    const linked = await fetch(new URL("checkpoints/latest/model.json", server.url));
    assertEquals(linked.status, 200, "a link that stays inside the folder is followed");
    await linked.body?.cancel();
    for (
      const [path, type] of [
        ["vendor/tf.min.js", "text/javascript; charset=utf-8"],
        ["vendor/tf-backend-wasm.min.js", "text/javascript; charset=utf-8"],
        ["vendor/tfjs-backend-wasm-simd.wasm", "application/wasm"],
        ["lib/custom_layers.js", "text/javascript; charset=utf-8"],
        ["lib/classes.js", "text/javascript; charset=utf-8"],
        ["lib/segment_pixels.js", "text/javascript; charset=utf-8"],
        ["app.js", "text/javascript; charset=utf-8"],
      ]
    ) {
      const response = await fetch(new URL(path!, server.url));
      assertEquals([path, response.status, response.headers.get("content-type")], [
        path,
        200,
        type,
      ]);
      await response.body?.cancel();
    }
  });
});

Deno.test("serve lists the checkpoints as JSON, leaving out hidden and .previous folders", async () => {
  await withServer(async (server) => {
    const listing = await (await fetch(new URL("checkpoints/", server.url))).json();
    assertEquals(listing, [
      { name: "latest", model: "unetlike", size: 32, iteration: 7 },
      { name: "tiny", model: "unetlike", size: 32, iteration: 7 },
    ]);
  });
});

Deno.test("serve refuses every path outside its folders: .., encoded .., absolute, links out", async () => {
  await withServer(async (server) => {
    const attempts = [
      "/../secret.txt",
      "/checkpoints/../../secret.txt",
      "/%2e%2e/secret.txt",
      "/checkpoints/%2e%2e/secret.txt",
      "/checkpoints/%2E%2E/%2e%2e/deno.json",
      "/checkpoints/..%2fsecret.txt",
      "/checkpoints/..%5csecret.txt",
      "/checkpoints/%252e%252e/secret.txt",
      "//etc/passwd",
      "/%2fetc%2fpasswd",
      "/checkpoints//etc/passwd",
      `/checkpoints/${encodeURIComponent("/etc/passwd")}`,
      "http://127.0.0.1/etc/passwd",
      "/checkpoints/leak.txt",
      "/checkpoints/up/secret.txt",
      "/checkpoints/.hidden.json",
      "/lib/checkpoint.ts",
      "/deno.json",
      "/web/index.html",
    ];
    for (const target of attempts) {
      const { status, body } = await rawRequest(server, `GET ${target} HTTP/1.1`);
      assert(status === 404 || status === 403, `GET ${target} answered ${status}`);
      assert(!body.includes("SECRET") && !body.includes("root:"), `GET ${target} leaked`);
    }
    // The links that lead out exist, so they are forbidden rather than missing.
    assertEquals((await rawRequest(server, "GET /checkpoints/leak.txt HTTP/1.1")).status, 403);
    assertEquals((await rawRequest(server, "GET /checkpoints/up/secret.txt HTTP/1.1")).status, 403);
  });
});

Deno.test("serve is read-only: GET and HEAD only", async () => {
  await withServer(async (server, dir) => {
    for (const method of ["POST", "PUT", "DELETE", "PATCH"]) {
      const response = await fetch(new URL("checkpoints/tiny/model.json", server.url), {
        method,
        body: "{}",
      });
      assertEquals(response.status, 405, method);
      assertEquals(response.headers.get("allow"), "GET, HEAD");
      await response.body?.cancel();
    }
    const head = await fetch(new URL("checkpoints/tiny/model.json", server.url), {
      method: "HEAD",
    });
    assertEquals(head.status, 200);
    assertEquals(head.headers.get("content-length"), "20");
    assertEquals(
      await Deno.readTextFile(join(dir, "checkpoints", "tiny", "model.json")),
      '{"modelTopology":{}}',
    );
  });
});

Deno.test("serve --data lists a dataset folder's Imori files at /data/ and keeps to the folder", async () => {
  const dir = await Deno.makeTempDir();
  const data = join(dir, "imori");
  const masks = join(data, "train", "seg_images", "akahara");
  await Deno.mkdir(join(data, "train", "images", "akahara"), { recursive: true });
  await Deno.mkdir(masks, { recursive: true });
  await Deno.writeTextFile(join(data, "train", "images", "akahara", "akahara_0001.jpg"), "JPEG");
  await Deno.writeTextFile(join(masks, "akahara_0001.png"), "PNG");
  await Deno.writeTextFile(join(masks, ".DS_Store"), "hidden");
  await Deno.writeTextFile(join(dir, "secret.txt"), "SECRET");
  await Deno.symlink(join(dir, "secret.txt"), join(masks, "leak.png"));
  const server = await startServer({ port: 0, checkpoints: "no/such/folder", data });
  const without = await startServer({ port: 0, checkpoints: "no/such/folder" });
  try {
    const listing = await (await fetch(new URL("data/", server.url))).json();
    assertEquals(listing, {
      name: "imori",
      files: ["train/images/akahara/akahara_0001.jpg", "train/seg_images/akahara/akahara_0001.png"],
    });
    const photo = await fetch(new URL("data/train/images/akahara/akahara_0001.jpg", server.url));
    assertEquals([photo.status, await photo.text()], [200, "JPEG"]);
    for (
      const target of [
        "/data/../secret.txt",
        "/data/%2e%2e/secret.txt",
        "/data/train/seg_images/akahara/leak.png",
        "/data/train/seg_images/akahara/.DS_Store",
      ]
    ) {
      const { status, body } = await rawRequest(server, `GET ${target} HTTP/1.1`);
      assert(status === 404 || status === 403, `GET ${target} answered ${status}`);
      assert(!body.includes("SECRET"), `GET ${target} leaked`);
    }
    assertEquals((await rawRequest(server, "POST /data/ HTTP/1.1")).status, 405);
    assertEquals(await (await fetch(new URL("data/", without.url))).json(), {
      name: null,
      files: [],
    });
    assertEquals((await fetch(new URL("data/a.jpg", without.url))).status, 404);
  } finally {
    await server.close();
    await without.close();
    await Deno.remove(dir, { recursive: true });
  }
});
