/**
 * The pipeline configuration: every stage's settings with their defaults, grouped as the
 * stages run. A pipeline YAML file holds only what differs from these defaults; an unknown
 * key or a value of the wrong type is an error that names the file, the line and the key.
 */

import { trainConfigChecks, trainConfigCounts, trainConfigDefaults, trainConfigEnums, type TrainConfig } from "../train/options.js";
import { evalMethods, type EvalMethod } from "../data/schemas.js";
import { remoteServerKinds, type RemoteServerKind } from "../llm/remote-backend.js";
import { gpuChoices, type GpuChoice } from "../llm/types.js";
import { promptTemplates, type PromptTemplate } from "../llm/prompt-format.js";

export const stageNames = ["instruct", "select-tools", "synth", "filter", "split", "train", "eval"] as const;
export type StageName = (typeof stageNames)[number];

export type AnswerMetric = "f1" | "em" | "option";
export type DatasetFormat = "hotpotqa" | "scienceqa" | "jsonl";

export interface EvalSetConfig {
    /** Name used in `eval-<name>.arrow` and the report. */
    name: string;
    format: DatasetFormat;
    /** File name, looked up in the data folders (see `data.search`). */
    file: string;
    /** Evaluate only the first N questions; 0 = all. */
    limit: number;
}

export interface PipelineConfig {
    name: string;
    /** What the task is, in words the meta-agent reads when it picks tools and writes tasks. */
    description: string;
    task: {
        /** "qa": free-text answers (EM/F1); "multiple-choice": options with a letter answer. */
        kind: "qa" | "multiple-choice";
        /** The metric the report's main table gives first (filtering's rule is `filter.keep`). */
        metric: AnswerMetric;
    };
    model: {
        /** A GGUF path (relative to this file; a `--set` value to the working directory) or an `hf:` URI; a preset name from models/presets.json also works. */
        path: string;
        gpu: GpuChoice;
        /** 0 = the physical cores the process may use (`defaultThreadCount`). */
        threads: number;
        /** Context size of every sequence. */
        context_size: number;
        /** Parallel sequences used by synthesis and evaluation. */
        parallel: number;
        /** Prompt template: the model's chat template when it has one, else AutoAct's plain one. */
        template: PromptTemplate;
        /**
         * "local": this process runs the model; "openai": OpenAI-compatible servers in
         * `endpoints` run it (llama-server, vLLM, Ollama), `parallel` requests in flight per
         * endpoint, and `path` only gives the vocabulary and chat template (weights not loaded).
         */
        backend: "local" | "openai";
        /** Server base URLs for backend "openai", e.g. [http://127.0.0.1:8080]. */
        endpoints: string[];
        /** What the servers are; "auto" asks them. */
        server: RemoteServerKind;
        /** The `model` field of remote requests; "" = the first model the server lists. */
        served_name: string;
        /** Seconds one remote request may take before it is retried. */
        timeout_s: number;
        /** Retries of a remote request after a 429, a 5xx, a lost connection, a timeout or a malformed reply. */
        retries: number;
    };
    data: {
        /** Folders searched (in order, relative to this file; a `--set` value to the working directory) for data files; --data DIR comes first. */
        search: string[];
        /** Dataset descriptor (datasets/<name>.json) used to download missing files. */
        descriptor: string;
        /** Seed examples ({Question, Answer} list); searched like data files, then datasets/. */
        seeds: string;
        /**
         * Retrieval corpus sources: corpora the descriptor names (HotpotQA: train-paragraphs,
         * wiki-abstracts; ScienceQA: train-lectures), downloaded into the cache, or files of
         * pages ({title, text} JSONL, or HotpotQA files) in the data folders.
         */
        corpus: string[];
        /** A corpus holding the eval questions' own paragraphs is refused unless this is true (closed-book study). */
        allow_eval_overlap: boolean;
        eval: EvalSetConfig[];
    };
    instruct: {
        /** How many tasks to generate (AutoAct: 800). */
        target: number;
        /** New examples asked for per round. */
        per_round: number;
        /** Examples shown per round: seeds first, then already generated ones (AutoAct: 2 seeds and 3 generated). */
        shown: number;
        /** A random temperature is drawn from this range each round. */
        temperature: [number, number];
        max_tokens: number;
        /** "seeds": AutoAct's self-instruct; "grounded": questions written from corpus passages. */
        mode: "seeds" | "grounded";
        /** Passages shown per grounded round. */
        passages: number;
        /** Answers longer than this are dropped (AutoAct HotpotQA: 19, it keeps those shorter than 20); 0 = no limit. */
        max_answer_chars: number;
        /** AutoAct keeps only new answers (multiple choice: the named option's text), a second yes/no too (false); true lets yes/no answers repeat. */
        repeat_yes_no: boolean;
        /** Give up after this many rounds without reaching the target. */
        max_rounds: number;
        seed: number;
    };
    tools: {
        /** Tools the meta-agent may choose from. */
        library: string[];
        /** How many it picks. */
        count: number;
        /** Used (and recorded as such) when the meta-agent's answer is unusable. */
        fallback: string[];
    };
    synth: {
        max_steps: number;
        /** Tokens of context a trajectory may use. */
        max_context: number;
        temperature: number;
        top_p: number;
        top_k: number;
        /** New tokens for one Thought or Action line. */
        max_tokens: number;
        /** Trajectories per resume batch: a killed run continues from the last finished batch. */
        batch_size: number;
        seed: number;
    };
    filter: {
        /** "correct": exact match (or option match); "f1": token F1 at least `min_f1`. */
        keep: "correct" | "f1";
        min_f1: number;
        /** Keep at most this many (AutoAct: 200): the seeds' right ones, then others chosen at random; 0 = all. */
        max: number;
        /** Seed of that choice. */
        seed: number;
    };
    split: {
        /**
         * Who writes Finish's answer: "tool" (the tool agent, as the paper divides the labor)
         * or "plan" (the plan agent writes Finish[answer] whole). Used by division of labor
         * and by group planning alike.
         */
        finish_by: "tool" | "plan";
    };
    /** The trainer's options (src/train/options.ts declares them, their defaults and ranges). */
    train: TrainConfig;
    eval: {
        max_steps: number;
        temperature: number;
        top_p: number;
        top_k: number;
        max_tokens: number;
        /**
         * Methods run on the evaluation sets: group planning, the baselines (zero- and few-shot
         * ReAct and CoT) and the ablations (src/pipeline/eval-methods.ts says what each runs).
         */
        methods: EvalMethod[];
        seed: number;
    };
}

