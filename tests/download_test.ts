import sharp from "sharp";
import { assert, assertEquals, assertRejects } from "../lib/assert.ts";
import { downloadImori, IMORI_SHA256, imoriFiles, sha256 } from "../lib/download.ts";
import { join } from "../lib/path.ts";
import { IMORI, requireImori } from "./imori.ts";

await requireImori();

/** Serves `root` on 127.0.0.1 at a free port; paths in `missing` get 404. */
function serve(root: string, missing: string[] = []) {
  const requests: string[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      const path = decodeURIComponent(new URL(request.url).pathname).replace(/^\/Dataset\//, "");
      requests.push(path);
      if (missing.includes(path) || path.includes("..")) {
        return new Response("Not found", {
          status: 404,
        });
      }
      try {
        return new Response(await Deno.readFile(join(root, path)));
      } catch {
        return new Response("Not found", { status: 404 });
      }
    },
  );
  return { server, requests, baseUrl: `http://127.0.0.1:${server.addr.port}/Dataset` };
}

Deno.test(
  "imoriFiles() lists the 22 photos and 22 masks that the shared copy holds",
  {},
  async () => {
    const files = imoriFiles();
    assertEquals(new Set(files).size, 44);
    for (const file of files) assert((await Deno.stat(join(IMORI, file))).isFile, file);
  },
);

Deno.test("IMORI_SHA256 lists the SHA-256 of every file of the shared copy", async () => {
  assertEquals(Object.keys(IMORI_SHA256).sort(), imoriFiles().sort());
  for (const file of imoriFiles()) {
    assertEquals(await sha256(await Deno.readFile(join(IMORI, file))), IMORI_SHA256[file], file);
  }
});

Deno.test({
  name: "downloadImori() fetches again a present file whose SHA-256 differs, though it decodes",
  fn: async () => {
    const { server, requests, baseUrl } = serve(IMORI);
    const out = join(await Deno.makeTempDir(), "imori");
    try {
      await downloadImori({ baseUrl, out });
      const file = "train/images/madara/madara_0003.jpg";
      const original = await Deno.readFile(join(IMORI, file));
      // Re-encoded: still a good JPEG of the same photo, but not the dataset's file.
      const changed = await sharp(original).jpeg({ quality: 50 }).toBuffer();
      await Deno.writeFile(join(out, file), changed);
      requests.length = 0;
      assertEquals(await downloadImori({ baseUrl, out }), { downloaded: 1, present: 43 });
      assertEquals(requests, [file]);
      assertEquals(await Deno.readFile(join(out, file)), original);
    } finally {
      await server.shutdown();
      await Deno.remove(join(out, ".."), { recursive: true });
    }
  },
});

