/**
 * The flags' definitions and types, platform-neutral (the exercises import
 * them at load time, also in the page's training worker); the parser, which
 * reads the command line, is `flags.ts`.
 *
 * @module
 */

/** The kinds of value a flag takes. */
export type FlagType = "string" | "int" | "number" | "boolean";

/** One flag: its type, default and help text. */
export interface FlagDef {
  /** The value's type; `int` and `number` are checked on parsing. */
  type: FlagType;
  /** One line for `--help`. */
  help: string;
  /** Value when the flag is absent; without one the value is `undefined`. */
  default?: string | number | boolean;
  /** Accepted values of a string flag. */
  choices?: readonly string[];
  /** Smallest accepted value of a numeric flag. */
  min?: number;
  /** Largest accepted value of a numeric flag. */
  max?: number;
  /**
   * A string flag that names a folder: `folder` is refused when it is a file
   * (or lies under one), `output folder` also when it cannot be written; both
   * before the script does any work.
   */
  path?: "folder" | "output folder";
}

/** Flag definitions keyed by camelCase name (`batchSize` is `--batch-size`). */
export type FlagDefs = Record<string, FlagDef>;

/** A string flag with choices has their type (`"sgd" | "adam"`), so no script casts it. */
type ValueOf<D extends FlagDef> = D["type"] extends "boolean" ? boolean
  : D["type"] extends "string" ? (D extends { choices: readonly (infer C)[] } ? C : string)
  : number;

/** Parsed values: a flag with a default always has a value. */
export type FlagValues<T extends FlagDefs> = {
  [K in keyof T]: T[K] extends { default: string | number | boolean } ? ValueOf<T[K]>
    : ValueOf<T[K]> | undefined;
};

/** What a script says about itself in `--help`. */
export interface ScriptInfo {
  /** How to run it, e.g. `deno task bin_loss [flags]`. */
  usage: string;
  /** One or two sentences on what it does. */
  summary: string;
}

/**
 * Converts a camelCase name to its kebab-case flag.
 *
 * @param name camelCase name.
 * @returns The flag without dashes.
 *
 * @example
 * ```ts
 * import { kebab } from "./flag_defs.ts";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(kebab("batchSize"), "batch-size");
 * ```
 */
export function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase());
}

/**
 * Whether a flag was typed on the command line (`--name`, `--name=value`, or
 * `--no-name` for a boolean), rather than left at its default.
 *
 * @param args The raw command-line arguments.
 * @param name The flag's camelCase name.
 * @returns Whether it was typed.
 *
 * @example
 * ```ts
 * import { flagTyped } from "./flag_defs.ts";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(flagTyped(["--batch-size=8"], "batchSize"), true);
 * assertEquals(flagTyped(["--no-test"], "test"), true);
 * assertEquals(flagTyped(["--iters", "5"], "size"), false);
 * ```
 */
export function flagTyped(args: readonly string[], name: string): boolean {
  const flag = `--${kebab(name)}`;
  return args.some((arg) =>
    arg === flag || arg.startsWith(`${flag}=`) || arg === `--no-${kebab(name)}`
  );
}

/** Flags of every script that reads the dataset. */
export const DATA_FLAGS = {
  data: {
    type: "string",
    help: "Dataset folder in the Imori layout; default data/imori, else the built-in synthetic set",
  },
  size: {
    type: "int",
    default: 64,
    min: 8,
    max: 1024,
    help: "Model input height and width in pixels",
  },
  out: { type: "string", default: "answers", path: "output folder", help: "Folder for figures" },
} as const satisfies FlagDefs;

/** Flags of every script that trains or evaluates a network. */
export const TRAIN_FLAGS = {
  iters: { type: "int", default: 500, min: 1, help: "Training iterations" },
  batchSize: { type: "int", default: 4, min: 1, help: "Minibatch size" },
  lr: {
    type: "number",
    default: 0.01,
    min: 0,
    help: "Learning rate (SGD with momentum 0.9)",
  },
  seed: {
    type: "int",
    default: 0,
    min: 0,
    help: "Random seed for weights and shuffling",
  },
  backend: {
    type: "string",
    default: "auto",
    choices: ["auto", "tensorflow", "webgpu", "wasm", "cpu"],
    help: "TensorFlow.js backend; auto picks the fastest that works here",
  },
  checkpoint: {
    type: "string",
    path: "folder",
    help: "Checkpoint folder; default checkpoints/<exercise>",
  },
} as const satisfies FlagDefs;

/**
 * A path or value as one word of a shell command: as it is when it holds only
 * safe characters, else in single quotes.
 *
 * @param text The word.
 * @returns It, quoted where a shell needs it.
 *
 * @example
 * ```ts
 * import { shellWord } from "./flag_defs.ts";
 * import { assertEquals } from "./assert.ts";
 * assertEquals(shellWord("checkpoints/segnet"), "checkpoints/segnet");
 * assertEquals(shellWord("it's mine"), "'it'\\''s mine'");
 * ```
 */
export function shellWord(text: string): string {
  return /^[\w./:@+-]+$/.test(text) ? text : `'${text.replaceAll("'", `'\\''`)}'`;
}
