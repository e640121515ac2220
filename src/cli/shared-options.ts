import type { Options } from "yargs";

/**
 * Flags that mean the same in several commands, declared once: each command takes the one it
 * needs (`.option("threads", sharedOptions.threads)`), so their help never drifts apart.
 */
export const sharedOptions = {
    /** CPU threads of the native code a command runs. */
    threads: { type: "number", describe: "CPU threads (default: the physical cores this process may use)" },
    /** A benchmark's model. */
    benchModel: { type: "string", demandOption: true, describe: "GGUF file, or synth:PRESET[:TYPE] (e.g. synth:100m, synth:0.5b:f16)" },
    llamaBench: { type: "string", describe: "llama-bench executable (default: the autoact native build's)" },
    llamaServer: { type: "string", describe: "llama-server executable (default: the autoact native build's)" },
    resultsDir: { type: "string", describe: "Folder for the result files (default bench/results)" }
} as const satisfies Record<string, Options>;
