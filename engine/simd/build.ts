/**
 * `deno task build_simd`: compiles `kernels.c` into `kernels.wasm` with
 * Debian's clang 14 and wasm-ld 14 (`apt-get install clang-14 lld-14`):
 *
 * ```sh
 * clang-14 --target=wasm32 -msimd128 -O3 -nostdlib -ffreestanding -c kernels.c
 * wasm-ld-14 --no-entry --import-memory --strip-all kernels.o -o kernels.wasm
 * ```
 *
 * and the same source into `kernels_shared.wasm`, which imports a shared
 * memory (`-matomics -mbulk-memory`, linked with `--shared-memory
 * --max-memory=4294967296`): the flavour that two threads run on one heap
 * (`kernels/simd_threads.ts`). A module that imports a shared memory cannot
 * import an unshared one, and the reverse, so both are committed.
 *
 * The module imports the wasm backend's memory, so it must not place anything
 * in it: the build fails when the compiled code uses the C stack
 * (`__stack_pointer`) or holds static data. `engine/simd_test.ts` checks that
 * the committed `kernels.wasm` is what this build makes from `kernels.c`.
 * Nothing at run time needs a compiler.
 *
 * @module
 */

/** The compiler and linker, by their Debian names (the build is checked byte for byte). */
export const SIMD_TOOLS = { clang: "clang-14", wasmLd: "wasm-ld-14" } as const;

/** The flags of the build, in order: compile, then link. */
const CLANG_FLAGS = ["--target=wasm32", "-msimd128", "-O3", "-nostdlib", "-ffreestanding"];
const LINK_FLAGS = ["--no-entry", "--import-memory", "--strip-all"];
/** What the shared-memory flavour adds to each (4 GiB: any backend heap's maximum fits). */
const SHARED_CLANG_FLAGS = ["-matomics", "-mbulk-memory"];
const SHARED_LINK_FLAGS = ["--shared-memory", "--max-memory=4294967296"];

/** Options of {@linkcode buildSimd}. */
export interface BuildSimdOptions {
  /**
   * Build the flavour that imports a shared memory (`kernels_shared.wasm`).
   * @default false
   */
  shared?: boolean;
}

async function run(command: string, args: string[]): Promise<string> {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(
        `Cannot build the SIMD kernels: ${command} not found; install it with ` +
          "`apt-get install clang-14 lld-14`",
      );
    }
    throw error;
  }
  const text = new TextDecoder();
  if (!output.success) {
    throw new Error(`${command} failed:\n${text.decode(output.stderr)}`);
  }
  return text.decode(output.stdout);
}

/**
 * Whether the build's tools are installed.
 *
 * @returns `null` when they are, else what is missing.
 *
 * @example
 * ```ts
 * import { missingSimdTools } from "./build.ts";
 * const missing = await missingSimdTools();
 * if (missing !== null) console.log(`cannot rebuild: ${missing}`);
 * ```
 */
export async function missingSimdTools(): Promise<string | null> {
  for (const tool of Object.values(SIMD_TOOLS)) {
    try {
      await new Deno.Command(tool, { args: ["--version"], stdout: "null", stderr: "null" })
        .output();
    } catch {
      return `${tool} not found (apt-get install clang-14 lld-14)`;
    }
  }
  return null;
}

/**
 * Builds `kernels.c` into a wasm module.
 *
 * @param source Path of the C source.
 * @param output Path of the `.wasm` to write.
 * @param options Which flavour.
 * @returns The module's bytes (also written to `output`).
 * @throws {Error} When a tool is missing or fails, or the code uses the C stack or static data.
 *
 * @example
 * ```ts
 * import { buildSimd, missingSimdTools } from "./build.ts";
 * import { assert } from "../assert.ts";
 * if (await missingSimdTools() === null) {
 *   const out = await Deno.makeTempFile({ suffix: ".wasm" });
 *   const bytes = await buildSimd(new URL("./kernels.c", import.meta.url).pathname, out);
 *   assert(WebAssembly.validate(bytes));
 *   await Deno.remove(out);
 * }
 * ```
 */
export async function buildSimd(
  source: string,
  output: string,
  options: BuildSimdOptions = {},
): Promise<Uint8Array<ArrayBuffer>> {
  const clangFlags = options.shared ? [...CLANG_FLAGS, ...SHARED_CLANG_FLAGS] : CLANG_FLAGS;
  const linkFlags = options.shared ? [...LINK_FLAGS, ...SHARED_LINK_FLAGS] : LINK_FLAGS;
  const directory = await Deno.makeTempDir({ prefix: "segment-simd-" });
  try {
    const assembly = await run(SIMD_TOOLS.clang, [...clangFlags, "-S", source, "-o", "-"]);
    if (assembly.includes("__stack_pointer")) {
      throw new Error(
        "kernels.c uses the C stack (__stack_pointer): the module shares the backend's memory " +
          "and has no stack of its own; keep locals out of memory",
      );
    }
    if (/\.section\s+\.(data|bss|rodata)/.test(assembly)) {
      throw new Error(
        "kernels.c holds static data: the module must not write the backend's memory",
      );
    }
    const object = `${directory}/kernels.o`;
    await run(SIMD_TOOLS.clang, [...clangFlags, "-c", source, "-o", object]);
    await run(SIMD_TOOLS.wasmLd, [...linkFlags, object, "-o", output]);
    return await Deno.readFile(output);
  } finally {
    await Deno.remove(directory, { recursive: true });
  }
}

if (import.meta.main) {
  const here = new URL(".", import.meta.url).pathname;
  const bytes = await buildSimd(`${here}kernels.c`, `${here}kernels.wasm`);
  console.log(`wrote ${here}kernels.wasm (${bytes.length} bytes)`);
  const shared = await buildSimd(`${here}kernels.c`, `${here}kernels_shared.wasm`, {
    shared: true,
  });
  console.log(`wrote ${here}kernels_shared.wasm (${shared.length} bytes)`);
}
