import fs from "node:fs";
import path from "node:path";
import { llamaLib } from "../llm/llama-lib.js";
import { readAnyTable, writeTable } from "../data/table-io.js";
import type { TrainingCurveRow } from "../data/schemas.js";
import { defaultThreadCount } from "../llm/cpu.js";
import { createPromptFormatter, formatTrainingSample, type PromptTemplate } from "../llm/prompt-format.js";
import { InputError, UserError, errorMessage } from "../util/errors.js";
import { makeDirectory } from "../util/fs.js";
import { positiveInteger } from "../util/checks.js";
import { checkGgufFile } from "../llm/gguf-check.js";
import { taskAndQuestionLength } from "../agents/react-format.js";
import { ggufContextLength } from "../gguf/reader.js";
import { agentsInRows, beyondModelContext, fitSamplesToContext, loadTrainingRows, rowsForAgent, tokenizeRows, type FittedSamples, type TrainingRow } from "./dataset.js";
import { ensureNativeBuild, type NativeBackend, type NativeBuildProgress } from "./native-build.js";
import { writeTrainingSamples, type TokenizedSample } from "./samples-file.js";
import { assertTrainOptions, resolveTrainOptions, type TrainHyperParams } from "./options.js";
import { trainAdapter, type TrainDone, type TrainStart, type TrainStep } from "./trainer.js";

export const trainableAgents = ["plan", "tool", "reflect"] as const;

export interface TrainAgentsOptions extends TrainHyperParams {
    /** Base model GGUF. */
    base: string;
    /** The prompt template the samples are formatted with: the one the agents will be asked with. Defaults to "auto". */
    template?: PromptTemplate;
    /** samples.arrow, or JSON/JSONL rows of {input, output, agent?}; or `samples`. */
    data?: string;
    /** Samples already tokenized, all of the one adapter `agent` names (instead of `data`). */
    samples?: readonly TokenizedSample[];
    /** "plan", "tool", "reflect", "all" (each agent named in the data), or any name for rows without agents. */
    agent: string;
    /** Output folder: <agent>.gguf and train-<agent>.arrow. */
    outDir: string;
    /** An adapter GGUF that every agent's training starts from instead of a fresh one (its rank, alpha and targets kept). Defaults to none. */
    adapterIn?: string;
    /** Continue from a checkpoint left by an interrupted run. Defaults to true. */
    resume?: boolean;
    /** CPU threads. Defaults to the physical core count. */
    threads?: number;
    /** MiB of memory the trainer plans with (weight copies once or per pass, activations kept or recomputed). Defaults to what the machine has free. */
    memoryAvailableMib?: number;
    /** Native backend to build and train with. Defaults to "cpu". */
    backend?: NativeBackend;
    /** Layers offloaded to the GPU (GPU backends). Defaults to 0 on cpu, all (-1) otherwise. */
    gpuLayers?: number;
    /** Native build progress. Defaults to none. */
    onBuildProgress?: (progress: NativeBuildProgress) => void;
    /** How an agent's samples were fitted into the context (rows from `data`), before it trains. Defaults to none. */
    onFit?: (agent: string, fit: SampleFit) => void;
    /** A warning about an agent's samples (longer than the base model's context, say). */
    onWarning?: (agent: string, warning: string) => void;
    /** Training start, steps and lines of the trainer's log. Defaults to none. */
    onStart?: (agent: string, start: TrainStart) => void;
    onStep?: (agent: string, step: TrainStep) => void;
    onLog?: (agent: string, line: string) => void;
    /** Aborting interrupts training (a checkpoint is written). Defaults to none. */
    signal?: AbortSignal;
}

/** Rows fitted into the context: samples trained, prompts cut on the left, samples left out (response alone too long). */
export interface SampleFit {
    samples: number;
    truncated: number;
    /** Of the truncated, those cut on the left of the prompt (the question lost, or none to keep). */
    leftCut: number;
    tooLong: number;
}

export interface TrainedAgent extends SampleFit {
    agent: string;
    adapterPath: string;
    curvePath: string;
    done: TrainDone;
    curve: TrainStep[];
}

/** The rows of each agent to train: `agent`, or every agent the rows name ("all"). */
async function rowsPerAgent(data: string | undefined, agent: string): Promise<{ name: string; rows: TrainingRow[] }[]> {
    if (data == null)
        throw new InputError("name the training data (--data) or pass tokenized samples");
    const rows = await loadTrainingRows(data);
    if (rows.length === 0)
        throw new InputError(`${data}: the dataset is empty`);
    let agents: string[];
    if (agent === "all") {
        agents = agentsInRows(rows);
        if (agents.length === 0)
            throw new InputError(`${data}: no row names an agent; use --agent with one name to train all rows as one adapter`);
    } else
        agents = [agent];
    const perAgent = agents.map((name) => ({ name, rows: rowsForAgent(rows, name) }));
    for (const { name, rows: agentRows } of perAgent) {
        if (agentRows.length === 0)
            throw new InputError(`${data}: no rows for agent "${name}" (agents present: ${agentsInRows(rows).join(", ") || "none"})`);
    }
    return perAgent;
}

