/**
 * The flags every exercise shares, in one place so that they are spelled the
 * same in every script: the data and training flags, those of a script that
 * trains and then tests, and those of a script that only tests.
 *
 * A script states its protocol (the tutorial answer's iterations, batch size,
 * learning rate, input size) at its top and passes it to
 * {@linkcode withDefaults}, so that `--help` shows that protocol as the
 * defaults and every value stays a flag.
 *
 * @module
 */
import { BATCH_NORM_STATS } from "./batch_norm_stats.ts";
import { DATA_FLAGS, type FlagDef, type FlagDefs, shellWord, TRAIN_FLAGS } from "./flag_defs.ts";
import { LOSSES } from "./losses.ts";
import { SCHEDULES } from "./schedule.ts";
import { OPTIMIZERS } from "./train.ts";

/** Flags of every exercise that trains: the data and training flags, and a few more. */
export const EXERCISE_FLAGS = {
  ...DATA_FLAGS,
  ...TRAIN_FLAGS,
  optimizer: {
    type: "string",
    default: "sgd",
    choices: OPTIMIZERS,
    help: "Optimizer: sgd (with momentum 0.9, the tutorial's) or adam",
  },
  schedule: {
    type: "string",
    default: "constant",
    choices: SCHEDULES,
    help: "Learning-rate schedule over the run",
  },
  loss: {
    type: "string",
    default: "ce",
    choices: LOSSES,
    help: "Training loss: ce (cross-entropy, the tutorial's) or ce+dice (plus the soft Dice " +
      "loss, which weighs each class the same)",
  },
  resume: {
    type: "boolean",
    default: false,
    help: "Continue training from the checkpoint (weights, optimizer state, iteration)",
  },
  overwrite: {
    type: "boolean",
    default: false,
    help: "Replace a checkpoint of an earlier run in the checkpoint folder (without it, " +
      "training into a folder that holds one is refused: --resume continues it)",
  },
  saveEvery: {
    type: "int",
    default: 100,
    min: 0,
    help: "Save the checkpoint every this many iterations (0: only at the end)",
  },
  bnStats: {
    type: "string",
    default: "recompute",
    choices: BATCH_NORM_STATS,
    help: "Batch-norm statistics for testing: recompute them over the training set after " +
      "training, or keep the moving averages (the tutorial's answers)",
  },
} as const satisfies FlagDefs;

/** Flags of an exercise that trains and then tests in one run. */
export const TRAIN_TEST_FLAGS = {
  ...EXERCISE_FLAGS,
  train: {
    type: "boolean",
    default: true,
    help: "Train first; --no-train tests the saved checkpoint",
  },
  test: {
    type: "boolean",
    default: true,
    help: "Test after training; --no-test only trains",
  },
  flipAverage: {
    type: "boolean",
    default: false,
    help: "Test on the mean prediction over the 8 flips and quarter-turns of each photo",
  },
  testSize: {
    type: "int",
    default: 0,
    min: 0,
    help: "Input size for testing, the same weights at another size (0: --size)",
  },
} as const satisfies FlagDefs;

/**
 * Flags of an exercise that only tests a checkpoint (bin_test, semaseg_test): the data flags,
 * the backend and checkpoint, and how to test; no training flag, which it would ignore.
 */
export const TEST_FLAGS = {
  ...DATA_FLAGS,
  backend: TRAIN_FLAGS.backend,
  checkpoint: TRAIN_FLAGS.checkpoint,
  flipAverage: TRAIN_TEST_FLAGS.flipAverage,
  testSize: TRAIN_TEST_FLAGS.testSize,
} as const satisfies FlagDefs;

/**
 * The same flags with other defaults: a script's protocol becomes what
 * `--help` shows and what a run uses when the flag is not typed.
 *
 * @param defs Flag definitions.
 * @param defaults New default values by camelCase flag name.
 * @returns A copy of `defs` with those defaults.
 * @throws {Error} For a name that is no flag (a bug in the script).
 *
 * @example
 * ```ts
 * import { TRAIN_TEST_FLAGS, withDefaults } from "./exercise_flags.ts";
 * import { assertEquals } from "./assert.ts";
 * const flags = withDefaults(TRAIN_TEST_FLAGS, { iters: 1000, batchSize: 16 });
 * assertEquals([flags.iters.default, flags.batchSize.default, flags.lr.default], [1000, 16, 0.01]);
 * ```
 */
