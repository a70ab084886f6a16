/**
 * The one line a run prints when it trains without a native library: what to
 * install for the biggest gain on this system, and a plain word when a
 * oneDNN was found that the engine cannot use.
 *
 * The gains are bin's training step (64 px, batch 4) on 2 cores, the three
 * configurations alternated in one process while other work loaded the
 * machine: pure wasm on the engine's SIMD kernels 263-327 ms, with OpenBLAS
 * 183-193 ms (about 1.5x), with oneDNN 2.x 88 ms (about 3x; on an idle
 * machine 17 ms, about 10x, as oneDNN then runs on both cores).
 *
 * @module
 */

/** The systems whose package managers the hint names. */
export type SystemKind = "debian" | "fedora" | "arch" | "macos" | "windows" | "other";

/** What {@linkcode nativeLibraryHint} is told about this machine. */
export interface NativeLibraries {
  /** Whether OpenBLAS was opened. */
  blas: boolean;
  /** Whether oneDNN 2.x was opened. */
  dnnl: boolean;
  /** A oneDNN of another major version that was found, e.g. `"3.6.1 at /usr/lib/libdnnl.so.3"`. */
  unusableDnnl: string | null;
  /** The system, for the install command. */
  system: SystemKind;
}

/**
 * The advice for a wasm run, or `""` when oneDNN 2.x runs (nothing faster to
 * install on the CPU).
 *
 * @param found What was opened and what this system is.
 * @returns One clause without a leading separator, e.g. "`sudo apt-get install
 * libdnnl2 libopenblas0-pthread` makes training 3-10x faster".
 *
 * @example
 * ```ts
 * import { nativeLibraryHint } from "./native_hint.ts";
 * import { assertEquals, assert } from "./assert.ts";
 * const none = { blas: false, dnnl: false, unusableDnnl: null };
 * assert(nativeLibraryHint({ ...none, system: "debian" }).includes("apt-get install libdnnl2"));
 * assert(nativeLibraryHint({ ...none, system: "macos" }).includes("brew install openblas"));
 * assert(
 *   nativeLibraryHint({ ...none, unusableDnnl: "3.6.1 at /x/libdnnl.so.3", system: "other" })
 *     .startsWith("oneDNN 3.6.1 at /x/libdnnl.so.3 cannot be used"),
 * );
 * assertEquals(nativeLibraryHint({ ...none, dnnl: true, system: "debian" }), "");
 * ```
 */
export function nativeLibraryHint(found: NativeLibraries): string {
  if (found.dnnl) return "";
  const parts: string[] = [];
  if (found.unusableDnnl !== null) {
    parts.push(
      `oneDNN ${found.unusableDnnl} cannot be used: this engine binds oneDNN 2.x's C API ` +
        "(libdnnl.so.2), which 3.x changed",
    );
  }
  const openBlas = found.blas ? "" : "OpenBLAS";
  switch (found.system) {
    case "debian":
      parts.push(
        found.blas
          ? "`sudo apt-get install libdnnl2` (oneDNN 2.x) makes training 2-5x faster"
          : "`sudo apt-get install libdnnl2 libopenblas0-pthread` (oneDNN 2.x and OpenBLAS) " +
            "makes training 3-10x faster",
      );
      break;
    case "fedora":
      if (openBlas) {
        parts.push("`sudo dnf install openblas-threads` makes training about 1.5x faster");
      }
      break;
    case "arch":
      if (openBlas) parts.push("`sudo pacman -S openblas` makes training about 1.5x faster");
      break;
    case "macos":
      if (openBlas) parts.push("`brew install openblas` makes training about 1.5x faster");
      break;
    case "windows":
      if (openBlas) parts.push("no native library is used on Windows: this is the wasm path");
      break;
    default:
      parts.push(
        openBlas
          ? "OpenBLAS (libopenblas.so.0) makes training about 1.5x faster, oneDNN 2.x " +
            "(libdnnl.so.2) 3-10x"
          : "oneDNN 2.x (libdnnl.so.2) makes training 2-5x faster",
      );
  }
  return parts.join("; ");
}

/**
 * This machine's {@linkcode SystemKind}: from `Deno.build.os`, and on Linux
 * from `/etc/os-release`'s `ID` and `ID_LIKE` (Debian and Ubuntu package
 * oneDNN 2.x as `libdnnl2`). Without read permission a Linux is `"other"`.
 *
 * @returns The system.
 *
 * @example
 * ```ts
 * import { detectSystem } from "./native_hint.ts";
 * import { assert } from "./assert.ts";
 * assert(["debian", "fedora", "arch", "macos", "windows", "other"].includes(detectSystem()));
 * ```
 */
export function detectSystem(): SystemKind {
  if (Deno.build.os === "darwin") return "macos";
  if (Deno.build.os === "windows") return "windows";
  let release = "";
  try {
    release = Deno.readTextFileSync("/etc/os-release");
  } catch {
    return "other";
  }
  const field = (name: string) =>
    (release.match(new RegExp(`^${name}="?([^"\\n]*)"?$`, "m"))?.[1] ?? "").toLowerCase()
      .split(/\s+/);
  const ids = [...field("ID"), ...field("ID_LIKE")];
  if (ids.some((id) => id === "debian" || id === "ubuntu")) return "debian";
  if (ids.some((id) => id === "fedora" || id === "rhel" || id === "centos")) return "fedora";
  if (ids.includes("arch")) return "arch";
  return "other";
}
