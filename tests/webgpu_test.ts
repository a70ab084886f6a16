/**
 * Training on WebGPU under Deno, as `--backend webgpu` (and `auto` on a
 * machine with a GPU) runs it. tfjs-backend-webgpu reads tensors only
 * asynchronously under Deno: a `dataSync()` anywhere on the way (the mask
 * check, the weight check, a figure's key) ended the run with a stack trace.
 * CI has Mesa's software Vulkan adapter (llvmpipe), which WebGPU runs on.
 */
import { assert, assertEquals } from "../lib/assert.ts";
import { join } from "../lib/path.ts";
import { writeSyntheticDataset } from "../lib/synthetic_files.ts";

const ROOT = decodeURIComponent(new URL("..", import.meta.url).pathname);

Deno.test("an exercise trains, saves, writes its figures and tests on webgpu", async () => {
  const dir = await Deno.makeTempDir({ prefix: "webgpu_test_" });
  try {
    await writeSyntheticDataset(join(dir, "data"), { trainPerClass: 1, testPerClass: 1 });
    const command = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--config",
        join(ROOT, "deno.json"),
        join(ROOT, "exercises", "nearest.ts"),
        ...["--backend", "webgpu", "--iters", "3", "--size", "16", "--data", "data"],
      ],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    });
    const { code, stdout, stderr } = await command.output();
    const output = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
    assertEquals(code, 0, output);
    assert(/^backend: webgpu/m.test(output), output);
    assert(/^test mIoU \d\.\d{3} /m.test(output), output);
    assert((await Deno.stat(join(dir, "answers", "nearest_progress.png"))).isFile);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