export const defaultConfig: PipelineConfig = {
    name: "custom",
    description: "",
    task: { kind: "qa", metric: "f1" },
    model: {
        path: "default", gpu: "auto", threads: 0, context_size: 4096, parallel: 8, template: "auto",
        backend: "local", endpoints: [], server: "auto", served_name: "", timeout_s: 300, retries: 4
    },
    data: { search: [], descriptor: "", seeds: "", corpus: [], allow_eval_overlap: false, eval: [] },
    instruct: {
        target: 800,
        per_round: 10,
        shown: 5,
        temperature: [0.1, 0.5],
        max_tokens: 768,
        mode: "seeds",
        passages: 2,
        max_answer_chars: 19,
        repeat_yes_no: false,
        max_rounds: 400,
        seed: 1
    },
    tools: {
        library: ["Search", "Retrieve", "Lookup", "Image2Text", "Calculator", "Code"],
        count: 3,
        fallback: ["Search", "Retrieve", "Lookup"]
    },
    synth: {
        max_steps: 15,
        max_context: 4096,
        temperature: 0.9,
        top_p: 1,
        top_k: 0,
        max_tokens: 128,
        batch_size: 16,
        seed: 1
    },
    filter: { keep: "correct", min_f1: 1, max: 200, seed: 1 },
    split: { finish_by: "tool" },
    train: trainConfigDefaults(),
    eval: {
        max_steps: 10,
        temperature: 0.5,
        top_p: 0.75,
        top_k: 40,
        max_tokens: 128,
        methods: ["group", "react", "cot"],
        seed: 1
    }
};

