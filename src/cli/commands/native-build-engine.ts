import type { Argv, CommandModule } from "yargs";
import { buildEngineHelper } from "../../llm/native-addon-build.js";

interface BuildEngineArgs {
    force: boolean;
    out?: string;
}

/**
 * `autoact native build-engine`: compiles the engine helper addon (a few seconds). The lead
 * wires it under `native` with `.command(buildEngineCommand)` in native.ts.
 */
export const buildEngineCommand: CommandModule<object, BuildEngineArgs> = {
    command: "build-engine",
    describe: "Build the inference engine's helper addon (persistent threadpool, fast decode) against node-llama-cpp's prebuilt llama.cpp",
    builder: (yargs) => yargs
        .option("force", { type: "boolean", default: false, describe: "Rebuild even when up to date" })
        .option("out", { type: "string", describe: "Output file (default: <autoact cache>/engine-addon/node-llama-cpp-<version>/engine-helper-v<N>.node)" }) as unknown as Argv<BuildEngineArgs>,
    handler: (args) => {
        const result = buildEngineHelper({ force: args.force, out: args.out });
        process.stdout.write(`${JSON.stringify({ file: result.file, built: result.built, seconds: Number(result.seconds.toFixed(2)) })}\n`);
    }
};
