/**
 * The trainer's options, declared once. Each row gives the option's name in the library
 * (`TrainHyperParams`), its flag on `autoact train`, its key under `train:` in a pipeline
 * config and its flag on autoact-train, with its type, default, range and help. The yargs
 * options, the config schema (defaults, validation) and the trainer's argv are derived from
 * this table: a new row appears in all of them.
 *
 * The defaults are the AutoAct paper's fine-tuning settings (rank 8, alpha 16, dropout 0.05,
 * q and v projections, 5 epochs, lr 1e-4 cosine with 3% warm-up, effective batch 16).
 */
import { InputError } from "../util/errors.js";

/** Modules a LoRA adapter can target, as autoact-train names them. */
export const targetModules = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"] as const;
export type TargetModule = (typeof targetModules)[number];

export const learningRateSchedules = ["constant", "linear", "cosine"] as const;
/** A machine-dependent switch: auto = on with a GPU, off on the CPU. */
export const autoSwitchModes = ["auto", "on", "off"] as const;
export const mixedPrecisionModes = autoSwitchModes;

interface TrainOptionBase {
    /** Name in TrainHyperParams (camelCase). */
    key: string;
    /** Flag of `autoact train`, without the dashes. */
    cli: string;
    /** Key under `train:` in a pipeline config. */
    config: string;
    /** autoact-train's flag. */
    flag: string;
    help: string;
    /** Part of the adapter's shape: an adapter trained further (adapterIn) brings its own value. */
    fromAdapter?: true;
}

interface NumberOption extends TrainOptionBase {
    kind: "int" | "float";
    default: number;
    min: number;
    max: number;
}

interface ChoiceOption extends TrainOptionBase {
    kind: "choice";
    default: string;
    choices: readonly string[];
    /** Also a count: a whole number in this range, written as a string ("12") like the choices. */
    count?: { min: number; max: number };
}

interface ListOption extends TrainOptionBase {
    kind: "list";
    default: readonly string[];
    choices: readonly string[];
}

export type TrainOptionSpec = NumberOption | ChoiceOption | ListOption;

const MAX_INT = 2 ** 30;

