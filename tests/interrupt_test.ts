/**
 * Ctrl+C during training loses nothing: the run stops after its iteration,
 * saves it and says how to continue; a second Ctrl+C quits at once. Each
 * test sends the signal to a child process, as a terminal does.
 */
import { assert, assertEquals } from "../lib/assert.ts";
import { join } from "../lib/path.ts";
import { writeSyntheticDataset } from "../lib/synthetic_files.ts";
import { run as nearest } from "../exercises/nearest.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const SIGNALS_WORK = Deno.build.os !== "windows"; // Deno cannot send SIGINT to a child there

/** Runs `deno task nearest` as a child; sends `signal` once it printed `iteration 50/...`. */
async function interrupted(args: string[], signal: Deno.Signal) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...["--allow-read", "--allow-write", "--allow-env", "--allow-ffi", "--allow-sys=cpus"],
      "exercises/nearest.ts",
      ...args,
    ],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  let stdout = "";
  let sent = false;
  for await (const text of child.stdout.pipeThrough(new TextDecoderStream())) {
    stdout += text;
    if (!sent && /^iteration +50\//m.test(stdout)) { // off a terminal: a line every 50
      child.kill(signal);
      sent = true;
    }
  }
  const { code } = await child.status;
  return { code, stdout, stderr: await stderr, sent };
}

Deno.test({
  name: "Ctrl+C stops training after its iteration, saves it, says how to resume, exits 130",
  ignore: !SIGNALS_WORK,
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "interrupt_test_" });
    await writeSyntheticDataset(join(root, "data"), { trainPerClass: 2, testPerClass: 1 });
    const checkpoint = join(root, "ck");
    const flags = [
      ...["--data", join(root, "data"), "--size", "16", "--backend", "wasm"],
      ...["--out", join(root, "out"), "--checkpoint", checkpoint],
    ];
    const { code, stdout, stderr, sent } = await interrupted(
      [...flags, "--iters", "100000"],
      "SIGINT",
    );
    assert(sent, `training never reached iteration 50:\n${stdout}\n${stderr}`);
    assertEquals(code, 130, stderr);
    const line = stderr.trim().split("\n").at(-1)!;
    // With this run's --out, so that the resumed run's figures go beside these
    const command = `deno task nearest --checkpoint ${checkpoint} --data ${join(root, "data")} ` +
      `--out ${join(root, "out")}`;
    const match = line.match(
      /^stopped at iteration (\d+) \(Ctrl\+C\); checkpoint (.+) holds it; `(.+)` continues$/,
    );
    assert(match, `the last line says where training stopped: ${line}`);
    assertEquals([match[2], match[3]], [checkpoint, `${command} --resume`]);
    const iteration = Number(match[1]);
    assert(iteration < 100, `stopped at ${iteration}: the signal waited for the save at 100`);
    const state = JSON.parse(await Deno.readTextFile(join(checkpoint, "training_state.json")));
    assertEquals(state.iteration, iteration);
    assertEquals(state.losses.length, iteration);
    assert(stdout.includes(`loss curve: ${join(root, "out", "nearest_loss.png")}\n`), stdout);
    assert(!stdout.includes("test mIoU"), "the test is skipped");

    // --resume continues from that iteration.
    const log = console.log;
    console.log = () => {};
    try {
      const resumed = await nearest([...flags, "--resume", "--iters", String(iteration + 3)]);
      resumed.model!.dispose();
      assertEquals(resumed.trained!.losses.length, 3);
    } finally {
      console.log = log;
    }
    const after = JSON.parse(await Deno.readTextFile(join(checkpoint, "training_state.json")));
    assertEquals([after.iteration, after.losses.length], [iteration + 3, iteration + 3]);
    assertEquals(after.losses.slice(0, iteration), state.losses);
    await Deno.remove(root, { recursive: true });
  },
});

Deno.test({
  name:
    "stopOnSignal() aborts on the first signal, takes it again at once for the same, quits at once on a second",
  ignore: !SIGNALS_WORK,
  async fn() {
    const script = `
      import { stopOnSignal } from "${join(ROOT, "lib", "interrupt.ts")}";
      const stop = stopOnSignal("quit at once");
      stop.signal.onabort = () => {
        console.log("aborted by " + stop.reason + ", exit " + stop.exitCode);
        Deno.kill(Deno.pid, "SIGTERM"); // the first delivered twice (deno task forwarding it)
        setTimeout(() => {
          console.log("still running");
          Deno.kill(Deno.pid, "SIGTERM"); // the second
        }, 300);
      };
      Deno.kill(Deno.pid, "SIGTERM");
      await new Promise((resolve) => setTimeout(resolve, 5000));
      console.log("not reached");
    `;
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--ext=ts", script],
      cwd: ROOT,
    }).output();
    const stdout = new TextDecoder().decode(output.stdout);
    assertEquals(stdout, "aborted by SIGTERM, exit 143\nstill running\n\nquit at once\n");
    assertEquals(output.code, 143);
  },
});

Deno.test({
  name: "stopOnSignal() disposed leaves Ctrl+C to end the process as before",
  ignore: !SIGNALS_WORK,
  async fn() {
    const script = `
      import { stopOnSignal } from "${join(ROOT, "lib", "interrupt.ts")}";
      { using _stop = stopOnSignal("never"); }
      Deno.kill(Deno.pid, "SIGINT");
      await new Promise((resolve) => setTimeout(resolve, 5000));
      console.log("still running");
    `;
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--ext=ts", script],
      cwd: ROOT,
    }).output();
    assertEquals(new TextDecoder().decode(output.stdout), "");
    assertEquals(output.signal, "SIGINT");
  },
});
