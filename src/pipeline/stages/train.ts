import fs from "node:fs";
import path from "node:path";
import { subAgentNames } from "../../agents/division.js";
import type { SampleRow } from "../../data/schemas.js";
import { readTable } from "../../data/table-io.js";
import { formatTrainingSample } from "../../llm/prompt-format.js";
import { trainAgents, trainOptionsFromConfig, trainingLeftovers, type TokenizedSample } from "../../train/index.js";
import { cutWhere, fitSamplesToContext } from "../../train/dataset.js";
import { taskAndQuestionLength } from "../../agents/react-format.js";
import { writeFileAtomicSync } from "../../util/fs.js";
import { cachedSha256 } from "../../util/file-hash.js";
import { hashValues } from "../run-dir.js";
import { limited, type StageContext, type StageDefinition } from "../context.js";
import { needsAdapters } from "../eval-methods.js";

/**
 * LoRA training of the three sub-agents on the shared base model, through the native
 * trainer. Samples are tokenized with the run's prompt formatter (the one group planning
 * prompts with); a sample longer than the training context loses its oldest steps after the
 * task header and question and keeps its whole response (counted per agent as
 * `<agent>_truncated`; `<agent>_left_cut` of them lost the left of the prompt instead, where
 * the rest could not make room; one whose response alone does not fit is left out and
 * counted as `<agent>_too_long`).
 * A sub-agent without samples gets no adapter and runs on the base model at evaluation.
 * For the ablations evaluated (eval.methods) it also trains one adapter on all samples
 * (adapters/multi.gguf, -multi) and the three on unfiltered trajectories
 * (adapters/unfiltered/<agent>.gguf, -filtering).
 * Each adapter is keyed by what makes its weights (its samples as tokenized, the options that
 * change them, the base model): a finished one is kept whatever else changed, one whose key
 * changed is removed before any training starts, and a killed run resumes from its checkpoint.
 */
