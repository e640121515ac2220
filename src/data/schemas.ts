import { Schema } from "apache-arrow";
import {
    arrowFields, bool, float64, int32, int64, list, nullable, oneOf, struct, utf8,
    type Column, type RowOf, type CellOf
} from "./columns.js";

/**
 * Every table autoact writes, declared once. The row types below are derived from
 * these declarations; `writeTable` validates against them and stores the table name
 * and version in the Arrow schema metadata, so `readTable` and `autoact inspect`
 * know what a file holds.
 *
 * Conventions: ids and free text are utf8; counts are int32; byte sizes and parameter
 * counts are int64 (read back as `number`); durations and scores are float64.
 * Columns that can be missing are nullable; lists are never null, only empty.
 */
export interface TableSchema<N extends string = string, F extends Record<string, Column> = Record<string, Column>> {
    readonly name: N;
    /** Bumped when a column changes; readers refuse files newer than they know. */
    readonly version: number;
    readonly description: string;
    readonly columns: F;
}

function defineTable<const N extends string, F extends Record<string, Column>>(
    name: N, version: number, description: string, columns: F
): TableSchema<N, F> {
    return { name, version, description, columns };
}

/** Schema metadata keys (Arrow custom metadata; pyarrow shows them as `schema.metadata`). */
export const SCHEMA_NAME_KEY = "autoact.schema";
export const SCHEMA_VERSION_KEY = "autoact.schema_version";

export const taskSources = ["seed", "generated", "dataset"] as const;
export const stopReasons = ["finished", "step_limit", "context_limit", "invalid"] as const;
export const agentNames = ["plan", "tool", "reflect"] as const;
/**
 * Evaluation methods (the paper's comparison): group planning, the baselines and the
 * ablations. What each one runs: src/pipeline/eval-methods.ts.
 */
export const evalMethods = [
    "group", "react", "cot", "react-fewshot", "cot-fewshot",
    "ablate-finetune", "ablate-reflection", "ablate-multi", "ablate-filtering"
] as const;

/** One ReAct step. Empty strings (not nulls) where a step has no thought/argument/observation. */
export const stepColumns = {
    index: int32(),
    thought: utf8(),
    action: utf8(),
    argument: utf8(),
    observation: utf8()
};
const steps = list(struct(stepColumns));

const passage = struct({ title: utf8(), text: utf8() });

export const tasksSchema = defineTable("tasks", 1, "Self-instructed, seed and dataset tasks", {
    id: utf8(),
    question: utf8(),
    answer: utf8(),
    source: oneOf(taskSources),
    /** Self-instruct round that produced the task (0 for seeds and dataset tasks). */
    round: int32(),
    /** Multiple-choice options (ScienceQA); null for open questions. */
    choices: nullable(list(utf8())),
    /** HotpotQA level or ScienceQA grade. */
    level: nullable(utf8()),
    /** Source passages of the corpus-grounded mode; empty otherwise. */
    passages: list(passage),
    /** Anything else, as a JSON string. */
    meta: nullable(utf8())
});

export const toolsSchema = defineTable("tools", 1, "The meta-agent's tool choice: one row per library tool", {
    name: utf8(),
    selected: bool(),
    /** Position in the meta-agent's answer; null when not selected. */
    rank: nullable(int32()),
    reason: utf8(),
    /** True when the choice came from the deterministic fallback, not the model. */
    fallback: bool(),
    /** The meta-agent's raw output (same on every row). */
    raw: utf8()
});

export const trajectoryColumns = {
    /** Trajectory id, referenced by samples.trajectory_id. */
    id: utf8(),
    task_id: utf8(),
    question: utf8(),
    gold_answer: utf8(),
    steps,
    final_answer: nullable(utf8()),
    stop_reason: oneOf(stopReasons),
    prompt_tokens: int32(),
    generated_tokens: int32(),
    time_ms: float64(),
    /** The resume batch the row came from. */
    batch: int32()
};

export const trajectoriesSchema = defineTable("trajectories", 1, "Zero-shot ReAct trajectories", trajectoryColumns);

export const filteredSchema = defineTable("filtered", 1, "Trajectories kept by the filter, with their scores", {
    ...trajectoryColumns,
    em: float64(),
    f1: float64(),
    correct: bool()
});

export const samplesSchema = defineTable("samples", 1, "Sub-agent training samples (division of labor)", {
    id: utf8(),
    agent: oneOf(agentNames),
    trajectory_id: utf8(),
    step: int32(),
    /** What the output is: thought | action | argument | reflection | verdict ... */
    kind: utf8(),
    /** The prompt text the formatter builds (before the chat template). */
    input: utf8(),
    /** The response the agent is trained to produce. */
    output: utf8()
});

