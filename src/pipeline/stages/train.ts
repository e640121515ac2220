import fs from "node:fs";
import path from "node:path";
import { subAgentNames } from "../../agents/division.js";
import { readTable } from "../../data/table-io.js";
import { formatTrainingSample } from "../../llm/prompt-format.js";
import { trainAgents, trainOptionsFromConfig, trainingLeftovers, type TokenizedSample } from "../../train/index.js";
import { writeFileAtomicSync } from "../../util/fs.js";
import { hashValues } from "../run-dir.js";
import { limited, type StageDefinition } from "../context.js";

/**
 * LoRA training of the three sub-agents on the shared base model, through the native
 * trainer. Samples are tokenized with the run's prompt formatter (the one group planning
 * prompts with); samples longer than the training context are left out and counted.
 * A sub-agent without samples gets no adapter and runs on the base model at evaluation.
 */
export const trainStage: StageDefinition = {
    name: "train",
    description: "LoRA training of the plan, tool and reflect sub-agents",
    reads: { config: ["train", "model.template"], tables: ["samples.arrow"], model: true, limit: true },
    writes: {
        files: () => subAgentNames.flatMap((agent) => [`adapters/${agent}.gguf`, `adapters/train-${agent}.arrow`]),
        resumable: true
    },
    async run(context, inputHash) {
        const settings = context.config.train;
        const samplesFile = context.runDir.file("samples.arrow");
        const rows = await readTable(samplesFile, "samples");
        if (rows.length === 0) {
            const filter = context.runDir.readManifest().stages.filter?.stats;
            const cause = filter?.trajectories != null ? `the filter kept ${filter.kept ?? 0} of ${filter.trajectories} trajectories` : "samples.arrow is empty";
            context.log(`train: nothing to train on (${cause}); the plan, tool and reflect agents stay the base model`);
        }
        const model = await context.model.loaded();
        const formatter = await context.model.formatter();
        const outDir = context.runDir.file("adapters");

        // Tokenize everything first, then free the model: the trainer is its own process.
        const perAgent = subAgentNames.map((agent) => {
            const agentRows = rows.filter((row) => row.agent === agent);
            const tokenized = agentRows.map((row) => formatTrainingSample(model.model, formatter, row));
            const fitting = tokenized.filter((sample) => sample.tokens.length <= settings.context);
            return { agent, samples: fitting.slice(0, limited(fitting.length, context.limit)), tooLong: tokenized.length - fitting.length };
        });
        const modelPath = context.model.modelPath;
        await context.model.dispose();

        const outputs: Record<string, number> = {};
        const stats: Record<string, number> = {};
        let tokensPerSecond = 0;
        for (const { agent, samples, tooLong } of perAgent) {
            stats[`${agent}_samples`] = samples.length;
            stats[`${agent}_too_long`] = tooLong;
            const files = new AgentFiles(outDir, agent);
            // An adapter, its curve and its checkpoint belong to one input hash: any other is stale.
            const key = hashValues(inputHash, agent);
            if (files.key() !== key)
                files.removeAll();
            if (samples.length === 0) {
                if (rows.length > 0)
                    context.log(tooLong > 0
                        ? `train: none of the ${tooLong} ${agent} samples fits ${settings.context} tokens; the ${agent} agent stays the base model`
                        : `train: no ${agent} samples in samples.arrow; the ${agent} agent stays the base model`);
                continue;
            }
            if (files.finished()) {
                context.log(`train: ${agent} adapter up to date`);
                const curve = await readTable(files.curve, "training_curve");
                outputs[`adapters/${agent}.gguf`] = samples.length;
                outputs[`adapters/train-${agent}.arrow`] = curve.length;
                continue;
            }
            files.setKey(key);
            let lastStep = 0;
            const [trained] = await trainAgents({
                base: modelPath,
                data: samplesFile,
                agent,
                outDir,
                tokenize: async (): Promise<TokenizedSample[]> => samples,
                ...trainOptionsFromConfig(settings),
                // A killed run resumes from its last checkpoint: the pipeline always writes them
                // as it trains (train.checkpoint_every, or every 25 steps when that is 0).
                checkpointEvery: settings.checkpoint_every > 0 ? settings.checkpoint_every : PIPELINE_CHECKPOINT_EVERY,
                threads: context.config.model.threads > 0 ? context.config.model.threads : undefined,
                onBuildProgress: (progress) => context.log(`native build: ${progress.phase} ${progress.message}`),
                // the trainer counts the steps (epochs over packed batches); the bar starts when it says how many
                onStart: (_agent, start) => {
                    context.progress.start(`train ${agent}`, start.total_steps);
                    lastStep = start.start_step;
                },
                onStep: (_agent, step) => {
                    context.progress.advance(step.step - lastStep, 0);
                    lastStep = step.step;
                    tokensPerSecond = step.tokens_per_s;
                }
            });
            context.progress.done(`loss ${trained!.done.first_loss?.toFixed(4)} -> ${trained!.done.loss?.toFixed(4)}`);
            tokensPerSecond = trained!.done.tokens_per_s;
            outputs[`adapters/${agent}.gguf`] = samples.length;
            outputs[`adapters/train-${agent}.arrow`] = trained!.curve.length;
        }
        return { outputs, stats: { ...stats, tokens_per_s: tokensPerSecond } };
    }
};

const PIPELINE_CHECKPOINT_EVERY = 25;

/**
 * One agent's files in adapters/: the adapter, its training curve, the trainer's checkpoint
 * and samples file, and `.<agent>.key`, the input hash they were made from.
 */
class AgentFiles {
    readonly adapter: string;
    readonly curve: string;
    private readonly keyFile: string;

    constructor(readonly dir: string, readonly agent: string) {
        this.adapter = path.join(dir, `${agent}.gguf`);
        this.curve = path.join(dir, `train-${agent}.arrow`);
        this.keyFile = path.join(dir, `.${agent}.key`);
    }

    key(): string | null {
        try {
            return fs.readFileSync(this.keyFile, "utf8").trim();
        } catch {
            return null;
        }
    }

    setKey(key: string): void {
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
}
