import fs from "node:fs";
import { runEpisode, type StepPolicy } from "../../agents/episode.js";
import { GroupPolicy, MetaAgentPolicy, type EpisodeSampling, type SubAgents } from "../../agents/policies.js";
import { chainOfThoughtPrompt, parseChainOfThoughtAnswer } from "../../agents/cot.js";
import { subAgentNames, type SubAgentName } from "../../agents/division.js";
import type { EvalRow } from "../../data/schemas.js";
import { writeTable } from "../../data/table-io.js";
import { ToolSession } from "../../tools/index.js";
import { deriveSeed } from "../../util/random.js";
import { StageBatches } from "../batches.js";
import { limited, type StageContext, type StageDefinition } from "../context.js";
import { hashValues, type RunDir } from "../run-dir.js";
import { openTaskSetup, scoreTaskAnswer, type TaskSetup } from "../task-setup.js";
import { loadEvalExamples, type EvalExample } from "../eval-data.js";

/** Adapter files of the sub-agents; an agent without one runs on the base model. */
export type SubAgentAdapters = Partial<Record<SubAgentName, string>>;

/** The adapters the train stage wrote into the run directory (adapters/<agent>.gguf). */
export function runDirAdapters(runDir: RunDir): SubAgentAdapters {
    const adapters: SubAgentAdapters = {};
    for (const agent of subAgentNames) {
        const file = runDir.file(`adapters/${agent}.gguf`);
        if (fs.existsSync(file))
            adapters[agent] = file;
    }
    return adapters;
}

/**
 * Group-planning evaluation and its two baselines on the configured evaluation sets:
 * "group" (plan/tool/reflect sub-agents, each a context with its adapter on one model),
 * "react" (the meta-agent alone, zero-shot) and "cot" (no tools). One table per set.
 */
export function createEvalStage(adapterOverride?: SubAgentAdapters): StageDefinition {
    const adaptersFor = (context: StageContext) => adapterOverride ?? runDirAdapters(context.runDir);
    return {
        name: "eval",
        description: "Group-planning evaluation with the react and cot baselines",
        reads: {
            // synth.batch_size and synth.max_context shape eval's batches and episodes too.
            config: [
                "eval", "data.eval", "data.corpus", "description", "task",
                "model.template", "model.context_size", "model.parallel", "synth.batch_size", "synth.max_context"
            ],
            tables: ["tools.arrow"],
            files: (context) => Object.fromEntries(Object.entries(adaptersFor(context)).filter(([, file]) => file != null)) as Record<string, string>,
            model: true,
            limit: true
        },
        writes: { files: (context) => context.config.data.eval.map((set) => `eval-${set.name}.arrow`) },
        async run(context, inputHash) {
            const adapters = adaptersFor(context);
            const started = performance.now();
            let generatedTokens = 0;
            const setup = await openTaskSetup(context);
            const outputs: Record<string, number> = {};
            const stats: Record<string, number | string> = {};
            try {
                for (const set of context.config.data.eval) {
                    const examples = await loadEvalExamples(context, set);
                    const chosen = examples.slice(0, limited(set.limit || examples.length, context.limit));
                    const rows = await evaluateSet(context, setup, adapters, chosen, hashValues(inputHash, set.name));
                    generatedTokens += rows.reduce((sum, r) => sum + r.generated_tokens, 0);
                    const file = `eval-${set.name}.arrow`;
                    await writeTable(context.runDir.file(file), "eval", rows);
                    outputs[file] = rows.length;
                    for (const method of context.config.eval.methods) {
                        const mine = rows.filter((r) => r.method === method);
                        const tokens = mine.reduce((sum, r) => sum + r.generated_tokens, 0);
                        stats[`${set.name}.${method}.f1`] = mine.length === 0 ? 0 : mine.reduce((s, r) => s + r.f1, 0) / mine.length;
                        stats[`${set.name}.${method}.generated_tokens`] = tokens;
                    }
                }
            } finally {
                setup.close();
                context.runDir.clearParts("eval");
            }
            stats.generated_tokens = generatedTokens;
            stats.tokens_per_s = generatedTokens / Math.max(1e-3, (performance.now() - started) / 1000);
            stats.adapters = Object.entries(adapters).map(([agent, file]) => `${agent}=${file}`).join(",") || "none";
            return { outputs, stats };
        }
    };
}