export const trainStage: StageDefinition = {
    name: "train",
    description: "LoRA training of the plan, tool and reflect sub-agents",
    reads: {
        config: ["train", "model.template", "eval.methods"],
        tables: (context) => ["samples.arrow", ...(needsAdapters(context.config.eval.methods, "unfiltered") ? ["samples-unfiltered.arrow"] : [])],
        model: true,
        limit: true
    },
    writes: {
        files: (context) => jobNames(context).flatMap(({ dir, name }) => [`${dir}/${name}.gguf`, `${dir}/train-${name}.arrow`]),
        resumable: true
    },
    async run(context) {
        const settings = context.config.train;
        const methods = context.config.eval.methods;
        // A sample with an empty response (one imported, or written by hand) teaches its agent to stop at once.
        let emptyResponses = 0;
        const withResponses = (source: SampleRow[]) => {
            const kept = source.filter((row) => row.output.trim() !== "");
            emptyResponses += source.length - kept.length;
            return kept;
        };
        const rows = withResponses(await readTable(context.runDir.file("samples.arrow"), "samples"));
        if (emptyResponses > 0)
            context.log(`train: left out ${emptyResponses} samples with an empty response (they would teach the agent to stop at once)`);
        if (rows.length === 0) {
            const filter = context.runDir.readManifest().stages.filter?.stats;
            const cause = filter?.trajectories != null ? `the filter kept ${filter.kept ?? 0} of ${filter.trajectories} trajectories` : "samples.arrow is empty";
            context.log(`train: nothing to train on (${cause}); the plan, tool and reflect agents stay the base model`);
        }
        const model = await context.model.loaded();
        const formatter = await context.model.formatter();
        const outDir = context.runDir.file("adapters");

        // Tokenize everything first, then free the model: the trainer is its own process.
        const bos = model.model.tokens.bos;
        const fit = (name: string, source: SampleRow[], dir = outDir): Job => {
            const tokenized = source.map((row) => formatTrainingSample(model.model, formatter, row, taskAndQuestionLength(row.input)));
            const fitted = fitSamplesToContext(tokenized, settings.context, bos);
            return { name, samples: fitted.samples.slice(0, limited(fitted.samples.length, context.limit)), truncated: fitted.truncated, leftCut: fitted.leftCut, tooLong: fitted.dropped, outDir: dir };
        };
        const jobs: Job[] = subAgentNames.map((agent) => fit(agent, rows.filter((row) => row.agent === agent)));
        if (needsAdapters(methods, "multi"))
            jobs.push(fit("multi", rows));
        if (needsAdapters(methods, "unfiltered")) {
            const unfiltered = withResponses(await readTable(context.runDir.file("samples-unfiltered.arrow"), "samples"));
            for (const agent of subAgentNames)
                jobs.push(fit(agent, unfiltered.filter((row) => row.agent === agent), path.join(outDir, "unfiltered")));
        }
        const modelPath = context.model.modelPath;
        await context.model.dispose();

        // How often the trainer checkpoints does not change the weights: a new cadence keeps them.
        const { checkpointEvery: _cadence, ...weightOptions } = trainOptionsFromConfig(settings);
        const modelHash = await cachedSha256(modelPath);
        const labelOf = (job: Job) => (job.outDir === outDir ? job.name : `unfiltered_${job.name}`);
        const keyOf = (job: Job) => adapterKey(labelOf(job), modelHash, weightOptions, job.samples);
        // Every adapter made from other inputs goes before any training, so that a run killed
        // part-way leaves no adapter of the old settings beside the new ones for eval or deploy to
        // take: a finished one aside (previous/train/), where it comes back from when its inputs
        // do (a --limit trial costs no training), an unfinished one away. --force remakes all.
        for (const job of jobs) {
            const files = new AdapterFiles(job.outDir, job.name);
            const aside = new AdapterFiles(path.join(context.runDir.file("previous/train"), path.relative(context.runDir.dir, job.outDir)), job.name);
            const key = keyOf(job);
            if (context.force === true) {
                files.removeAll();
                aside.removeAll();
            } else if (files.key() !== key) {
                // the one aside may be this key's, and the one here goes aside: swap through a third place
                const back = aside.key() === key && aside.finished() ? new AdapterFiles(`${aside.dir}.back`, job.name) : null;
                if (back != null)
                    aside.moveTo(back);
                if (files.finished())
                    files.moveTo(aside);
                else
                    files.removeAll();
                if (back != null) {
                    back.moveTo(files);
                    fs.rmSync(back.dir, { recursive: true, force: true });
                    context.log(`train: ${labelOf(job)} adapter back from previous/train/ (made from these inputs by an earlier run)`);
                }
            }
        }

        const outputs: Record<string, number> = {};
        const stats: Record<string, number> = { empty_responses: emptyResponses };
        let tokensPerSecond: number | undefined; // of the last adapter trained here; none when every one was up to date
        for (const job of jobs) {
            const label = labelOf(job);
            stats[`${label}_samples`] = job.samples.length;
            stats[`${label}_truncated`] = job.truncated;
            stats[`${label}_left_cut`] = job.leftCut;
            stats[`${label}_too_long`] = job.tooLong;
            if (job.truncated + job.tooLong > 0)
                context.log(`train: ${label}: ${job.truncated} samples cut to ${settings.context} tokens (responses whole; ${cutWhere(job)}), ${job.tooLong} left out (response longer than the context)`);
            const files = new AdapterFiles(job.outDir, job.name);
            const key = keyOf(job);
            if (job.samples.length === 0) {
                if (rows.length > 0)
                    context.log(`train: no ${label} samples fit ${settings.context} tokens; no adapter (the base model stands in)`);
                continue;
            }
            const relative = path.relative(context.runDir.dir, job.outDir);
            if (files.finished()) {
                context.log(`train: ${label} adapter up to date`);
                outputs[`${relative}/${job.name}.gguf`] = job.samples.length;
                outputs[`${relative}/train-${job.name}.arrow`] = (await readTable(files.curve, "training_curve")).length;
                continue;
            }
            files.setKey(key);
            const curveRows = await trainJob(context, job, modelPath, (rate) => (tokensPerSecond = rate));
            outputs[`${relative}/${job.name}.gguf`] = job.samples.length;
            outputs[`${relative}/train-${job.name}.arrow`] = curveRows;
        }
        return { outputs, stats: tokensPerSecond == null ? stats : { ...stats, tokens_per_s: tokensPerSecond } };
    }
};