/**
 * Trains one adapter per sub-agent: reads the rows, tokenizes them with the prompt formatter,
 * fits them into the context (prompts cut on the left, responses whole), writes the trainer's
 * input, builds the trainer on first use, runs it, and records the curve as train-<agent>.arrow
 * beside <agent>.gguf. Interrupted runs leave a checkpoint that the next call (resume, the
 * default) continues from.
 */
export async function trainAgents(options: TrainAgentsOptions): Promise<TrainedAgent[]> {
    const { base, data, agent, outDir, resume = true, backend = "cpu" } = options;
    const threads = positiveInteger(options.threads ?? defaultThreadCount(), "--threads");
    if (options.memoryAvailableMib != null)
        positiveInteger(options.memoryAvailableMib, "--memory-available");
    const modelContext = ggufContextLength(await checkGgufFile(base, "base model"));
    if (options.adapterIn != null)
        await checkGgufFile(options.adapterIn, "--adapter-in adapter");
    assertTrainOptions(options);
    const { ctx } = resolveTrainOptions(options);
    const given = options.samples;
    const perAgent = given != null ? [{ name: agent, rows: [] as TrainingRow[] }] : await rowsPerAgent(data, agent);
    // an agent's name names its files (<agent>.gguf, train-<agent>.arrow): no path of its own
    const badName = perAgent.find(({ name }) => !/^[A-Za-z0-9][A-Za-z0-9_-]*$/.test(name));
    if (badName != null)
        throw new InputError(`agent name ${JSON.stringify(badName.name)} must be letters, digits, _ and - (it names the adapter's file)`);
    // rows are fitted into the context as the pipeline fits its samples; given samples must fit already
    const fit = async (name: string, agentRows: readonly TrainingRow[]): Promise<FittedSamples> => {
        if (given != null) {
            const longest = given.reduce((max, s, i) => (s.tokens.length > given[max]!.tokens.length ? i : max), 0);
            if (given[longest]!.tokens.length > ctx)
                throw new InputError(`agent ${name}: sample ${longest} has ${given[longest]!.tokens.length} tokens, more than the context length ${ctx} (raise --ctx)`);
            return { samples: [...given], truncated: 0, dropped: 0, leftCut: 0 };
        }
        const { samples, bos } = await tokenizeWithFormatter(base, agentRows, threads, options.template);
        const fitted = fitSamplesToContext(samples, ctx, bos);
        if (fitted.samples.length === 0)
            throw new InputError(`agent ${name}: every sample's response alone is longer than the context length ${ctx} (raise --ctx)`);
        return fitted;
    };
    // every agent's samples are checked before anything is built or written
    const jobs: { name: string; fitted: FittedSamples }[] = [];
    for (const { name, rows: agentRows } of perAgent)
        jobs.push({ name, fitted: await fit(name, agentRows) });
    const build = await ensureNativeBuild({ backend, onProgress: options.onBuildProgress });
    makeDirectory(outDir, "output folder");

    const results: TrainedAgent[] = [];
    // Each finished adapter's final checkpoint stays until every agent of the call is done: a call
    // stopped at the second agent, run again, takes the first up at its last step instead of again.
    const finished: string[] = [];
    for (const { name, fitted } of jobs) {
        const samples = fitted.samples;
        const sampleFit: SampleFit = { samples: samples.length, truncated: fitted.truncated, leftCut: fitted.leftCut, tooLong: fitted.dropped };
        options.onFit?.(name, sampleFit);
        const beyond = beyondModelContext(samples, modelContext);
        if (beyond != null)
            options.onWarning?.(name, beyond);
        const adapterPath = path.join(outDir, `${name}.gguf`);
        const [checkpoint, samplesFile] = trainingLeftovers(adapterPath) as [string, string];
        await writeTrainingSamples(samplesFile, samples);
        const curvePath = path.join(outDir, `train-${name}.arrow`);
        if (!resume)
            fs.rmSync(checkpoint, { force: true });
        const earlier = resume && fs.existsSync(checkpoint) ? await readCurve(curvePath) : [];

        const curve: TrainStep[] = [];
        let startStep = 0;
        const writeCurve = async () => {
            const rowsOut = [...earlier.filter((row) => row.step <= startStep), ...curve.map((step) => curveRow(name, step))];
            await writeTable(curvePath, "training_curve", rowsOut);
        };
        // the curve is written with each checkpoint, so that it stays the checkpoint's (one after another)
        let curveWrites = Promise.resolve();
        try {
            // a finished adapter's last checkpoint (kept while the call's other agents trained) only
            // serves to take it up as it was: a run on other settings trains it anew instead of refusing
            const finishedBefore = resume && fs.existsSync(adapterPath) && fs.existsSync(checkpoint);
            const train = (resumeIt: boolean) => trainAdapter({
                ...options,
                trainer: build.trainer,
                base,
                samplesFile,
                out: adapterPath,
                agent: name,
                checkpoint,
                resume: resumeIt,
                threads,
                gpuLayers: options.gpuLayers ?? (backend === "cpu" ? 0 : -1),
                onEvent: (event) => {
                    if (event.event === "start") {
                        startStep = Number(event.start_step);
                        // a run from step 0: no curve of an earlier run may be spliced into its own
                        if (startStep === 0)
                            fs.rmSync(curvePath, { force: true });
                        options.onStart?.(name, event as unknown as TrainStart);
                    }
                    if (event.event === "checkpoint")
                        curveWrites = curveWrites.then(writeCurve);
                    if (event.event === "notice")
                        options.onWarning?.(name, String(event.message));
                },
                onStep: (step) => {
                    curve.push(step);
                    options.onStep?.(name, step);
                },
                onLog: (line) => options.onLog?.(name, line)
            });
            const result = await train(resume).catch((error: unknown) => {
                if (!(finishedBefore && error instanceof InputError && error.message.includes("the checkpoint was made with")))
                    throw error;
                fs.rmSync(checkpoint, { force: true });
                return train(false);
            });
            await curveWrites;
            await writeCurve();
            finished.push(adapterPath);
            results.push({ agent: name, adapterPath, curvePath, ...sampleFit, done: result.done, curve: result.curve });
        } catch (error) {
            await curveWrites.catch(() => undefined);
            if (error instanceof UserError && curve.length > 0)
                await writeCurve().catch(() => undefined); // keep what was learned so far with the checkpoint
            throw error;
        }
    }
    // Every adapter is complete: their checkpoints and samples files are of no further use.
    for (const leftover of finished.flatMap(trainingLeftovers))
        fs.rmSync(leftover, { force: true });
    return results;
}

