/**
 * `deno task download`: fetches the real Imori dataset (22 photos and their
 * masks) from the DeepLearningMugenKnock repository into data/imori. Run it
 * again to resume an interrupted download.
 *
 * @module
 */
import { downloadImori, IMORI_BASE_URL } from "../lib/download.ts";
import { runMain } from "../lib/errors.ts";
import { nextStep } from "../lib/exercise_flags.ts";
import { parseFlags } from "../lib/flags.ts";

const FLAGS = {
  baseUrl: {
    type: "string",
    default: IMORI_BASE_URL,
    help: "Address of the dataset root (the folder holding train/ and test/)",
  },
  out: {
    type: "string",
    default: "data/imori",
    path: "output folder",
    help: "Folder to write the dataset to",
  },
} as const;

/**
 * Downloads the dataset and prints each file written.
 *
 * @param args Command-line arguments.
 * @returns A promise that resolves when every file is in place.
 */
export async function run(args: string[]): Promise<void> {
  const flags = parseFlags(args, FLAGS, {
    usage: "deno task download [flags]",
    summary: "Downloads the Imori newt dataset (MIT licence) from the DeepLearningMugenKnock " +
      "repository; files already present with their listed SHA-256 are kept, so a rerun resumes " +
      "and fetches a changed or damaged file again.",
  });
  console.log(`Downloading the Imori dataset from ${flags.baseUrl} into ${flags.out}`);
  const started = performance.now();
  const result = await downloadImori({
    baseUrl: flags.baseUrl,
    out: flags.out,
    onFile: (path, status) => status === "downloaded" && console.log(`Wrote ${path}`),
  });
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log(
    `Done in ${seconds} s: ${result.downloaded} files downloaded, ${result.present} already present`,
  );
  // Every exercise reads data/imori by itself; another folder is carried as --data.
  const data = flags.out.replace(/\/+$/, "") === "data/imori" ? undefined : flags.out;
  console.log(
    `Next: ${nextStep("deno task semaseg_dataset  (it reads the photos just downloaded)", data)}`,
  );
}

if (import.meta.main) await runMain(() => run(Deno.args));
