/**
 * The one command-line flag parser of every script: kebab-case flags,
 * `--help`, typed values, and a one-line {@linkcode UserError} for a bad flag.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { UserError } from "./errors.ts";
import { checkFolderPath, checkOutputFolder } from "./output_files.ts";
import {
  type FlagDef,
  type FlagDefs,
  type FlagValues,
  kebab,
  type ScriptInfo,
} from "./flag_defs.ts";

// The definitions live in flag_defs.ts (platform-neutral); the scripts import them from here too.
export {
  DATA_FLAGS,
  type FlagDef,
  type FlagDefs,
  type FlagType,
  flagTyped,
  type FlagValues,
  kebab,
  type ScriptInfo,
  TRAIN_FLAGS,
} from "./flag_defs.ts";

/**
 * Formats the `--help` text of a script.
 *
 * @param info Usage line and summary.
 * @param defs The script's flags.
 * @returns The help text.
 *
 * @example
 * ```ts
 * import { helpText } from "./flags.ts";
 * import { assert } from "./assert.ts";
 * const text = helpText({ usage: "x", summary: "y" }, {
 *   iters: { type: "int", default: 500, help: "Iterations" },
 * });
 * assert(text.includes("--iters"));
 * ```
 */
export function helpText(info: ScriptInfo, defs: FlagDefs): string {
  const rows = Object.entries(defs).map(([name, def]) => {
    const value = def.type === "boolean" ? "" : ` <${def.type}>`;
    const extra = [
      def.choices ? `one of ${def.choices.join(", ")}` : "",
      def.default !== undefined ? `default ${JSON.stringify(def.default)}` : "",
    ].filter((s) => s).join("; ");
    return [
      `  --${kebab(name)}${value}`,
      def.help + (extra ? ` (${extra})` : ""),
    ];
  });
  rows.push(["  --help", "Show this help and exit"]);
  const width = Math.max(...rows.map(([flag]) => flag!.length)) + 2;
  return `Usage: ${info.usage}\n\n${info.summary}\n\nFlags:\n` +
    rows.map(([flag, help]) => flag!.padEnd(width) + help).join("\n");
}

/**
 * The flag a mistyped one most likely meant: the nearest name by the optimal
 * string alignment distance (insertions, deletions and substitutions of one
 * character, and swaps of two neighbours), within 1 edit for names of up to
 * 4 characters and 2 beyond; else the one name that begins or ends with what
 * was typed (`--batch` for `--batch-size`).
 *
 * @param typed The flag as typed, without its dashes (`itres`).
 * @param names The flags the command takes, without dashes.
 * @returns The flag it most likely meant, or `undefined` when none is close.
 *
 * @example
 * ```ts
 * import { closestFlag } from "./flags.ts";
 * import { assertEquals } from "./assert.ts";
 * const names = ["iters", "lr", "batch-size", "no-train", "train"];
 * assertEquals(closestFlag("itres", names), "iters");
 * assertEquals(closestFlag("batchsize", names), "batch-size");
 * assertEquals(closestFlag("batch", names), "batch-size");
 * assertEquals(closestFlag("tarin", names), "train"); // two neighbours swapped
 * assertEquals(closestFlag("model", names), undefined);
 * ```
 */
export function closestFlag(typed: string, names: readonly string[]): string | undefined {
  const distance = (a: string, b: string): number => {
    // d[i][j]: the edits from a's first i characters to b's first j
    const d = Array.from(
      { length: a.length + 1 },
      (_, i) => Array.from({ length: b.length + 1 }, (_, j) => i === 0 ? j : j === 0 ? i : 0),
    );
    for (let i = 1; i <= a.length; i++) {
      for (let j = 1; j <= b.length; j++) {
        const row = d[i]!, above = d[i - 1]!;
        row[j] = Math.min(
          above[j]! + 1,
          row[j - 1]! + 1,
          above[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
        );
        if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
          row[j] = Math.min(row[j]!, d[i - 2]![j - 2]! + 1); // two neighbours swapped
        }
      }
    }
    return d[a.length]![b.length]!;
  };
  const lower = typed.toLowerCase();
  let best: string | undefined, bestDistance = Infinity;
  for (const name of names) {
    const d = distance(lower, name);
    if (d < bestDistance) [best, bestDistance] = [name, d];
  }
  if (best !== undefined && bestDistance <= (lower.length <= 4 ? 1 : 2)) return best;
  const partial = names.filter((name) =>
    lower.length >= 3 && (name.startsWith(lower) || name.endsWith(lower))
  );
  return partial.length === 1 ? partial[0] : undefined;
}

