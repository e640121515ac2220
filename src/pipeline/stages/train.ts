import fs from "node:fs";
import { subAgentNames } from "../../agents/division.js";
import { readTable } from "../../data/table-io.js";
import { formatTrainingSample } from "../../llm/prompt-format.js";
import { trainAgents, trainOptionsFromConfig, type TokenizedSample } from "../../train/index.js";
import { fitSamplesToContext } from "../../train/dataset.js";
import { limited, type StageDefinition } from "../context.js";

/**
 * LoRA training of the three sub-agents on the shared base model, through the native
 * trainer. Samples are tokenized with the run's prompt formatter (the one group planning
 * prompts with); a sample longer than the training context loses prompt tokens on the left
 * and keeps its whole response (counted per agent as `<agent>_truncated`; one whose response
 * alone does not fit is left out and counted as `<agent>_too_long`).
 * A sub-agent without samples gets no adapter and runs on the base model at evaluation.
 */
export const trainStage: StageDefinition = {
    name: "train",
    description: "LoRA training of the plan, tool and reflect sub-agents",
    usesModel: true,
    inputTables: () => ["samples.arrow"],
    inputValues: (context) => ({ train: context.config.train, template: context.config.model.template, limit: context.limit }),
    async run(context) {
        const settings = context.config.train;
        const samplesFile = context.runDir.file("samples.arrow");
        const rows = await readTable(samplesFile, "samples");
        const model = await context.model.loaded();
        const formatter = await context.model.formatter();
        const outDir = context.runDir.file("adapters");
        fs.rmSync(outDir, { recursive: true, force: true });

        // Tokenize everything first, then free the model: the trainer is its own process.
        const bos = model.model.tokens.bos;
        const perAgent = subAgentNames.map((agent) => {
            const agentRows = rows.filter((row) => row.agent === agent);
            const tokenized = agentRows.map((row) => formatTrainingSample(model.model, formatter, row));
            const keepFirst = bos != null && tokenized[0]?.tokens[0] === bos ? 1 : 0;
            const fitted = fitSamplesToContext(tokenized, settings.context, keepFirst);
            return { agent, samples: fitted.samples.slice(0, limited(fitted.samples.length, context.limit)), truncated: fitted.truncated, tooLong: fitted.dropped };
        });
        const modelPath = context.model.modelPath;
        await context.model.dispose();

        const outputs: Record<string, number> = {};
        const stats: Record<string, number> = {};
        let tokensPerSecond = 0;
        for (const { agent, samples, truncated, tooLong } of perAgent) {
            stats[`${agent}_samples`] = samples.length;
            stats[`${agent}_truncated`] = truncated;
            stats[`${agent}_too_long`] = tooLong;
            if (truncated + tooLong > 0)
                context.log(`train: ${agent}: ${truncated} samples left-truncated to ${settings.context} tokens (responses whole), ${tooLong} left out (response longer than the context)`);
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