/** The files training leaves beside `<dir>/<agent>.gguf` until it finishes: the checkpoint first, then the samples file. */
export function trainingLeftovers(adapterPath: string): string[] {
    const dir = path.dirname(adapterPath);
    const agent = path.basename(adapterPath, ".gguf");
    return [`${adapterPath}.ckpt`, path.join(dir, `.train-${agent}.samples.bin`)];
}

/** Tokenizes rows with the base model's prompt formatter (prompt mask 0, response mask 1); `bos` is the model's BOS token. */
export async function tokenizeWithFormatter(base: string, rows: readonly TrainingRow[], threads: number, template: PromptTemplate = "auto"): Promise<{ samples: TokenizedSample[]; bos: number | null }> {
    const { getLlama, LlamaLogLevel } = await llamaLib();
    const llama = await getLlama({ gpu: false, maxThreads: threads, logLevel: LlamaLogLevel.error, build: "never", progressLogs: false });
    let model;
    try {
        model = await llama.loadModel({ modelPath: base, vocabOnly: true });
    } catch (error) {
        throw new InputError(`cannot load the tokenizer of ${base}: ${errorMessage(error).split("\n")[0]}`);
    }
    try {
        const formatter = createPromptFormatter(model, { template });
        return { samples: tokenizeRows(rows, (row) => formatTrainingSample(model, formatter, row, taskAndQuestionLength(row.input))), bos: model.tokens.bos };
    } finally {
        await model.dispose();
    }
}

function curveRow(agent: string, step: TrainStep): TrainingCurveRow {
    return {
        agent,
        step: step.step,
        epoch: step.epoch,
        loss: step.loss,
        eval_loss: step.eval_loss ?? null,
        lr: step.lr,
        tokens_per_s: step.tokens_per_s,
        elapsed_s: step.elapsed_s,
        peak_rss_bytes: step.peak_rss_bytes,
        peak_vram_bytes: null
    };
}

async function readCurve(curvePath: string): Promise<TrainingCurveRow[]> {
    if (!fs.existsSync(curvePath))
        return [];
    const table = await readAnyTable(curvePath);
    return table.rows as unknown as TrainingCurveRow[];
}