/** The adapters the stage may write: the sub-agents, and the ablations' when eval asks for them. */
function jobNames(context: StageContext): { dir: string; name: string }[] {
    const methods = context.config.eval.methods;
    return [
        ...subAgentNames.map((name) => ({ dir: "adapters", name })),
        ...(needsAdapters(methods, "multi") ? [{ dir: "adapters", name: "multi" }] : []),
        ...(needsAdapters(methods, "unfiltered") ? subAgentNames.map((name) => ({ dir: "adapters/unfiltered", name })) : [])
    ];
}

/**
 * What an adapter's weights are made of: its name, the base model, the options that change
 * weights and what the trainer reads of its samples (their tokens and masks, not how they were
 * fitted: `keep` is not read).
 */
export function adapterKey(label: string, modelHash: string, weightOptions: object, samples: readonly TokenizedSample[]): string {
    return hashValues(label, modelHash, weightOptions, samples.map(({ tokens, mask }) => ({ tokens, mask })));
}

interface Job {
    /** Adapter name: a sub-agent, or "multi" for the one adapter trained on every sample. */
    name: string;
    samples: TokenizedSample[];
    truncated: number;
    /** Of the truncated, those cut on the left of the prompt (the question lost, or none to keep). */
    leftCut: number;
    tooLong: number;
    outDir: string;
}

/** Runs the native trainer for one adapter (resuming its checkpoint); returns the number of curve rows. */
async function trainJob(context: StageContext, job: Job, modelPath: string, onRate: (tokensPerSecond: number) => void): Promise<number> {
    const settings = context.config.train;
    let lastStep = 0;
    const [trained] = await trainAgents({
        base: modelPath,
        samples: job.samples,
        agent: job.name,
        outDir: job.outDir,
        ...trainOptionsFromConfig(settings),
        threads: context.config.model.threads > 0 ? context.config.model.threads : undefined,
        onBuildProgress: (progress) => context.log(`native build: ${progress.phase} ${progress.message}`),
        onWarning: (agent, warning) => context.log(`train: ${agent}: warning: ${warning}`),
        // the trainer counts the steps (epochs over packed batches); the bar starts when it says how many
        onStart: (_agent, start) => {
            context.progress.start(`train ${job.name}`, start.total_steps);
            lastStep = start.start_step;
        },
        onStep: (_agent, step) => {
            context.progress.advance(step.step - lastStep, step.tokens);
            lastStep = step.step;
            onRate(step.tokens_per_s);
        }
    });
    context.progress.done(`loss ${trained!.done.first_loss?.toFixed(4)} -> ${trained!.done.loss?.toFixed(4)}`);
    onRate(trained!.done.tokens_per_s);
    return trained!.curve.length;
}

/**
 * One adapter's files: the adapter, its training curve, the trainer's checkpoint and samples
 * file, and `.<name>.key`, the key of what they were made from.
 */
class AdapterFiles {
    readonly adapter: string;
    readonly curve: string;
    private readonly keyFile: string;

    constructor(readonly dir: string, readonly name: string) {
        this.adapter = path.join(dir, `${name}.gguf`);
        this.curve = path.join(dir, `train-${name}.arrow`);
        this.keyFile = path.join(dir, `.${name}.key`);
    }

    key(): string | null {
        try {
            return fs.readFileSync(this.keyFile, "utf8").trim();
        } catch {
            return null;
        }
    }

    setKey(key: string): void {
        fs.mkdirSync(this.dir, { recursive: true });
        writeFileAtomicSync(this.keyFile, `${key}\n`);
    }

    /** Trained to the end: the adapter and its curve exist and no checkpoint is left. */
    finished(): boolean {
        return fs.existsSync(this.adapter) && fs.existsSync(this.curve) && !fs.existsSync(trainingLeftovers(this.adapter)[0]!);
    }

    removeAll(): void {
        for (const file of [this.adapter, this.curve, this.keyFile, ...trainingLeftovers(this.adapter)])
            fs.rmSync(file, { force: true });
    }

    /** Moves a finished adapter, its curve and its key to `other` (replacing what was there). */
    moveTo(other: AdapterFiles): void {
        other.removeAll();
        fs.mkdirSync(other.dir, { recursive: true });
        for (const [from, to] of [[this.adapter, other.adapter], [this.curve, other.curve], [this.keyFile, other.keyFile]] as const)
            fs.renameSync(from, to);
        this.removeAll();
    }
}