/**
 * Parses command-line arguments against flag definitions. `--help` prints the
 * help text and exits with status 0.
 *
 * @param args The arguments, usually `Deno.args`.
 * @param defs The flags the script accepts.
 * @param info Usage line and summary for `--help`.
 * @returns The typed values, keyed by camelCase name.
 * @throws {UserError} On an unknown flag, a missing or malformed value, or a
 * value out of range.
 *
 * @example
 * ```ts
 * import { parseFlags } from "./flags.ts";
 * import { assertEquals } from "./assert.ts";
 * const flags = parseFlags(["--batch-size", "8"], {
 *   batchSize: { type: "int", default: 4, help: "Minibatch size", min: 1 },
 *   flip: { type: "boolean", default: false, help: "Flip" },
 * }, { usage: "x", summary: "y" });
 * assertEquals(flags.batchSize, 8);
 * assertEquals(flags.flip, false);
 * ```
 */
export function parseFlags<T extends FlagDefs>(
  args: string[],
  defs: T,
  info: ScriptInfo,
): FlagValues<T> {
  const options: Record<string, { type: "string" | "boolean" }> = {
    help: { type: "boolean" },
  };
  for (const [name, def] of Object.entries(defs)) {
    options[kebab(name)] = {
      type: def.type === "boolean" ? "boolean" : "string",
    };
    if (def.type === "boolean") {
      options[`no-${kebab(name)}`] = { type: "boolean" };
    }
  }
  // A negative number after a flag that takes a value is that value (`--lr -1`), not a
  // flag: parseArgs would call it ambiguous; joined as `--lr=-1`, it reaches the range check.
  const valueFlags = new Set(
    Object.entries(options).filter(([, option]) => option.type === "string").map(([name]) =>
      `--${name}`
    ),
  );
  const joined: string[] = [];
  for (let index = 0; index < args.length; index++) {
    const arg = args[index]!, value = args[index + 1];
    if (valueFlags.has(arg) && value !== undefined && /^-(\d|\.\d)/.test(value)) {
      joined.push(`${arg}=${value}`);
      index++;
    } else joined.push(arg);
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: joined,
      options,
      strict: true,
      allowPositionals: false,
    });
  } catch (error) {
    // Node's message may run over lines (its hint for a value starting with "-" is on the
    // third); one line keeps all of it.
    const message = error instanceof Error
      ? error.message.split("\n").map((line) => line.trim()).filter(Boolean).join(" ")
      : String(error);
    const unknown = /^Unknown option '--([^'=]+)'/.exec(message)?.[1];
    const closest = unknown === undefined ? undefined : closestFlag(unknown, Object.keys(options));
    throw new UserError(
      `${message.replace(/\.$/, "")}; ${
        closest ? `did you mean --${closest}? ` : ""
      }run with --help to see the flags`,
    );
  }
  if (parsed.values.help) {
    console.log(helpText(info, defs));
    Deno.exit(0);
  }
  const values: Record<string, unknown> = {};
  for (const [name, def] of Object.entries(defs)) {
    const flag = kebab(name);
    const raw = parsed.values[flag];
    if (def.type === "boolean") {
      values[name] = parsed.values[`no-${flag}`] ? false : raw ?? def.default;
      continue;
    }
    if (raw === undefined) {
      values[name] = def.default;
      continue;
    }
    values[name] = parseValue(flag, String(raw), def);
  }
  for (const [name, def] of Object.entries(defs)) {
    const value = values[name];
    if (def.path === undefined || typeof value !== "string") continue;
    if (def.path === "output folder") checkOutputFolder(value, `--${kebab(name)}`);
    else checkFolderPath(value, `--${kebab(name)}`);
  }
  return values as FlagValues<T>;
}

function parseValue(flag: string, raw: string, def: FlagDef): string | number {
  if (def.type === "string") {
    if (def.choices && !def.choices.includes(raw)) {
      throw new UserError(
        `Bad value for --${flag}: "${raw}"; use one of ${def.choices.join(", ")}`,
      );
    }
    return raw;
  }
  const value = Number(raw);
  const kind = def.type === "int" ? "an integer" : "a number";
  if (
    raw.trim() === "" || !Number.isFinite(value) ||
    (def.type === "int" && !Number.isInteger(value))
  ) {
    throw new UserError(`Bad value for --${flag}: "${raw}" is not ${kind}`);
  }
  if (def.min !== undefined && value < def.min) {
    throw new UserError(
      `Bad value for --${flag}: ${raw} is below the minimum ${def.min}`,
    );
  }
  if (def.max !== undefined && value > def.max) {
    throw new UserError(
      `Bad value for --${flag}: ${raw} is above the maximum ${def.max}`,
    );
  }
  return value;
}
