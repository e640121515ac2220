import fs from "node:fs";
import { subAgentNames } from "../../agents/division.js";
import { readTable } from "../../data/table-io.js";
import { formatTrainingSample } from "../../llm/prompt-format.js";
import { trainAgents, trainOptionsFromConfig, type TokenizedSample } from "../../train/index.js";
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
    async run(context) {
        const settings = context.config.train;
        const samplesFile = context.runDir.file("samples.arrow");
        const rows = await readTable(samplesFile, "samples");
        const model = await context.model.loaded();
        const formatter = await context.model.formatter();
        const outDir = context.runDir.file("adapters");
        fs.rmSync(outDir, { recursive: true, force: true });

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
            if (samples.length === 0) {
                context.log(`train: no ${agent} samples fit ${settings.context} tokens; the ${agent} agent stays the base model`);
                continue;
            }
            let lastStep = 0;
            const [trained] = await trainAgents({
                base: modelPath,
                data: samplesFile,
                agent,
                outDir,
                tokenize: async (): Promise<TokenizedSample[]> => samples,
                ...trainOptionsFromConfig(settings),
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
