/**
 * Where the tests find the real Imori dataset: `IMORI_DIR`, else
 * `../shared/imori` beside the project (where CI has it). The tests that need
 * it are never skipped: without it they fail, naming this path.
 */
export const IMORI = (Deno.env.get("IMORI_DIR") ??
  new URL("../../shared/imori", import.meta.url).pathname).replace(/\/$/, "");

/**
 * Fails with the fix when the real dataset is absent.
 *
 * @returns The dataset folder.
 */
export async function requireImori(): Promise<string> {
  const found = await Deno.stat(`${IMORI}/train/images`).then(() => true, () => false);
  if (!found) {
    throw new Error(
      `The real Imori dataset is not at ${IMORI}: put a copy there or set IMORI_DIR to one`,
    );
  }
  return IMORI;
}
