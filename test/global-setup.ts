import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { buildEngineHelper } from "../src/llm/native-addon-build.js";

/**
 * Once per `vitest run`: builds the engine helper addon the tests run on (a few seconds,
 * skipped when up to date), and gives the run one temporary folder, removed at the end.
 * Workers and the CLI children they start inherit both through the environment.
 */
export default function setup(): () => void {
    if (process.platform === "linux") {
        const result = buildEngineHelper();
        // Tests that point AUTOACT_CACHE at a temporary folder still find it.
        process.env.AUTOACT_ENGINE_HELPER ??= result.file;
        if (result.built)
            process.stderr.write(`test setup: built the engine helper ${result.file} in ${result.seconds.toFixed(1)} s\n`);
    }
    return useRunTemporaryFolder();
}

/**
 * Points TMPDIR (what os.tmpdir() reads) at a folder of this run's own, so that the tests'
 * temporary folders, and those of the trainers and servers they start, go with it at the end
 * instead of piling up in /tmp run after run. AUTOACT_KEEP_TEST_TMP=1 keeps it to look into.
 */
function useRunTemporaryFolder(): () => void {
    const saved = process.env.TMPDIR;
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "autoact-test-run-"));
    process.env.TMPDIR = root;
    return () => {
        if (saved == null)
            delete process.env.TMPDIR;
        else
            process.env.TMPDIR = saved;
        if (process.env.AUTOACT_KEEP_TEST_TMP === "1")
            process.stderr.write(`test teardown: kept the run's temporary files in ${root}\n`);
        else
            fs.rmSync(root, { recursive: true, force: true });
    };
}
