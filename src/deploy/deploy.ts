import fs from "node:fs";
import path from "node:path";
import { subAgentNames, type SubAgentName } from "../agents/division.js";
import { ggufArchitecture, readGgufInfo } from "../gguf/reader.js";
import { plainResponseMarker } from "../llm/prompt-format.js";
import { servedAdapterName } from "../llm/served-adapter.js";
import { loadConfig } from "../pipeline/config.js";
import { RunDir } from "../pipeline/run-dir.js";
import { runDirAdapters, type SubAgentAdapters } from "../pipeline/stages/eval.js";
import { findNativeBuild } from "../train/native-build.js";
import { InputError } from "../util/errors.js";
import { writeFileAtomicSync } from "../util/fs.js";
import { llamaServerArgs, loadedUnapplied } from "./llama-server.js";
import { peftArchitectures, writePeftAdapter } from "./peft.js";

export interface DeployOptions {
    /** A run directory whose train stage wrote adapters/{plan,tool,reflect}.gguf. */
    runDir: string;
    /** Output folder. Defaults to <run-dir>/deploy. */
    out?: string;
    /** llama-server's port. Defaults to 8080. */
    port?: number;
    /** llama-server's slots. Defaults to the run's model.parallel. */
    parallel?: number;
    /** The llama-server executable written into the command. Defaults to the autoact native build's, else `llama-server` on PATH. */
    llamaServer?: string;
    /** The Hugging Face model the GGUF base was converted from, which vLLM serves. Defaults to a placeholder, HF_MODEL. */
    hfModel?: string;
}

export interface Deployment {
    /** llama-server's command line (argv): the base with the three adapters, none applied by default. */
    command: string[];
    /** The shell script holding it. */
    script: string;
    /** The model name each sub-agent's adapter is served under on Ollama and vLLM (the remote backend asks for it). */
    servedNames: Record<SubAgentName, string>;
    /** An Ollama Modelfile per sub-agent (FROM the base, ADAPTER its adapter), to create under its served name. */
    modelfiles: Record<SubAgentName, string>;
    /** Why Ollama will not serve them, where the base's architecture says so (see ollamaOwnEngine). */
    ollamaWarning?: string;
    /** vLLM: a PEFT adapter folder per sub-agent and `vllm serve`'s command line, or why there are none. */
    vllm: { peft: Record<SubAgentName, string>; command: string[] } | { skipped: string };
    /** How to use them (README.md in the folder). */
    readme: string;
}

/**
 * Writes what serves a run's trained sub-agents: llama-server's command line loading the base
 * with the three adapters (requests pick theirs: autoact's remote backend sends
 * `lora: [{id, scale}]`), an Ollama Modelfile per agent and a PEFT folder per agent for vLLM,
 * the last two named as the remote backend asks for them (`plan-<hash>`: two runs deployed to one
 * Ollama keep their own). `autoact agent
 * --server URL` then answers questions by group planning against the server.
 */
/**
 * The run's three sub-agents' adapters, or an InputError saying which are missing and why: a
 * deployment or an answer from the base model in their place would not be the run's.
 */
export function requireRunAdapters(runDir: RunDir): Required<SubAgentAdapters> {
    const manifest = runDir.readManifest();
    const adapters = runDirAdapters(runDir);
    const missing = subAgentNames.filter((agent) => adapters[agent] == null);
    if (missing.length > 0) {
        const train = manifest.stages.train;
        const filter = manifest.stages.filter?.stats;
        const why = train?.status !== "done" ? `run the train stage first (autoact train --run-dir ${runDir.dir})`
            : `the train stage had no samples for them${filter?.trajectories != null ? ` (the filter kept ${filter.kept ?? 0} of ${filter.trajectories} trajectories)` : ""}: nothing to serve but the base model`;
        throw new InputError(`${runDir.file("adapters")}: no adapter for ${missing.join(", ")}; ${why}`);
    }
    return adapters as Required<SubAgentAdapters>;
}