export const evalSchema = defineTable("eval", 1, "Evaluation results: one row per method and question", {
    method: oneOf(evalMethods),
    task_id: utf8(),
    level: nullable(utf8()),
    question: utf8(),
    gold: utf8(),
    prediction: nullable(utf8()),
    em: float64(),
    f1: float64(),
    correct: bool(),
    steps: int32(),
    invalid_actions: int32(),
    stop_reason: oneOf(stopReasons),
    prompt_tokens: int32(),
    generated_tokens: int32(),
    time_ms: float64(),
    /** The steps taken; null for chain-of-thought. */
    trajectory: nullable(steps)
});

export const trainingCurveSchema = defineTable("training_curve", 1, "LoRA training progress, one row per logged step", {
    agent: utf8(),
    step: int32(),
    epoch: float64(),
    loss: float64(),
    eval_loss: nullable(float64()),
    lr: float64(),
    tokens_per_s: float64(),
    elapsed_s: float64(),
    peak_rss_bytes: int64(),
    /** Null without a GPU. */
    peak_vram_bytes: nullable(int64())
});

export const benchResultsSchema = defineTable("bench_results", 1, "Benchmark measurements with the machine fingerprint flattened", {
    /** infer | train */
    kind: utf8(),
    /** Who measured: autoact | llama-bench | autoact-train | pytorch. */
    engine: utf8(),
    /** Short machine label, e.g. "AMD EPYC 2c" or "NVIDIA H200". */
    machine: utf8(),
    cpu: utf8(),
    cores: int32(),
    threads: int32(),
    ram_bytes: int64(),
    gpu: nullable(utf8()),
    vram_bytes: nullable(int64()),
    driver: nullable(utf8()),
    /** cpu | cuda | metal | vulkan */
    backend: utf8(),
    /** Build type / origin, e.g. "prebuilt" or "source Release". */
    build: utf8(),
    node_llama_cpp_version: utf8(),
    llama_cpp_version: utf8(),
    model_file: utf8(),
    model_sha256: utf8(),
    /** Weight type, e.g. F16, Q8_0. */
    model_type: utf8(),
    params: int64(),
    /** e.g. "pp512", "tg128", "tg128@8", "train". */
    test: utf8(),
    pp: nullable(int32()),
    tg: nullable(int32()),
    parallel: int32(),
    /** Number of LoRA adapters loaded (0, 1, 3). */
    lora_adapters: int32(),
    /** Adapter files or contexts, free text; null without adapters. */
    lora: nullable(utf8()),
    reps: int32(),
    mean: float64(),
    stddev: float64(),
    /** e.g. "tokens/s". */
    unit: utf8(),
    /** autoact / llama-bench for the same test; null when not compared. */
    ratio_llama_bench: nullable(float64()),
    /** Training (the autoact-train row): its tokens/s / llama-bench pp<ctx> of the same file; null otherwise. */
    ratio_train_to_pp: nullable(float64()),
    /** Training (the autoact-train row): its tokens/s / the PyTorch reference's; null otherwise. */
    ratio_torch: nullable(float64()),
    /** Peak resident memory of the measuring process; null when unknown. */
    peak_rss_bytes: nullable(int64()),
    /** Peak GPU memory of the measuring process; null without a GPU. */
    peak_vram_bytes: nullable(int64()),
    /** 1-minute load average when the run started (other work skews timings). */
    load_avg: float64(),
    /** ISO 8601. */
    timestamp: utf8(),
    command: utf8()
});

/** Every table, by name. */
export const tableSchemas = {
    tasks: tasksSchema,
    tools: toolsSchema,
    trajectories: trajectoriesSchema,
    filtered: filteredSchema,
    samples: samplesSchema,
    eval: evalSchema,
    training_curve: trainingCurveSchema,
    bench_results: benchResultsSchema
} as const;

export type TableName = keyof typeof tableSchemas;
export const tableNames = Object.keys(tableSchemas) as TableName[];
export type RowFor<N extends TableName> = RowOf<(typeof tableSchemas)[N]["columns"]>;

export type TaskRow = RowFor<"tasks">;
export type ToolRow = RowFor<"tools">;
export type TrajectoryRow = RowFor<"trajectories">;
export type FilteredRow = RowFor<"filtered">;
export type SampleRow = RowFor<"samples">;
export type EvalRow = RowFor<"eval">;
export type TrainingCurveRow = RowFor<"training_curve">;
export type BenchResultRow = RowFor<"bench_results">;
export type TrajectoryStep = RowOf<typeof stepColumns>;
export type TaskPassage = CellOf<typeof passage>;
export type TaskSource = (typeof taskSources)[number];
export type StopReason = (typeof stopReasons)[number];
export type AgentName = (typeof agentNames)[number];
export type EvalMethod = (typeof evalMethods)[number];

export function isTableName(name: string): name is TableName {
    return Object.hasOwn(tableSchemas, name);
}

/** The Arrow schema of a table, with its name and version in the metadata. */
export function arrowSchemaFor(table: TableSchema): Schema {
    return new Schema(arrowFields(table.columns), new Map([
        [SCHEMA_NAME_KEY, table.name],
        [SCHEMA_VERSION_KEY, String(table.version)]
    ]));
}
