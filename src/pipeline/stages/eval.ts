import fs from "node:fs";
import { runEpisode, type StepPolicy } from "../../agents/episode.js";
import { GroupPolicy, MetaAgentPolicy, type EpisodeSampling, type SubAgents } from "../../agents/policies.js";
import { chainOfThoughtPrompt, parseChainOfThoughtAnswer } from "../../agents/cot.js";
import { subAgentNames, type SubAgentName } from "../../agents/division.js";
import type { EvalMethod, EvalRow } from "../../data/schemas.js";
import { readTable, writeTable } from "../../data/table-io.js";
import { chainOfThoughtExemplars, reactExemplars, type Exemplar } from "../../agents/exemplars.js";
import { evalMethodSpecs } from "../eval-methods.js";
import type { PipelineConfig } from "../config-schema.js";
import { readSeeds } from "../seeds.js";
import { ToolSession } from "../../tools/index.js";
import { deriveSeed } from "../../util/random.js";
import { InputError } from "../../util/errors.js";
import { StageBatches } from "../batches.js";
import { limited, type StageContext, type StageDefinition } from "../context.js";
import { hashValues, type RunDir } from "../run-dir.js";
import { openTaskSetup, scoreTaskAnswer, type TaskSetup } from "../task-setup.js";
import { loadEvalExamples, type EvalExample } from "../eval-data.js";
import { corpusInputs, dataInputs, evalSetInputs, seedsInput } from "../data-inputs.js";

/** Adapter files of the sub-agents; an agent without one runs on the base model. */
export type SubAgentAdapters = Partial<Record<SubAgentName, string>>;

/** The adapters the train stage wrote into the run directory (adapters/<agent>.gguf). */
/**
 * Group planning as the run trained its sub-agents: who writes Finish's answer is the
 * division's (`split.finish_by`). Evaluation and `autoact agent` both ask with it.
 */
export function groupPolicy(config: PipelineConfig, agents: SubAgents, sampling: EpisodeSampling): GroupPolicy {
    return new GroupPolicy(agents, sampling, { finishBy: config.split.finish_by });
}

export function runDirAdapters(runDir: RunDir, folder = "adapters"): SubAgentAdapters {
    const adapters: SubAgentAdapters = {};
    for (const agent of subAgentNames) {
        const file = runDir.file(`${folder}/${agent}.gguf`);
        if (fs.existsSync(file))
            adapters[agent] = file;
    }
    return adapters;
}

/** The adapters a method's sub-agents load (see eval-methods.ts). */
function methodAdapters(runDir: RunDir, trained: SubAgentAdapters, method: EvalMethod): SubAgentAdapters {
    const kind = evalMethodSpecs[method].adapters;
    if (kind === "trained")
        return trained;
    if (kind === "unfiltered")
        return runDirAdapters(runDir, "adapters/unfiltered");
    if (kind === "multi") {
        const file = runDir.file("adapters/multi.gguf");
        return fs.existsSync(file) ? { plan: file, tool: file, reflect: file } : {};
    }
    return {};
}

/**
 * An ablation whose own adapters the train stage did not write (it trains them only for the
 * methods in eval.methods at its run) would run on the base model under the ablation's name:
 * refused while the sub-agents have adapters. With none trained, every method runs on the base
 * model and the report says so (adapters=none).
 */
function checkAblationAdapters(context: StageContext, trained: SubAgentAdapters): void {
    if (Object.keys(trained).length === 0)
        return;
    for (const method of context.config.eval.methods) {
        const kind = evalMethodSpecs[method].adapters;
        if ((kind === "multi" || kind === "unfiltered") && Object.keys(methodAdapters(context.runDir, trained, method)).length === 0) {
            const where = context.runDir.file(kind === "multi" ? "adapters/multi.gguf" : "adapters/unfiltered");
            throw new InputError(`eval.methods has ${method}, but ${where} was not trained (split and train make it when ${method} is in eval.methods): ` +
                `rerun from the split stage with it (autoact run CONFIG --run-dir ${context.runDir.dir} --from split --set 'eval.methods=[..., ${method}]'), or leave it out`);
        }
    }
}

/**
 * The run directory's adapters are evaluated only as a train stage that finished left them: a
 * train run that failed or was stopped may have trained some sub-agents and not others.
 */
function checkTrainFinished(context: StageContext): void {
    const train = context.runDir.readManifest().stages.train;
    if (train != null && train.status !== "done")
        throw new InputError(`the train stage ${train.status === "running" ? "did not finish" : "failed"} in ${context.runDir.dir}, so its adapters are not all there: ` +
            `run it to the end first (autoact train --run-dir ${context.runDir.dir}), or name the adapters to evaluate with --plan, --tool and --reflect`);
}

