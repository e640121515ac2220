import type { Argv, CommandModule } from "yargs";
import { InputError } from "../../util/errors.js";
import { buildEngineCommand } from "./native-build-engine.js";
import { createTrainProgress, ensureNativeBuild, nativeBackends, type NativeBackend } from "../../train/index.js";
import { commandGroup } from "../command-group.js";

interface BuildArgs {
    backend: string;
    jobs?: number;
    force: boolean;
    portable: boolean;
}

const build: CommandModule<object, BuildArgs> = {
    command: "build",
    describe: "Build the LoRA trainer, llama-bench, llama-server and the matmul kernels' check from node-llama-cpp's llama.cpp source (incremental)",
    builder: (yargs) => yargs
        .option("backend", { type: "string", default: "cpu", describe: `${nativeBackends.join(" | ")}` })
        .option("jobs", { type: "number", describe: "Parallel compile jobs (default: the physical cores this process may use)" })
        .option("force", { type: "boolean", default: false, describe: "Re-clone and re-patch llama.cpp" })
        .option("portable", { type: "boolean", default: false, describe: "Binaries to carry to another machine (bench/gpu/pack.sh): x86-64 code for AVX2 instead of this CPU's own instructions; with CUDA, without the flash-attention kernels (unused by the trainer; a third of a cold build)" }) as unknown as Argv<BuildArgs>,
    handler: async (args) => {
        if (!(nativeBackends as readonly string[]).includes(args.backend))
            throw new InputError(`--backend: expected ${nativeBackends.join(", ")}; got "${args.backend}"`);
        const progress = createTrainProgress();
        const result = await ensureNativeBuild({ backend: args.backend as NativeBackend, jobs: args.jobs, force: args.force, portable: args.portable, onProgress: progress.build });
        progress.done();
        process.stdout.write(`${JSON.stringify({ ...result, seconds: Number(result.seconds.toFixed(2)) })}\n`);
    }
};

export const nativeCommand = commandGroup("native",
    "Native builds: the LoRA trainer, llama-bench and llama-server (build), the engine's speed helper (build-engine)", [build, buildEngineCommand]);