export const trainOptions = [
    // adapter
    { key: "rank", cli: "rank", config: "rank", flag: "--rank", kind: "int", default: 8, min: 1, max: 4096, fromAdapter: true, help: "LoRA rank" },
    { key: "alpha", cli: "alpha", config: "alpha", flag: "--alpha", kind: "float", default: 16, min: 1e-6, max: 1e6, fromAdapter: true, help: "LoRA alpha (the update is scaled by alpha/rank)" },
    { key: "loraDropout", cli: "lora-dropout", config: "lora_dropout", flag: "--lora-dropout", kind: "float", default: 0.05, min: 0, max: 0.9, help: "Dropout on the LoRA branch's input" },
    { key: "targets", cli: "targets", config: "targets", flag: "--targets", kind: "list", default: ["attn_q", "attn_v"], choices: targetModules, fromAdapter: true, help: "Target modules" },
    // optimizer (AdamW) and schedule
    { key: "lr", cli: "lr", config: "lr", flag: "--lr", kind: "float", default: 1e-4, min: 0, max: 1, help: "Peak learning rate" },
    { key: "schedule", cli: "schedule", config: "schedule", flag: "--schedule", kind: "choice", default: "cosine", choices: learningRateSchedules, help: "Learning-rate schedule after the warm-up" },
    { key: "warmup", cli: "warmup", config: "warmup", flag: "--warmup-ratio", kind: "float", default: 0.03, min: 0, max: 1, help: "Warm-up, linear from 0, as a fraction of the total steps" },
    { key: "weightDecay", cli: "weight-decay", config: "weight_decay", flag: "--weight-decay", kind: "float", default: 0, min: 0, max: 1, help: "AdamW decoupled weight decay" },
    { key: "gradClip", cli: "grad-clip", config: "grad_clip", flag: "--grad-clip", kind: "float", default: 1, min: 0, max: 1e6, help: "Max global gradient norm (0 = off)" },
    // batches
    { key: "ctx", cli: "ctx", config: "context", flag: "--ctx", kind: "int", default: 1024, min: 16, max: 2 ** 20, help: "Context length (the paper's: 4096, memory allowing): a longer sample loses its oldest steps after the task and question, else prompt tokens on the left, its response kept whole (one whose response alone is longer is left out, counted)" },
    { key: "batch", cli: "batch", config: "batch", flag: "--batch", kind: "int", default: 16, min: 1, max: 2 ** 20, help: "Samples per micro-batch group; a step trains batch x grad-accum samples" },
    { key: "gradAccum", cli: "grad-accum", config: "grad_accum", flag: "--grad-accum", kind: "int", default: 1, min: 1, max: 2 ** 20, help: "Gradient accumulation: groups of --batch samples per optimizer step" },
    { key: "batchTokens", cli: "batch-tokens", config: "batch_tokens", flag: "--batch-tokens", kind: "int", default: 0, min: 0, max: 2 ** 24, help: "Token budget of one packed micro-batch (a step's samples are packed side by side into blocks of up to the context length, as many blocks as fit; attention stays within a block, so its memory grows with the budget times the context; 0 = one block)" },
    { key: "epochs", cli: "epochs", config: "epochs", flag: "--epochs", kind: "int", default: 5, min: 1, max: 2 ** 20, help: "Epochs, when --steps is 0" },
    { key: "steps", cli: "steps", config: "steps", flag: "--steps", kind: "int", default: 0, min: 0, max: MAX_INT, help: "Optimizer steps (0 = as many as the epochs take)" },
    // evaluation and safety
    { key: "evalFraction", cli: "eval-fraction", config: "eval_fraction", flag: "--eval-fraction", kind: "float", default: 0, min: 0, max: 0.9, help: "Share of samples held out for the eval loss" },
    { key: "evalEvery", cli: "eval-every", config: "eval_every", flag: "--eval-every", kind: "int", default: 0, min: 0, max: MAX_INT, help: "Steps between eval losses (0 = only at the end)" },
    { key: "checkpointEvery", cli: "checkpoint-every", config: "checkpoint_every", flag: "--checkpoint-every", kind: "int", default: 25, min: 0, max: MAX_INT, help: "Steps between checkpoints, so that a killed run resumes (0 = only on interrupt and at the end)" },
    { key: "seed", cli: "seed", config: "seed", flag: "--seed", kind: "int", default: 42, min: 0, max: Number.MAX_SAFE_INTEGER, help: "Seed of the initialization, the split and the data order" },
    // machine
    { key: "mixedPrecision", cli: "mixed-precision", config: "mixed_precision", flag: "--mixed-precision", kind: "choice", default: "auto", choices: mixedPrecisionModes, help: "Frozen-weight matmuls in 16 bits: the backward pass's (F16 on a GPU, BF16 on a CPU that multiplies BF16 natively, AVX512-BF16, else F16) and, with on and such a CPU, the forward pass's through F32/F16 weights (the loss then within ~2e-2 of the model's); auto = the backward pass's where faster (a GPU or such a CPU)" },
    { key: "recompute", cli: "recompute", config: "recompute", flag: "--recompute", kind: "choice", default: "auto", choices: autoSwitchModes, count: { min: 1, max: 2 ** 20 }, help: "Recompute each layer's activations in the backward pass instead of keeping them all: memory for one layer's, about one more forward pass of time; N: only the first N layers' (N of the L layers' share of that time; all from N = L) (auto = on for a GPU; on a CPU off, unless the activations would not fit in the memory available: then the first layers' as many as that needs, else all)" }
] as const satisfies readonly TrainOptionSpec[];

type Row = (typeof trainOptions)[number];
type ValueOf<R> =
    R extends { kind: "list"; choices: readonly (infer C)[] } ? C[]
        : R extends { kind: "choice"; choices: readonly (infer C)[]; count: object } ? C | `${number}`
        : R extends { kind: "choice"; choices: readonly (infer C)[] } ? C
            : number;