async function evaluateSet(
    context: StageContext, setup: TaskSetup, adapters: SubAgentAdapters, examples: EvalExample[], batchHash: string
): Promise<EvalRow[]> {
    const settings = context.config.eval;
    const batchSize = context.config.synth.batch_size;
    const batches = new StageBatches(context.runDir, "eval", batchHash, "eval");
    const done = batches.completed();
    const rows: EvalRow[] = [];
    const chunks = Math.ceil(examples.length / batchSize);
    const total = examples.length * settings.methods.length;
    context.progress.start("eval", total);
    for (const [m, method] of settings.methods.entries()) {
        for (let chunk = 0; chunk < chunks; chunk++) {
            const index = m * 100_000 + chunk;
            const slice = examples.slice(chunk * batchSize, (chunk + 1) * batchSize);
            if (done.has(index)) {
                rows.push(...await batches.read(index));
                context.progress.advance(slice.length);
                continue;
            }
            const batchRows = await Promise.all(slice.map(async (example) => {
                const row = await evaluateOne(context, setup, adapters, method, example);
                context.progress.advance(1, row.generated_tokens);
                return row;
            }));
            await batches.write(index, batchRows);
            rows.push(...batchRows);
        }
    }
    context.progress.done();
    return rows;
}

async function evaluateOne(
    context: StageContext, setup: TaskSetup, adapters: SubAgentAdapters, method: EvalRow["method"], example: EvalExample
): Promise<EvalRow> {
    const { config } = context;
    const settings = config.eval;
    const sampling: EpisodeSampling = {
        temperature: settings.temperature,
        topP: settings.top_p,
        topK: settings.top_k,
        maxTokens: settings.max_tokens,
        seed: deriveSeed(settings.seed, `${method}-${example.id}`)
    };
    const base = { method, task_id: example.id, level: example.level ?? null, question: example.question, gold: example.answer };

    if (method === "cot") {
        const agent = await context.model.agent("meta");
        const result = await agent.complete(
            chainOfThoughtPrompt({ description: config.description, question: example.question, kind: config.task.kind }),
            { ...sampling, maxTokens: 4 * settings.max_tokens }
        );
        const prediction = parseChainOfThoughtAnswer(result.text);
        return {
            ...base, prediction,
            ...scoreTaskAnswer(config.task, prediction, example.answer, example.choices ?? null),
            steps: 1, invalid_actions: 0,
            stop_reason: prediction == null ? "invalid" : "finished",
            prompt_tokens: result.promptTokens, generated_tokens: result.generatedTokens, time_ms: result.timeMs,
            trajectory: null
        };
    }

    let policy: StepPolicy;
    if (method === "group") {
        const agents = {} as SubAgents;
        for (const agent of subAgentNames)
            agents[agent] = await context.model.agent(agent, adapters[agent] == null ? [] : [{ filePath: adapters[agent]! }]);
        policy = new GroupPolicy(agents, sampling);
    } else {
        policy = new MetaAgentPolicy(await context.model.agent("meta"), sampling);
    }
    const result = await runEpisode({
        header: setup.header,
        question: example.question,
        policy,
        tools: setup.runner,
        session: new ToolSession({ image: example.image }),
        maxSteps: settings.max_steps,
        maxContext: Math.min(config.synth.max_context, await context.model.contextSize()),
        reserveTokens: 2 * settings.max_tokens
    });
    return {
        ...base,
        prediction: result.finalAnswer,
        ...scoreTaskAnswer(config.task, result.finalAnswer, example.answer, example.choices ?? null),
        steps: result.steps.length,
        invalid_actions: result.invalidActions,
        stop_reason: result.stopReason,
        prompt_tokens: result.promptTokens,
        generated_tokens: result.generatedTokens,
        time_ms: result.timeMs,
        trajectory: result.steps
    };
}
