import { buildEngineHelper } from "../src/llm/native-addon-build.js";

/**
 * Builds what the tests run on, once per `vitest run`: the engine helper addon (a few
 * seconds, skipped when up to date). Loading it in the tests then has no side effect.
 */
export default function setup(): void {
    if (process.platform !== "linux")
        return;
    const result = buildEngineHelper();
    // Tests that point AUTOACT_CACHE at a temporary folder still find it (workers and CLI children inherit this).
    process.env.AUTOACT_ENGINE_HELPER ??= result.file;
    if (result.built)
        process.stderr.write(`test setup: built the engine helper ${result.file} in ${result.seconds.toFixed(1)} s\n`);
}
