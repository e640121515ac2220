import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import type { Llama, LlamaModel, Token } from "node-llama-cpp";
import { llamaLib } from "../../src/llm/llama-lib.js";
import { ensureNativeBuild, writeTrainingSamples, type NativeBuild, type TokenizedSample } from "../../src/train/index.js";
import { writeSyntheticModel, type SynthType } from "../../src/gguf/synth.js";
import { packageRoot } from "../../src/util/package.js";

export const sharedDir = path.resolve(packageRoot, "../shared");
export const stories260K = path.join(sharedDir, "models", "stories260K.gguf");
export const hasStories = fs.existsSync(stories260K);
if (!hasStories)
    console.warn(`skipping stories260K tests: ${stories260K} is absent (../shared is not beside the checkout)`);

/**
 * Threads for the trainer and node-llama-cpp in tests. The test models are tiny: their graphs
 * are thousands of microsecond-sized ops, and on a shared 2-core machine a second thread spends
 * its time spinning at barriers (20 training steps: 0.02 s with 1 thread, 10 s with 2 under load).
 */
export const THREADS = 1;

export function tempDir(label: string): string {
    return fs.mkdtempSync(path.join(os.tmpdir(), `autoact-${label}-`));
}

/** A from-scratch native build took ~13 min on 2 busy cores: hooks that may build get this long. */
export const BUILD_TIMEOUT_MS = 45 * 60_000;

let buildPromise: Promise<NativeBuild> | null = null;
/** Builds the trainer once per test process (a no-op ninja run when it is already built). */
export function nativeBuild(): Promise<NativeBuild> {
    buildPromise ??= ensureNativeBuild({ jobs: 2 });
    return buildPromise;
}

export interface TrainerRun {
    exitCode: number;
    events: ({ event: string } & Record<string, any>)[];
    stdout: string;
    stderr: string;
}

/**
 * Runs autoact-train with raw flags and parses its JSON lines; `addressSpaceKb` runs it under that
 * limit of virtual memory (`ulimit -v`), where an allocation beyond it fails as it would out of memory.
 */
export async function runTrainer(args: string[], options: {
    onEvent?: (e: { event: string } & Record<string, any>, kill: (signal?: NodeJS.Signals) => void) => void;
    addressSpaceKb?: number;
} = {}): Promise<TrainerRun> {
    const { trainer } = await nativeBuild();
    const argv = [trainer, ...args, "--threads", String(THREADS)];
    const [file, ...fileArgs] = options.addressSpaceKb == null ? argv : ["sh", "-c", `ulimit -v ${options.addressSpaceKb} && exec "$@"`, "sh", ...argv];
    const child = execa(file!, fileArgs, { reject: false, stdin: "ignore", buffer: { stdout: true, stderr: true } });
    const events: TrainerRun["events"] = [];
    let rest = "";
    child.stdout!.on("data", (chunk: Buffer) => {
        rest += chunk.toString();
        let nl: number;
        while ((nl = rest.indexOf("\n")) >= 0) {
            const line = rest.slice(0, nl);
            rest = rest.slice(nl + 1);
            try {
                const event = JSON.parse(line);
                events.push(event);
                options.onEvent?.(event, (signal = "SIGINT") => child.kill(signal));
            } catch {
                // not a JSON line
            }
        }
    });
    const result = await child;
    return { exitCode: result.exitCode ?? -1, events, stdout: String(result.stdout), stderr: String(result.stderr) };
}

export function stepLosses(run: TrainerRun): number[] {
    return run.events.filter((e) => e.event === "step").map((e) => e.loss as number);
}

export async function samplesFile(dir: string, samples: TokenizedSample[], name = "samples.bin"): Promise<string> {
    const file = path.join(dir, name);
    await writeTrainingSamples(file, samples);
    return file;
}

/** A synthetic base from the `tiny` preset (llama, F32 unless `type` says otherwise). */
export async function tinyModel(dir: string, overrides: { type?: SynthType; preset?: string } = {}): Promise<string> {
    const out = path.join(dir, `tiny-${overrides.preset ?? "tiny"}-${overrides.type ?? "f32"}.gguf`);
    await writeSyntheticModel({ preset: overrides.preset ?? "tiny", out, type: overrides.type });
    return out;
}

let llamaPromise: Promise<Llama> | null = null;
export function nodeLlama(): Promise<Llama> {
    llamaPromise ??= llamaLib().then(({ getLlama, LlamaLogLevel }) =>
        getLlama({ gpu: false, maxThreads: THREADS, logLevel: LlamaLogLevel.error, build: "never", progressLogs: false }));
    return llamaPromise;
}

export async function loadModel(file: string): Promise<LlamaModel> {
    return (await nodeLlama()).loadModel({ modelPath: file });
}

/**
 * log p(tokens[i+1] | tokens[..i]) for every i, through node-llama-cpp (full softmax at
 * temperature 1, no top-k/top-p/min-p), optionally with a LoRA adapter.
 */
export async function tokenLogProbs(model: LlamaModel, tokens: number[], adapter?: string): Promise<number[]> {
    const context = await model.createContext({
        contextSize: Math.max(64, tokens.length + 1), threads: THREADS,
        ...(adapter != null ? { lora: { adapters: [{ filePath: adapter }] } } : {})
    });
    try {
        const sequence = context.getSequence();
        const options = { temperature: 1, topK: 0, topP: 1, minP: 0 };
        const input = tokens.map((t, i) => (i < tokens.length - 1
            ? [t as Token, { generateNext: { probabilities: true, options } }] as const
            : t as Token));
        const out = await sequence.controlledEvaluate(input as never);
        const result: number[] = [];
        for (let i = 0; i < tokens.length - 1; i++) {
            const p = out[i]?.next.probabilities?.get(tokens[i + 1] as Token);
            if (p == null)
                throw new Error(`no probability for position ${i}`);
            result.push(Math.log(p));
        }
        return result;
    } finally {
        await context.dispose();
    }
}

/** Mean NLL of the masked (response) tokens through node-llama-cpp. */
export async function responseNll(model: LlamaModel, sample: TokenizedSample, adapter?: string): Promise<number> {
    const lp = await tokenLogProbs(model, sample.tokens, adapter);
    let sum = 0;
    let n = 0;
    for (let i = 1; i < sample.tokens.length; i++) {
        if (sample.mask[i] === 1) {
            sum -= lp[i - 1]!;
            n++;
        }
    }
    return sum / n;
}

/** A sample of prompt text (mask 0) then response text (mask 1), tokenized by the model. */
export function textSample(model: LlamaModel, prompt: string, response: string): TokenizedSample {
    const p = [model.tokens.bos as number, ...model.tokenize(prompt, false).map(Number)];
    const r = model.tokenize(response, false).map(Number);
    return { tokens: [...p, ...r], mask: [...p.map(() => 0), ...r.map(() => 1)] };
}