/**
 * Evaluation on the configured sets with every configured method (eval-methods.ts): group
 * planning (plan/tool/reflect sub-agents, each a context with its adapter on one model), the
 * zero- and few-shot ReAct and CoT baselines and the ablations. One table per set. Finished
 * batches, keyed by (method, set, chunk), stay until the whole stage succeeds, so an error in
 * a later set never costs the results already made.
 */
export function createEvalStage(adapterOverride?: SubAgentAdapters): StageDefinition {
    const adaptersFor = (context: StageContext) => adapterOverride ?? runDirAdapters(context.runDir);
    const allAdapterFiles = (context: StageContext) => {
        const trained = adaptersFor(context);
        return Object.fromEntries(context.config.eval.methods.map((method) => [method,
            Object.fromEntries(Object.entries(methodAdapters(context.runDir, trained, method)).filter(([, file]) => file != null))]));
    };
    return {
        name: "eval",
        description: "Evaluation: group planning, the ReAct and CoT baselines and the ablations",
        reads: {
            // synth.batch_size and synth.max_context shape eval's batches and episodes too.
            config: [
                "eval", "split", "data.eval", "data.corpus", "description", "task.kind",
                "model.template", "model.context_size", "model.parallel", "synth.batch_size", "synth.max_context"
            ],
            tables: ["tools.arrow"],
            // every method's adapters, by method and agent, hashed by content; the kept
            // trajectories when few-shot exemplars come from them (see seedExemplars)
            files: (context) => ({
                ...Object.fromEntries(Object.entries(allAdapterFiles(context)).flatMap(([method, files]) =>
                    Object.entries(files).map(([agent, file]) => [`${method}.${agent}`, file as string]))),
                ...(fewShot(context) && context.runDir.exists("filtered.arrow") ? { kept: context.runDir.file("filtered.arrow") } : {})
            }),
            data: dataInputs(evalSetInputs, corpusInputs, [seedsInput, fewShot]),
            model: true,
            limit: true
        },
        writes: { files: (context) => context.config.data.eval.map((set) => `eval-${set.name}.arrow`) },
        check(context, selected) {
            // a train stage run by this command first finishes (or stops the run) before eval
            if (selected.includes("train"))
                return;
            // only methods that load trained adapters need the train stage to have finished
            const needsTrained = context.config.eval.methods.some((method) => evalMethodSpecs[method].adapters !== "none");
            if (adapterOverride == null && needsTrained)
                checkTrainFinished(context);
            checkAblationAdapters(context, adaptersFor(context));
        },
        async run(context, inputHash) {
            const trained = adaptersFor(context);
            checkAblationAdapters(context, trained);
            const started = performance.now();
            let generatedTokens = 0;
            const setup = await openTaskSetup(context);
            const outputs: Record<string, number> = {};
            const stats: Record<string, number | string> = {};
            const exemplars = await seedExemplars(context);
            const batches = new StageBatches(context.runDir, "eval", hashValues(inputHash, exemplars), "eval");
            const resumedBefore = batches.completedKeys().size;
            try {
                for (const set of context.config.data.eval) {
                    const examples = await loadEvalExamples(context, set);
                    const chosen = examples.slice(0, limited(set.limit || examples.length, context.limit));
                    const rows = await evaluateSet(context, setup, trained, exemplars, chosen, set.name, batches);
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
            }
            // Only a finished stage lets go of its batches.
            context.runDir.clearParts("eval");
            stats.resumed_batches = resumedBefore;
            stats.generated_tokens = generatedTokens;
            stats.tokens_per_s = generatedTokens / Math.max(1e-3, (performance.now() - started) / 1000);
            stats.finish_by = context.config.split.finish_by;
            stats.methods = context.config.eval.methods.join(",");
            stats.adapters = Object.entries(trained).map(([agent, file]) => `${agent}=${file}`).join(",") || "none";
            return { outputs, stats };
        }
    };
}

interface MethodExemplars {
    /** With AutoAct's Reflect step after Finish, and (plain ReAct) without. */
    react: { reflection: string; plain: string };
    cot: string;
}

/**
 * Few-shot exemplars from the pipeline's own seeds: a seed the run solved right (a kept
 * trajectory of its task) comes with that trajectory.
 */
const fewShot = (context: StageContext) => context.config.eval.methods.some((method) => evalMethodSpecs[method].fewShot);

async function seedExemplars(context: StageContext): Promise<MethodExemplars> {
    if (!fewShot(context))
        return { react: { reflection: "", plain: "" }, cot: "" };
    const seeds = readSeeds(await context.data.requireSeeds(context.config.data.seeds));
    const keptFile = context.runDir.file("filtered.arrow");
    const kept = fs.existsSync(keptFile) ? await readTable(keptFile, "filtered") : [];
    const exemplars: Exemplar[] = seeds.map((seed, i) => ({
        question: seed.question,
        answer: seed.answer,
        steps: kept.find((row) => row.task_id === `seed-${i + 1}` && row.correct)?.steps
    }));
    return {
        react: { reflection: reactExemplars(exemplars), plain: reactExemplars(exemplars, { reflection: false }) },
        cot: chainOfThoughtExemplars(exemplars)
    };
}

async function evaluateSet(
    context: StageContext, setup: TaskSetup, trained: SubAgentAdapters, exemplars: MethodExemplars,
    examples: EvalExample[], setName: string, batches: StageBatches<"eval">
): Promise<EvalRow[]> {
    const settings = context.config.eval;
    const batchSize = context.config.synth.batch_size;
    const done = batches.completedKeys();
    const rows: EvalRow[] = [];
    const chunks = Math.ceil(examples.length / batchSize);
    context.progress.start(`eval ${setName}`, examples.length * settings.methods.length);
    for (const method of settings.methods) {
        const adapters = methodAdapters(context.runDir, trained, method);
        for (let chunk = 0; chunk < chunks; chunk++) {
            const key = `${method}.${setName}.${chunk}`;
            const slice = examples.slice(chunk * batchSize, (chunk + 1) * batchSize);
            if (done.has(key)) {
                rows.push(...await batches.readKey(key));
                context.progress.advance(slice.length);
                continue;
            }
            const batchRows = await Promise.all(slice.map(async (example) => {
                const row = await evaluateOne(context, setup, adapters, exemplars, method, example);
                context.progress.advance(1, row.generated_tokens);
                return row;
            }));
            await batches.writeKey(key, batchRows);
            rows.push(...batchRows);
        }
    }
    context.progress.done();
    return rows;
}

async function evaluateOne(
    context: StageContext, setup: TaskSetup, adapters: SubAgentAdapters, exemplars: MethodExemplars,
    method: EvalMethod, example: EvalExample
): Promise<EvalRow> {
    const { config } = context;
    const settings = config.eval;
    const spec = evalMethodSpecs[method];
    const sampling: EpisodeSampling = {
        temperature: settings.temperature,
        topP: settings.top_p,
        topK: settings.top_k,
        maxTokens: settings.max_tokens,
        seed: deriveSeed(settings.seed, `${method}-${example.id}`)
    };
    const base = { method, task_id: example.id, level: example.level ?? null, question: example.question, gold: example.answer };

    if (spec.policy === "cot") {
        const agent = await context.model.agent("meta");
        const result = await agent.complete(
            chainOfThoughtPrompt({ description: config.description, question: example.question, kind: config.task.kind, exemplars: spec.fewShot ? exemplars.cot : undefined }),
            { ...sampling, maxTokens: 4 * settings.max_tokens }
        );
        const prediction = parseChainOfThoughtAnswer(result.text, { cut: result.stopReason === "maxTokens" || result.stopReason === "contextFull" });
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
    if (spec.policy === "group") {
        const agents = {} as SubAgents;
        for (const agent of subAgentNames)
            agents[agent] = await context.model.agent(agent, adapters[agent] == null ? [] : [{ filePath: adapters[agent]! }]);
        policy = groupPolicy(config, agents, sampling);
    } else {
        policy = new MetaAgentPolicy(await context.model.agent("meta"), sampling);
    }
    // plain ReAct (the baselines) is not told of Reflect; group planning's agents were trained
    // with it, and -reflection keeps their prompt, only ending at the first Finish
    const plain = spec.policy === "react" && !spec.reflection;
    const header = plain ? setup.plainHeader : setup.header;
    const result = await runEpisode({
        header: spec.fewShot ? `${header}\n${plain ? exemplars.react.plain : exemplars.react.reflection}` : header,
        question: example.question,
        policy,
        tools: setup.runner,
        session: new ToolSession({ image: example.image }),
        maxSteps: settings.max_steps,
        maxContext: Math.min(config.synth.max_context, await context.model.contextSize()),
        reserveTokens: 2 * settings.max_tokens,
        reflection: spec.reflection
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