Deno.test({
  name: "downloadImori() refuses a fetched file whose SHA-256 differs, after one retry",
  fn: async () => {
    const file = "test/images/akahara/akahara_0009.jpg";
    const changed = new Uint8Array(
      await sharp(join(IMORI, file)).jpeg({ quality: 50 }).toBuffer(),
    );
    const changedSha256 = await sha256(changed);
    assert(changedSha256 !== IMORI_SHA256[file]);
    const root = await Deno.makeTempDir();
    await new Deno.Command("cp", { args: ["-r", `${IMORI}/train`, `${IMORI}/test`, root] })
      .output();
    await Deno.writeFile(join(root, file), changed);
    const { server, requests, baseUrl } = serve(root);
    const out = join(root, "out");
    try {
      await assertRejects(
        () => downloadImori({ baseUrl, out }),
        (error: Error) => {
          assertEquals(error.name, "UserError");
          assertEquals(
            error.message,
            `Cannot download ${baseUrl}/${file}: its SHA-256 is ${changedSha256}, not ` +
              `${IMORI_SHA256[file]} as lib/download.ts lists ` +
              "it, so the file was changed or damaged; run `deno task download` again, or " +
              "check --base-url (it must serve the Imori files unchanged)",
          );
          return true;
        },
      );
      assertEquals(requests.filter((path) => path === file).length, 2, "fetched twice");
      await assertRejects(() => Deno.stat(join(out, file)), Deno.errors.NotFound);
    } finally {
      await server.shutdown();
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name: "downloadImori() fetches every file from a local server, then resumes",
  fn: async () => {
    const { server, requests, baseUrl } = serve(IMORI);
    const out = join(await Deno.makeTempDir(), "imori");
    try {
      const first = await downloadImori({ baseUrl, out });
      assertEquals(first, { downloaded: 44, present: 0 });
      for (const file of imoriFiles()) {
        assertEquals(await Deno.readFile(join(out, file)), await Deno.readFile(join(IMORI, file)));
      }
      const leftovers = [];
      for await (const entry of Deno.readDir(join(out, "train", "images", "akahara"))) {
        if (entry.name.startsWith(".")) leftovers.push(entry.name);
      }
      assertEquals(leftovers, [], "no temporary files left");
      // A damaged file is fetched again; good ones are kept.
      const damaged = join(out, "test/seg_images/madara/madara_0010.png");
      await Deno.writeFile(damaged, new Uint8Array([137, 80, 78, 71]));
      requests.length = 0;
      const second = await downloadImori({ baseUrl, out });
      assertEquals(second, { downloaded: 1, present: 43 });
      assertEquals(requests, ["test/seg_images/madara/madara_0010.png"]);
      assertEquals(
        await Deno.readFile(damaged),
        await Deno.readFile(join(IMORI, "test/seg_images/madara/madara_0010.png")),
      );
    } finally {
      await server.shutdown();
      await Deno.remove(join(out, ".."), { recursive: true });
    }
  },
});

Deno.test({
  name: "downloadImori() gives a one-line error naming the address on HTTP 404",
  fn: async () => {
    const { server, baseUrl } = serve(IMORI, ["train/images/madara/madara_0003.jpg"]);
    const out = await Deno.makeTempDir();
    try {
      await assertRejects(
        downloadImori({ baseUrl, out }),
        new RegExp(
          `^UserError: Cannot download ${baseUrl}/train/images/madara/madara_0003\\.jpg: HTTP 404 .*check --base-url`,
        ),
      );
      await assertRejects(
        Deno.stat(join(out, "train/images/madara/madara_0003.jpg")),
        Deno.errors.NotFound,
      );
    } finally {
      await server.shutdown();
      await Deno.remove(out, { recursive: true });
    }
  },
});

Deno.test("downloadImori() refuses a file that is not an image", async () => {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response("<html>login page</html>"),
  );
  const out = await Deno.makeTempDir();
  try {
    await assertRejects(
      downloadImori({ baseUrl: `http://127.0.0.1:${server.addr.port}`, out }),
      /: the server sent something that is not an image; check --base-url/,
    );
  } finally {
    await server.shutdown();
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("downloadImori() says when the server cannot be reached", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close(); // nothing listens there now
  const out = await Deno.makeTempDir();
  await assertRejects(
    downloadImori({ baseUrl: `http://127.0.0.1:${port}`, out }),
    /^UserError: Cannot download .*: .*; check the network connection/,
  );
  await Deno.remove(out, { recursive: true });
});

Deno.test({
  name: "tools/download.ts downloads with --base-url and --out and exits 0",
  fn: async () => {
    const { server, baseUrl } = serve(IMORI);
    const out = join(await Deno.makeTempDir(), "imori");
    try {
      const output = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-read",
          "--allow-write",
          "--allow-env",
          "--allow-ffi",
          "--allow-net=127.0.0.1",
          new URL("../tools/download.ts", import.meta.url).pathname,
          "--base-url",
          baseUrl,
          "--out",
          out,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stdout = new TextDecoder().decode(output.stdout);
      assertEquals(output.code, 0, new TextDecoder().decode(output.stderr));
      assert(/Done in [\d.]+ s: 44 files downloaded, 0 already present/.test(stdout), stdout);
    } finally {
      await server.shutdown();
      await Deno.remove(join(out, ".."), { recursive: true });
    }
  },
});
