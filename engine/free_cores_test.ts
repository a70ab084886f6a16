/**
 * The thread count oneDNN's kernels follow: all cores when the machine is
 * idle, fewer when other processes are busy.
 */
import { assert, assertEquals } from "./assert.ts";
import { type CpuCounters, FreeCores, readCpuCounters } from "./free_cores.ts";

/** A reader that returns the given counters one after another. */
function readings(...counters: (CpuCounters | null)[]): () => CpuCounters | null {
  return () => counters.shift() ?? null;
}

Deno.test("FreeCores gives every core when only this process was busy", () => {
  const cores = new FreeCores(4, {
    read: readings({ busy: 0, total: 0, self: 0 }, { busy: 390, total: 400, self: 390 }),
    agree: 1,
  });
  cores.threads(0);
  assertEquals(cores.threads(1000), 4);
});

Deno.test("FreeCores leaves out the cores other processes (and the hypervisor) kept busy", () => {
  // 8 cores over 100 ms: others busy for 290 of the 800 core-milliseconds, about 3 cores.
  const cores = new FreeCores(8, {
    read: readings({ busy: 0, total: 0, self: 0 }, { busy: 690, total: 800, self: 400 }),
    agree: 1,
  });
  cores.threads(0);
  assertEquals(cores.threads(1000), 5);
});

Deno.test("FreeCores keeps at least one thread and holds its count between readings", () => {
  let reads = 0;
  const cores = new FreeCores(2, {
    read: () => {
      reads++;
      return { busy: 200 * reads, total: 200 * reads, self: 0 };
    },
    intervalMs: 500,
    agree: 1,
  });
  cores.threads(0);
  assertEquals(cores.threads(600), 1);
  assertEquals(cores.threads(900), 1);
  assertEquals(reads, 2, "read again before the interval passed");
});

Deno.test("FreeCores changes its count only after readings in a row agree", () => {
  // 2 cores; other processes busy for a whole core in readings 2, 4 and 5 only.
  const busy = [0, 0, 1, 0, 1, 1];
  let reading = 0;
  let others = 0;
  const cores = new FreeCores(2, {
    read: () => {
      others += 100 * (busy[reading++] ?? 0);
      return { busy: others, total: 200 * reading, self: 0 };
    },
    intervalMs: 1,
    agree: 2,
  });
  const counts = [0, 2, 4, 6, 8, 10].map((now) => cores.threads(now));
  assertEquals(counts, [2, 2, 2, 2, 2, 1]);
});

Deno.test("FreeCores gives every core where the counters cannot be read", () => {
  const cores = new FreeCores(2, { read: () => null });
  assertEquals(cores.threads(0), 2);
  assertEquals(cores.threads(1000), 2);
});

Deno.test("FreeCores on this machine: one core fewer while another process spins on it", async () => {
  const counters = readCpuCounters();
  if (counters === null) {
    console.log("skipped: the CPU counters cannot be read (run with --allow-sys=cpus)");
    return;
  }
  const cpus = navigator.hardwareConcurrency;
  const cores = new FreeCores(cpus, { intervalMs: 0, agree: 1 });
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  cores.threads(performance.now());
  await sleep(400);
  const idle = cores.threads(performance.now());
  const spinner = new Deno.Command(Deno.execPath(), {
    args: ["eval", "const end = Date.now() + 5000; while (Date.now() < end);"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    await sleep(300); // the spinner starts
    cores.threads(performance.now());
    await sleep(600);
    const busy = cores.threads(performance.now());
    assert(
      busy <= idle - 1 || busy === 1,
      `with one core spinning: ${busy} threads (idle: ${idle})`,
    );
  } finally {
    spinner.kill();
    await spinner.status;
  }
});