/** The trainer's hyper-parameters by library name; every one optional (the table's default fills it). */
export type TrainHyperParams = { [R in Row as R["key"]]?: ValueOf<R> };
/** The same, every one set. */
export type ResolvedTrainHyperParams = Required<TrainHyperParams>;
/** The `train:` section of a pipeline config. */
export type TrainConfig = { [R in Row as R["config"]]: ValueOf<R> };

const rows: readonly TrainOptionSpec[] = trainOptions;

function cloneDefault(option: TrainOptionSpec): unknown {
    return option.kind === "list" ? [...option.default] : option.default;
}

/** The problem with a value of one option (a phrase after its name), or null when it is valid. */
export function trainOptionProblem(option: TrainOptionSpec, value: unknown): string | null {
    switch (option.kind) {
        case "int":
        case "float": {
            if (typeof value !== "number" || !Number.isFinite(value))
                return `must be a number, got ${describe(value)}`;
            const whole = option.kind === "int";
            if ((whole && !Number.isInteger(value)) || value < option.min || value > option.max)
                return `must be ${whole ? "a whole number" : "a number"} from ${option.min} to ${option.max}, got ${value}`;
            return null;
        }
        case "choice": {
            if (typeof value === "string" && (option.choices.includes(value) || isCount(option, value)))
                return null;
            const count = option.count != null ? ` or a whole number from ${option.count.min} to ${option.count.max}` : "";
            return `must be one of ${option.choices.join(" | ")}${count}, got ${describe(value)}`;
        }
        case "list": {
            if (!Array.isArray(value))
                return `must be a list, got ${describe(value)}`;
            if (value.length === 0)
                return `must name at least one of ${option.choices.join(", ")}`;
            const unknown = value.find((v) => typeof v !== "string" || !option.choices.includes(v));
            if (unknown !== undefined)
                return `has ${describe(unknown)}: expected any of ${option.choices.join(", ")}`;
            const twice = value.find((v, i) => value.indexOf(v) !== i);
            return twice === undefined ? null : `has ${describe(twice)} twice`;
        }
    }
}

/** Whether `value` is a count the option takes beside its choices ("12"). */
function isCount(option: ChoiceOption, value: string): boolean {
    return option.count != null && /^[0-9]+$/.test(value) && Number(value) >= option.count.min && Number(value) <= option.count.max;
}

function describe(value: unknown): string {
    if (value === null || value === undefined)
        return String(value);
    if (Array.isArray(value))
        return "a list";
    return typeof value === "string" ? `"${value}"` : String(value);
}

/** Every option set: the given values, the table's defaults for the rest. Throws nothing: check first. */
export function resolveTrainOptions(values: TrainHyperParams): ResolvedTrainHyperParams {
    const out: Record<string, unknown> = {};
    for (const option of rows) {
        const given = (values as Record<string, unknown>)[option.key];
        out[option.key] = given === undefined ? cloneDefault(option) : given;
    }
    return out as ResolvedTrainHyperParams;
}

/** Problems of the given values, one line each, naming each option as `name(option)` says. */
export function checkTrainOptions(values: TrainHyperParams, name: (option: TrainOptionSpec) => string): string[] {
    const problems: string[] = [];
    for (const option of rows) {
        const value = (values as Record<string, unknown>)[option.key];
        if (value === undefined)
            continue;
        const problem = trainOptionProblem(option, value);
        if (problem != null)
            problems.push(`${name(option)} ${problem}`);
    }
    return problems;
}

/** Throws an InputError listing every problem of the given values (named by library name unless `name` says otherwise). */
export function assertTrainOptions(values: TrainHyperParams, name: (option: TrainOptionSpec) => string = (option) => option.key): void {
    const problems = checkTrainOptions(values, name);
    if (problems.length > 0)
        throw new InputError(problems.join("; "));
}

/**
 * autoact-train's flags for every option (given or default). Training an adapter further
 * (`adapterIn`), its shape (rank, alpha, targets) is its own: those flags only where given, for
 * the trainer to refuse any that differ.
 */