export async function writeDeployment(options: DeployOptions): Promise<Deployment> {
    const runDir = new RunDir(options.runDir);
    const config = loadConfig(runDir.requireConfig()).config;
    const manifest = runDir.readManifest(config.name);
    const base = manifest.model?.path;
    if (base == null || !fs.existsSync(base))
        throw new InputError(`${runDir.file("manifest.json")}: the run's base model is unknown or gone (${base ?? "no model recorded"}); run a stage that loads it first`);
    const adapters = requireRunAdapters(runDir);
    for (const [name, value, low, high] of [["--port", options.port ?? 8080, 1, 65535], ["--parallel", options.parallel ?? config.model.parallel, 1, 4096]] as const) {
        if (!Number.isInteger(value) || value < low || value > high)
            throw new InputError(`${name} must be a whole number from ${low} to ${high}, got ${value}`);
    }
    const out = path.resolve(options.out ?? runDir.file("deploy"));
    const servedNames = {} as Record<SubAgentName, string>;
    for (const agent of subAgentNames)
        servedNames[agent] = await servedAdapterName(adapters[agent]!);
    // llama-server loads the adapters under their content names too (a link, or a copy): a server
    // started before a retrain serves other names, which the remote backend refuses
    const served = path.join(out, "adapters");
    fs.rmSync(served, { recursive: true, force: true });
    fs.mkdirSync(served, { recursive: true });
    const servedFiles = subAgentNames.map((agent) => {
        const file = path.join(served, `${servedNames[agent]}.gguf`);
        try {
            fs.linkSync(adapters[agent]!, file);
        } catch {
            fs.copyFileSync(adapters[agent]!, file);
        }
        return file;
    });
    const binary = options.llamaServer ?? findNativeBuild("cpu", ["llamaServer"])?.llamaServer ?? "llama-server";
    const command = [binary, ...llamaServerArgs({
        binary, model: base, adapters: servedFiles, port: options.port ?? 8080,
        parallel: options.parallel ?? config.model.parallel, contextSize: config.model.context_size
    })];
    const script = path.join(out, "llama-server.sh");
    // the script finds the adapters beside itself: a run directory moved with its deploy folder
    // still serves (not where the folder's path has a comma or a quote: llama-server splits its
    // list at commas, and only the written path can be quoted for it)
    const besideScript = loadedUnapplied(servedFiles.map((file) => `$here/${path.relative(out, file)}`));
    const relocatable = !/[",]/.test(out);
    const scriptWords = command.map((word, i) => (relocatable && command[i - 1] === "--lora-scaled" ? `"${besideScript}"` : shellQuote(word)));
    writeFileAtomicSync(script, [
        "#!/bin/sh",
        "# The base model with the plan, tool and reflect adapters (none applied unless a request asks).",
        `here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd) || exit 1`,
        `exec ${scriptWords.join(" ")} "$@"`,
        ""
    ].join("\n"));
    fs.chmodSync(script, 0o755);

    const modelfiles = {} as Record<SubAgentName, string>;
    for (const agent of subAgentNames) {
        const file = path.join(out, "ollama", agent, "Modelfile");
        fs.mkdirSync(path.dirname(file), { recursive: true });
        // autoact sends fully formatted prompts: the template passes them through unchanged.
        // Ollama's own context (2048 by default) would cut a long ReAct prompt without a word, and
        // older versions penalize repeats (1.1): the run's context and no penalty, as llama-server has.
        writeFileAtomicSync(file, [
            `# The ${agent} sub-agent: ollama create ${servedNames[agent]} -f ${file}`,
            `FROM ${base}`,
            `ADAPTER ${adapters[agent]}`,
            `TEMPLATE """{{ .Prompt }}"""`,
            `PARAMETER num_ctx ${config.model.context_size}`,
            `PARAMETER repeat_penalty 1`,
            `PARAMETER temperature ${config.eval.temperature}`,
            `PARAMETER top_p ${config.eval.top_p}`,
            `PARAMETER top_k ${config.eval.top_k}`,
            ""
        ].join("\n"));
        modelfiles[agent] = file;
    }
    const arch = ggufArchitecture(await readGgufInfo(base));
    const ollamaWarning = arch != null && ollamaOwnEngine.includes(arch)
        ? `Ollama runs ${arch} on its own engine, which loads no LoRA adapters yet: the Modelfiles are created, then the first request fails ("loras are not yet implemented"); serve these with llama-server or vLLM`
        : undefined;
    const vllm = await writeVllmAdapters({
        arch, adapters: adapters as Record<SubAgentName, string>, servedNames, dir: path.join(out, "peft"), contextSize: config.model.context_size, hfModel: options.hfModel, base
    });
    const readme = path.join(out, "README.md");
    writeFileAtomicSync(readme, [
        `# Serving the sub-agents of ${runDir.dir}`,
        "",
        "llama-server (the base with the three adapters; each request picks its adapter):",
        "",
        `    ${script}`,
        `    autoact agent --run-dir ${runDir.dir} --server http://127.0.0.1:${options.port ?? 8080} "your question"`,
        "",
        "Ollama (one model per sub-agent, named as autoact asks for them: the adapter's name and hash):",
        "",
        ...ollamaWarning != null ? [`Warning: ${ollamaWarning}.`, ""] : [],
        ...subAgentNames.map((agent) => `    ollama create ${servedNames[agent]} -f ${modelfiles[agent]}`),
        `    autoact agent --run-dir ${runDir.dir} --server http://127.0.0.1:11434 "your question"`,
        "",
        ..."command" in vllm ? [
            `vLLM (${options.hfModel ?? "HF_MODEL: the Hugging Face model the GGUF base was converted from"}, with a PEFT adapter per sub-agent):`,
            "",
            `    ${vllm.command.map(shellQuote).join(" ")}`,
            `    autoact agent --run-dir ${runDir.dir} --server http://127.0.0.1:8000 "your question"`
        ] : [`vLLM: ${vllm.skipped}`],
        "",
        `Prompts are formatted by autoact (${config.model.template} template${config.model.template === "plain" ? `, response marker ${JSON.stringify(plainResponseMarker)}` : ""}); the servers only complete them.`,
        ""
    ].join("\n"));
    return { command, script, servedNames, modelfiles, ollamaWarning, vllm, readme };
}

/**
 * Architectures that Ollama runs on its own engine (its `OllamaEngineRequired` list), which takes
 * `ollama create` with an ADAPTER and then fails the first request: "loras are not yet
 * implemented" (Ollama 0.20-0.22: read in its source and in users' reports, not run here).
 */
const ollamaOwnEngine = ["qwen3", "qwen3moe", "gemma3", "gemma3n", "llama4", "mistral3", "olmo3", "gptoss"];

/** vLLM's ranks of LoRA slots: `--max-lora-rank` takes one of these. */
const vllmLoraRanks = [8, 16, 32, 64, 128, 256];

async function writeVllmAdapters(o: {
    base: string; arch: string | undefined; adapters: Record<SubAgentName, string>; servedNames: Record<SubAgentName, string>; dir: string; contextSize: number; hfModel?: string;
}): Promise<Deployment["vllm"]> {
    const { base, arch, adapters, servedNames, dir, contextSize } = o;
    if (arch == null || !peftArchitectures.includes(arch))
        return { skipped: `no PEFT adapters for the ${arch ?? "unknown"} architecture (the export knows ${peftArchitectures.join(" and ")})` };
    const peft = {} as Record<SubAgentName, string>;
    let rank = 0;
    for (const agent of subAgentNames) {
        peft[agent] = path.join(dir, agent);
        rank = Math.max(rank, (await writePeftAdapter(adapters[agent], base, peft[agent], o.hfModel)).rank);
    }
    const maxRank = vllmLoraRanks.find((r) => r >= rank) ?? rank;
    // vLLM batches requests of one adapter at a time unless told more (--max-loras defaults to 1)
    const command = ["vllm", "serve", o.hfModel ?? "HF_MODEL", "--enable-lora", "--max-loras", String(subAgentNames.length),
        "--max-lora-rank", String(maxRank), "--max-model-len", String(contextSize),
        "--lora-modules", ...subAgentNames.map((agent) => `${servedNames[agent]}=${peft[agent]}`)];
    return { peft, command };
}

function shellQuote(arg: string): string {
    return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, "'\\''")}'`;
}