/** Allowed values of enumerated keys (dotted paths; `[]` = every element of an array). */
export const configEnums: Record<string, readonly (string | number)[]> = {
    "task.kind": ["qa", "multiple-choice"],
    "task.metric": ["f1", "em", "option"],
    "model.gpu": gpuChoices,
    "model.template": promptTemplates,
    "model.backend": ["local", "openai"],
    "model.server": remoteServerKinds,
    "data.eval[].format": ["hotpotqa", "scienceqa", "jsonl"],
    "instruct.mode": ["seeds", "grounded"],
    "filter.keep": ["correct", "f1"],
    "split.finish_by": ["tool", "plan"],
    ...trainConfigEnums("train"),
    "eval.methods[]": evalMethods
};

/**
 * Further checks of single keys (ranges): the problem as a phrase after the key, or null.
 * The trainer's come from its options table.
 */
export const configChecks: Record<string, (value: unknown) => string | null> = {
    ...trainConfigChecks("train"),
    "model.path": (value) => (typeof value === "string" && value.trim() !== "" ? null : "must name a GGUF file, an hf: URI or a preset (models/presets.json), got an empty value"),
    "model.timeout_s": (value) => (typeof value === "number" && value > 0 ? null : `must be more than 0 seconds, got ${String(value)}`),
    "instruct.temperature[]": range({ min: 0 }),
    "synth.temperature": range({ min: 0 }),
    "synth.top_p": range({ min: 0, above: true, max: 1 }),
    "filter.min_f1": range({ min: 0, max: 1 }),
    "eval.temperature": range({ min: 0 }),
    "eval.top_p": range({ min: 0, above: true, max: 1 })
};

/** A range check of a number: `min`/`max` inclusive unless `above` (strictly greater than min). */
function range({ min, max, above = false }: { min?: number; max?: number; above?: boolean }): (value: unknown) => string | null {
    const limits = `${min != null ? `${above ? "greater than" : "at least"} ${min}` : ""}${min != null && max != null ? " and " : ""}${max != null ? `at most ${max}` : ""}`;
    return (value) => {
        const number = value as number;
        const outside = (min != null && (above ? number <= min : number < min)) || (max != null && number > max);
        return outside ? `must be ${limits}, got ${number}` : null;
    };
}

/** Element templates for arrays of objects, used to check each element's keys and types. */
export const configArrayElements: Record<string, unknown> = {
    "data.eval": { name: "", format: "jsonl", file: "", limit: 0 } satisfies EvalSetConfig
};

/** Text keys that also take a count, which YAML may write as a number: taken as its text. */
export const configCountsAsText: readonly string[] = trainConfigCounts("train");

/** Numeric keys that must be whole numbers, and their minimum. */
export const configIntegers: Record<string, number> = {
    "model.threads": 0,
    "model.context_size": 64,
    "model.parallel": 1,
    "model.retries": 0,
    "data.eval[].limit": 0,
    "instruct.target": 0,
    "instruct.per_round": 1,
    "instruct.shown": 0,
    "instruct.max_tokens": 1,
    "instruct.passages": 1,
    "instruct.max_answer_chars": 0,
    "instruct.max_rounds": 1,
    "instruct.seed": 0,
    "tools.count": 1,
    "synth.max_steps": 1,
    "synth.max_context": 64,
    "synth.top_k": 0,
    "synth.max_tokens": 1,
    "synth.batch_size": 1,
    "synth.seed": 0,
    "filter.max": 0,
    "filter.seed": 0,
    "eval.max_steps": 1,
    "eval.top_k": 0,
    "eval.max_tokens": 1,
    "eval.seed": 0
};

/** Keys that would reach an object's prototype: refused wherever they appear. */
export const forbiddenConfigKeys: readonly string[] = ["__proto__", "constructor", "prototype"];
