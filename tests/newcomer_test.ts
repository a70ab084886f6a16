/**
 * A newcomer without native libraries: the README's first command (`deno
 * task nearest`) and the card's `deno task bin_loss` then `deno task
 * bin_test`, each as its task in deno.json runs it (same permissions, same
 * defaults: the full protocol), with `SEGMENT_NO_DNNL=1 SEGMENT_NO_BLAS=1` so
 * that the pure wasm path trains, as on most learners' machines. Each must
 * finish and print its test mIoU line.
 *
 * They run in a fresh folder (checkpoints and figures go to the working
 * folder, as for a user), on the dataset the project would pick there:
 * `data/imori` when downloaded, else the built-in synthetic set.
 *
 * This is what caught the pure wasm path's non-finite weights at iteration
 * ~100 (tfjs-backend-wasm's XNNPACK filter cache after an update in place):
 * CI installs oneDNN, so nothing else trained that path to the end.
 */
import { assert, assertEquals } from "../lib/assert.ts";
import { join } from "../lib/path.ts";

const ROOT = decodeURIComponent(new URL("..", import.meta.url).pathname);
const CONFIG = join(ROOT, "deno.json");
const METRICS = /^test mIoU \d\.\d{3} \(.*\) pixel accuracy \d\.\d{3}$/m;

/**
 * The command line of task `name` from deno.json, made to run from any
 * folder: `--config` added and the script's path made absolute.
 */
async function taskCommand(name: string): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(CONFIG)) as { tasks: Record<string, string> };
  const words = config.tasks[name]!.split(/\s+/);
  assertEquals(words.slice(0, 2), ["deno", "run"], `task ${name}`);
  const script = words.at(-1)!;
  assert(script.endsWith(".ts"), `task ${name} ends with its script`);
  return ["run", "--config", CONFIG, ...words.slice(2, -1), join(ROOT, script)];
}

/** Runs a task in `cwd` without native libraries; returns its exit code and output. */
async function runTask(name: string, cwd: string): Promise<{ code: number; output: string }> {
  const command = new Deno.Command(Deno.execPath(), {
    args: await taskCommand(name),
    cwd,
    env: { SEGMENT_NO_DNNL: "1", SEGMENT_NO_BLAS: "1", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  });
  const { code, stdout, stderr } = await command.output();
  const decoder = new TextDecoder();
  return { code, output: decoder.decode(stdout) + decoder.decode(stderr) };
}

/**
 * The lowest test mIoU accepted. With oneDNN the same commands give 0.823
 * (nearest) and 0.844 (bin) on the synthetic set, about 0.68 and 0.70 on
 * Imori; the pure wasm path with stale XNNPACK filters gave 0.087 and 0.298.
 */
const MIN_MIOU = 0.55;

/** Asserts a run finished on pure wasm with a test mIoU line, showing its output if not. */
function assertFinished(name: string, run: { code: number; output: string }): void {
  const tail = run.output.split("\n").slice(-15).join("\n");
  assertEquals(run.code, 0, `deno task ${name} failed:\n${tail}`);
  assert(/^backend: wasm \(/m.test(run.output), `deno task ${name} did not run on pure wasm`);
  const metrics = run.output.match(METRICS);
  assert(metrics !== null, `deno task ${name} printed no test mIoU line:\n${tail}`);
  const miou = Number(metrics[0].split(" ")[2]);
  assert(miou >= MIN_MIOU, `deno task ${name}: test mIoU ${miou} < ${MIN_MIOU}:\n${tail}`);
}

Deno.test("deno task nearest (the README's first command) trains and tests to the end on pure wasm", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "newcomer_nearest_" });
  try {
    assertFinished("nearest", await runTask("nearest", cwd));
    assert((await Deno.stat(join(cwd, "checkpoints", "nearest", "model.json"))).isFile);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("deno task bin_loss then deno task bin_test train and test to the end on pure wasm", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "newcomer_bin_" });
  try {
    const trained = await runTask("bin_loss", cwd);
    assertEquals(trained.code, 0, `deno task bin_loss failed:\n${trained.output.slice(-2000)}`);
    assert(/^backend: wasm \(/m.test(trained.output), "bin_loss did not run on pure wasm");
    assertFinished("bin_test", await runTask("bin_test", cwd));
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});