export function withDefaults<T extends FlagDefs>(
  defs: T,
  defaults: { [K in keyof T]?: string | number | boolean },
): T {
  return withField(defs, "default", defaults);
}

/** A copy of `defs` with `field` of the named flags set; throws for a name that is no flag. */
function withField<T extends FlagDefs>(
  defs: T,
  field: "default" | "help",
  values: Record<string, unknown>,
): T {
  const copy: Record<string, FlagDef> = { ...defs };
  for (const [name, value] of Object.entries(values)) {
    const def = copy[name];
    if (!def) {
      throw new Error(`No flag --${name} to give a ${field === "help" ? "help text" : field}`);
    }
    copy[name] = { ...def, [field]: value } as FlagDef;
  }
  return copy as T;
}

/**
 * The same flags with other help texts: a shared flag said for this command
 * (its real default folder, what it means here).
 *
 * @param defs Flag definitions.
 * @param help New help texts by camelCase flag name.
 * @returns A copy of `defs` with those texts.
 * @throws {Error} For a name that is no flag (a bug in the script).
 *
 * @example
 * ```ts
 * import { TRAIN_TEST_FLAGS, withHelp } from "./exercise_flags.ts";
 * import { assertEquals } from "./assert.ts";
 * const flags = withHelp(TRAIN_TEST_FLAGS, { checkpoint: "Checkpoint folder; default checkpoints/nearest" });
 * assertEquals(flags.checkpoint.help, "Checkpoint folder; default checkpoints/nearest");
 * assertEquals(flags.iters.help, TRAIN_TEST_FLAGS.iters.help);
 * ```
 */
export function withHelp<T extends FlagDefs>(defs: T, help: { [K in keyof T]?: string }): T {
  return withField(defs, "help", help);
}

/**
 * The command an exercise prints as its next step, runnable as printed: the
 * flags of this run that the next command needs are carried over (`--data`
 * when the run was given one, so that the next exercise reads the same
 * photos; `--out`, so that its figures go beside this run's; `--checkpoint`
 * and `--size` when the next command tests the checkpoint just trained),
 * each quoted for the shell where needed. A note goes on the next line,
 * indented to sit under the command after `next: `, so that the command's
 * line pastes into a shell whole.
 *
 * @param next The next step, a command and maybe a note in parentheses after two spaces.
 * @param data The `--data` this run was given, if any.
 * @param carry More flags to carry, by kebab-case name; `undefined` values are left out.
 * @returns The next step to print after `next: `: the command, then the note on a line of its own.
 *
 * @example
 * ```ts
 * import { nextStep } from "./exercise_flags.ts";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(nextStep("deno task bin_test  (test it)", "data/imori"), "deno task bin_test --data data/imori\n      (test it)");
 * assertEquals(nextStep("deno task bin_test", "my photos"), "deno task bin_test --data 'my photos'");
 * assertEquals(nextStep("deno task bin_test  (test it)"), "deno task bin_test\n      (test it)");
 * assertEquals(
 *   nextStep("deno task bin_test  (test it)", undefined, { checkpoint: "/tmp/run 1", size: 32 }),
 *   "deno task bin_test --checkpoint '/tmp/run 1' --size 32\n      (test it)",
 * );
 * ```
 */
export function nextStep(
  next: string,
  data?: string,
  carry: Record<string, string | number | undefined> = {},
): string {
  const flags = Object.entries({ data, ...carry })
    .filter(([, value]) => value !== undefined && value !== "")
    .map(([name, value]) => ` --${name} ${shellWord(String(value))}`).join("");
  const cut = next.indexOf("  (");
  const [command, note] = cut < 0 ? [next, ""] : [next.slice(0, cut), next.slice(cut + 2)];
  // The note on a line of its own, under the command (after `next: `): a line pasted whole
  // into a shell runs, where `command  (note)` is a syntax error.
  return note ? `${command}${flags}\n      ${note}` : `${command}${flags}`;
}
