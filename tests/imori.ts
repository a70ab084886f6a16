/**
 * Where the tests find the real Imori dataset: `IMORI_DIR`, else
 * `../shared/imori` beside the project (where CI has it), else `data/imori`
 * (where `deno task download` puts it). The tests that need it are never
 * skipped: without it they fail, saying how to get it.
 */
const CANDIDATES = [
  Deno.env.get("IMORI_DIR"),
  new URL("../../shared/imori", import.meta.url).pathname,
  new URL("../data/imori", import.meta.url).pathname,
].filter((dir): dir is string => Boolean(dir)).map((dir) => dir.replace(/\/$/, ""));

function found(dir: string): boolean {
  try {
    return Deno.statSync(`${dir}/train/images`).isDirectory;
  } catch {
    return false;
  }
}

/** The dataset folder the tests read (the first candidate that holds it, else the first). */
export const IMORI = CANDIDATES.find(found) ?? CANDIDATES[0]!;

/**
 * Fails with the fix when the real dataset is absent.
 *
 * @returns The dataset folder.
 */
export function requireImori(): Promise<string> {
  if (!found(IMORI)) {
    return Promise.reject(
      new Error(
        `The real Imori dataset is not in ${CANDIDATES.join(", ")}: run \`deno task download\` ` +
          "(into data/imori), or set IMORI_DIR to a copy",
      ),
    );
  }
  return Promise.resolve(IMORI);
}
