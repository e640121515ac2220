import { runEpisode } from "../../agents/episode.js";
import { MetaAgentPolicy } from "../../agents/policies.js";
import type { TaskRow, TrajectoryRow } from "../../data/schemas.js";
import { readTable } from "../../data/table-io.js";
import { ToolSession } from "../../tools/index.js";
import { deriveSeed } from "../../util/random.js";
import { StageBatches } from "../batches.js";
import { limited, type StageDefinition } from "../context.js";
import { openTaskSetup } from "../task-setup.js";
import { corpusInputs } from "../data-inputs.js";
import { InputError, errorMessage } from "../../util/errors.js";

/**
 * Trajectory synthesis: the meta-agent answers every task in a zero-shot ReAct loop with
 * the selected tools. All episodes of a batch are in flight at once over the engine's
 * parallel sequences; each finished batch is saved, so a killed run resumes after it.
 */
export const synthStage: StageDefinition = {
    name: "synth",
    description: "Trajectory synthesis: zero-shot ReAct with the Finish/Reflect protocol",
    reads: {
        config: ["synth", "description", "task.kind", "data.corpus", "model.template", "model.context_size", "model.parallel"],
        tables: ["tasks.arrow", "tools.arrow"],
        // the corpus the tools search
        data: corpusInputs,
        model: true,
        limit: true
    },
    writes: { files: () => ["trajectories.arrow"] },
    async run(context, inputHash) {
        const settings = context.config.synth;
        const allTasks = await readTable(context.runDir.file("tasks.arrow"), "tasks");
        if (allTasks.length === 0)
            throw new InputError(`${context.runDir.file("tasks.arrow")}: no tasks to synthesize trajectories for`);
        const tasks = allTasks.slice(0, limited(allTasks.length, context.limit));
        const setup = await openTaskSetup(context);
        const agent = await context.model.agent("meta");
        const maxContext = Math.min(settings.max_context, await context.model.contextSize());
        const batches = new StageBatches(context.runDir, "synth", inputHash, "trajectories");
        const done = batches.completed();
        const started = performance.now();
        let generatedTokens = 0;
        let resumed = 0;
        context.progress.start("synth", tasks.length);
        try {
            for (let batch = 0; batch * settings.batch_size < tasks.length; batch++) {
                const slice = tasks.slice(batch * settings.batch_size, (batch + 1) * settings.batch_size);
                if (done.has(batch)) {
                    resumed += slice.length;
                    context.progress.advance(slice.length);
                    continue;
                }
                const rows = await Promise.all(slice.map(async (task): Promise<TrajectoryRow> => {
                    const result = await runEpisode({
                        header: setup.header,
                        question: task.question,
                        policy: new MetaAgentPolicy(agent, {
                            temperature: settings.temperature,
                            topP: settings.top_p,
                            topK: settings.top_k,
                            maxTokens: settings.max_tokens,
                            seed: deriveSeed(settings.seed, task.id)
                        }),
                        tools: setup.runner,
                        session: new ToolSession({ image: imageOf(task, context.runDir.file("tasks.arrow")) }),
                        maxSteps: settings.max_steps,
                        maxContext,
                        reserveTokens: 2 * settings.max_tokens
                    });
                    generatedTokens += result.generatedTokens;
                    context.progress.advance(1, result.generatedTokens);
                    return {
                        id: `traj-${task.id}`,
                        task_id: task.id,
                        question: task.question,
                        gold_answer: task.answer,
                        steps: result.steps,
                        final_answer: result.finalAnswer,
                        stop_reason: result.stopReason,
                        prompt_tokens: result.promptTokens,
                        generated_tokens: result.generatedTokens,
                        time_ms: result.timeMs,
                        batch
                    };
                }));
                await batches.write(batch, rows);
            }
        } finally {
            setup.close();
        }
        const seconds = (performance.now() - started) / 1000;
        context.progress.done();
        const rows = await batches.finalize(context.runDir.file("trajectories.arrow"), context.runDir, "synth");
        return {
            outputs: { "trajectories.arrow": rows },
            stats: {
                trajectories: rows,
                resumed,
                generated_tokens: generatedTokens,
                tokens_per_s: generatedTokens / Math.max(seconds, 1e-3),
                parallel: context.config.model.parallel
            }
        };
    }
};

/**
 * ScienceQA-style tasks keep their image caption and OCR in `meta`. A `meta` that is not
 * JSON is an error naming the task: read as "no image", it would silently change the task.
 */
export function imageOf(task: Pick<TaskRow, "meta"> & Partial<Pick<TaskRow, "id">>, where = "tasks.arrow"): { caption: string; ocr: string } | undefined {
    if (task.meta == null || task.meta === "")
        return undefined;
    let meta: unknown;
    try {
        meta = JSON.parse(task.meta);
    } catch (error) {
        throw new InputError(`${where}: task ${task.id ?? "?"} has a corrupt "meta" column (${errorMessage(error)})`);
    }
    const image = (meta as { image?: unknown } | null)?.image;
    if (image == null)
        return undefined;
    const { caption, ocr } = image as { caption?: unknown; ocr?: unknown };
    if (typeof caption !== "string" || (ocr != null && typeof ocr !== "string"))
        throw new InputError(`${where}: task ${task.id ?? "?"} has an "image" in "meta" without a caption string`);
    return { caption, ocr: (ocr as string | undefined) ?? "" };
}
