import path from "node:path";
import { runEpisode, type EpisodeResult } from "../agents/episode.js";
import type { SubAgents } from "../agents/policies.js";
import { subAgentNames } from "../agents/division.js";
import { loadConfig } from "../pipeline/config.js";
import type { StageContext } from "../pipeline/context.js";
import { DataLocator } from "../pipeline/data-locator.js";
import { ModelSession } from "../pipeline/model-session.js";
import { RunDir } from "../pipeline/run-dir.js";
import { groupPolicy } from "../pipeline/stages/eval.js";
import { requireRunAdapters } from "./deploy.js";
import { openTaskSetup } from "../pipeline/task-setup.js";
import { resolveModelSource } from "../llm/model-source.js";
import { ToolSession } from "../tools/index.js";
import { InputError } from "../util/errors.js";
import { createProgress } from "../util/progress.js";
import { deriveSeed } from "../util/random.js";

export interface AskOptions {
    /** The run directory: its config, selected tools, corpus and adapters. */
    runDir: string;
    question: string;
    /** An OpenAI-compatible server with the sub-agents (see `autoact deploy`). Defaults to running the model here. */
    server?: string;
    /** A local GGUF instead of the run's model (local inference). Defaults to the run's model. */
    model?: string;
    /** Seed of the sampled calls. Defaults to the run's eval seed. */
    seed?: number;
    /** Status lines. Defaults to none. */
    log?: (line: string) => void;
}

export interface AskResult extends EpisodeResult {
    /** Why the episode ended, in a sentence naming the limit that ended it. */
    ending: string;
}

/**
 * Answers one question by group planning, as the eval stage does: the plan, tool and reflect
 * sub-agents (the run's adapters), the run's selected tools and corpus, the eval settings;
 * on a server (`--server`, adapters picked per request) or here (`--model`, or the run's model).
 */
export async function askAgents(options: AskOptions): Promise<AskResult> {
    const runDir = new RunDir(options.runDir);
    const configFile = runDir.requireConfig();
    if (options.question.trim() === "")
        throw new InputError("the question is empty");
    if (options.server != null && options.model != null)
        throw new InputError("give --server or --model, not both");
    const config = loadConfig(configFile).config;
    // the run's sub-agents, all three: the base model in their place would not be the run's answer
    const adapters = requireRunAdapters(runDir);
    if (options.server != null) {
        config.model.backend = "openai";
        config.model.endpoints = [options.server];
    } else {
        config.model.backend = "local";
    }
    const source = options.model != null ? path.resolve(options.model) : runDir.readManifest(config.name).model?.path ?? config.model.path;
    // The prompts are formatted here in both cases: the model's vocabulary and template are read.
    const session = new ModelSession(await resolveModelSource(source), config.model);
    const log = options.log ?? (() => {});
    const context: StageContext = {
        config, runDir, limit: null,
        data: new DataLocator({ searchDirs: config.data.search, descriptor: config.data.descriptor }),
        model: session, progress: createProgress({ silent: true }), log
    };
    const setup = await openTaskSetup(context);
    try {
        const agents = {} as SubAgents;
        for (const agent of subAgentNames)
            agents[agent] = await session.agent(agent, [{ filePath: adapters[agent] }]);
        const settings = config.eval;
        const policy = groupPolicy(config, agents, {
            temperature: settings.temperature, topP: settings.top_p, topK: settings.top_k, maxTokens: settings.max_tokens,
            seed: options.seed ?? deriveSeed(settings.seed, `agent-${options.question}`)
        });
        const limits = {
            maxSteps: settings.max_steps,
            maxContext: Math.min(config.synth.max_context, await session.contextSize()),
            reserveTokens: 2 * settings.max_tokens
        };
        const result = await runEpisode({
            header: setup.header, question: options.question, policy, tools: setup.runner, session: new ToolSession({}), ...limits
        });
        return { ...result, ending: describeEnding(result, limits) };
    } finally {
        setup.close();
        await session.dispose();
    }
}

/** One sentence on why an episode ended: the answer it gave, or the limit that stopped it (and which setting sets it). */
export function describeEnding(result: EpisodeResult, limits: { maxSteps: number; maxContext: number; reserveTokens: number }): string {
    const steps = `${result.steps.length} step${result.steps.length === 1 ? "" : "s"}`;
    const answer = result.finalAnswer == null ? "no answer" : "its last Finish's answer, not confirmed by Reflect";
    switch (result.stopReason) {
        case "finished":
            return `answered in ${steps}`;
        case "step_limit":
            return `stopped after ${steps}, the step limit (eval.max_steps): ${answer}`;
        case "context_limit":
            return `stopped after ${steps}: the prompt came within ${limits.reserveTokens} tokens (2 x eval.max_tokens) of the ${limits.maxContext}-token context (model.context_size, synth.max_context): ${answer}`;
        case "invalid":
            return `stopped after ${steps}: no valid action several steps in a row: ${answer}`;
    }
}