export function trainOptionArgs(values: TrainHyperParams, adapterIn?: string): string[] {
    const resolved = resolveTrainOptions(values) as Record<string, unknown>;
    return rows.flatMap((option) => {
        if (adapterIn != null && option.fromAdapter && (values as Record<string, unknown>)[option.key] === undefined)
            return [];
        const value = resolved[option.key];
        return [option.flag, Array.isArray(value) ? value.join(",") : String(value)];
    });
}

// ---- the pipeline config's `train:` section ----

/** The `train:` defaults. */
export function trainConfigDefaults(): TrainConfig {
    return Object.fromEntries(rows.map((option) => [option.config, cloneDefault(option)])) as TrainConfig;
}

/** Library options from a config's `train:` section. */
export function trainOptionsFromConfig(config: TrainConfig): ResolvedTrainHyperParams {
    const record = config as Record<string, unknown>;
    return Object.fromEntries(rows.map((option) => [option.key, record[option.config]])) as ResolvedTrainHyperParams;
}

/** Allowed values of the enumerated `train.*` keys, as the config schema lists them. */
export function trainConfigEnums(prefix: string): Record<string, readonly string[]> {
    const out: Record<string, readonly string[]> = {};
    for (const option of rows) {
        if (option.kind === "choice" && option.count == null) // with counts: trainConfigChecks
            out[`${prefix}.${option.config}`] = option.choices;
        else if (option.kind === "list")
            out[`${prefix}.${option.config}[]`] = option.choices;
    }
    return out;
}

/** The `train.*` keys whose text may be a count, which a config may write as a number ("recompute: 12"). */
export function trainConfigCounts(prefix: string): string[] {
    return rows.filter((option) => option.kind === "choice" && option.count != null).map((option) => `${prefix}.${option.config}`);
}

/** Range and type checks of the `train.*` keys, as the config schema runs them. */
export function trainConfigChecks(prefix: string): Record<string, (value: unknown) => string | null> {
    return Object.fromEntries(rows.map((option) => [`${prefix}.${option.config}`, (value: unknown) => trainOptionProblem(option, value)]));
}

// ---- the command line of `autoact train` ----

export interface TrainCliOption {
    type: "number" | "string";
    /** Absent for the adapter's shape: unset unless given, as an --adapter-in brings its own. */
    default?: number | string;
    /** The default as --help shows it, where yargs does not set it. */
    defaultDescription?: string;
    describe: string;
}

/** yargs options of `autoact train`, by flag name. */
export function trainCliOptions(): Record<string, TrainCliOption> {
    return Object.fromEntries(rows.map((option): [string, TrainCliOption] => {
        const range = option.kind === "choice" ? `: ${option.choices.join(" | ")}${option.count != null ? ` | N (${option.count.min} to ${option.count.max})` : ""}`
            : option.kind === "list" ? `, comma-separated: ${option.choices.join(",")}`
                : option.max <= 4096 ? ` (${option.min} to ${option.max})` : "";
        const value = option.kind === "list" ? option.default.join(",") : option.default;
        return [option.cli, {
            type: option.kind === "int" || option.kind === "float" ? "number" : "string",
            ...(option.fromAdapter ? { defaultDescription: `${value}; an --adapter-in's own` } : { default: value }),
            describe: `${option.help}${range}`
        }];
    }));
}

/** Library options from parsed `autoact train` flags: lists split at commas; problems name the flag. */
export function trainOptionsFromCli(args: Record<string, unknown>): { values: TrainHyperParams; problems: string[] } {
    const values: Record<string, unknown> = {};
    for (const option of rows) {
        let value = args[option.cli];
        if (value === undefined)
            continue;
        if (option.kind === "list" && typeof value === "string")
            value = value.split(",").map((s) => s.trim()).filter((s) => s !== "");
        values[option.key] = value;
    }
    const problems = checkTrainOptions(values as TrainHyperParams, (option) => `--${option.cli}`);
    return { values: values as TrainHyperParams, problems };
}

/** The option of a library name. */
export function trainOption(key: keyof TrainHyperParams): TrainOptionSpec {
    return rows.find((option) => option.key === key)!;
}
