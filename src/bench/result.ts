import { InputError } from "../util/errors.js";
import { gpuChoices } from "../llm/types.js";
import { mean, stddev } from "./stats.js";

/**
 * The result of one benchmark run: one JSON file under bench/results/ (and an Arrow table
 * of flat rows beside it). `validateBenchResult` is the schema: the report and the tests
 * read files only through it.
 */
export const BENCH_RESULT_SCHEMA = "autoact.bench/1";

export const benchKinds = ["infer", "train"] as const;
export type BenchKind = (typeof benchKinds)[number];

/** Who produced a measurement. */
export const benchEngines = ["autoact", "llama-bench", "autoact-train", "pytorch"] as const;
export type BenchEngine = (typeof benchEngines)[number];

export interface ModelFingerprint {
    /** Path as given (absolute). */
    file: string;
    /** File name only: what the report shows. */
    name: string;
    sha256: string;
    bytes: number;
    arch: string;
    /** Weight type (GGUF general.file_type), e.g. "MOSTLY_Q8_0". */
    type: string;
    params: number;
}

export interface Fingerprint {
    /** Short machine label for tables and file names, e.g. "AMD EPYC 2c" or "NVIDIA H200". */
    machine: string;
    hostname: string;
    os: string;
    cpu: string;
    /** Physical cores. */
    cores: number;
    /** Logical CPUs. */
    logical_cpus: number;
    /** Threads the benchmark used. */
    threads: number;
    ram_bytes: number;
    gpu: string | null;
    vram_bytes: number | null;
    driver: string | null;
    /** cpu | cuda | metal | vulkan */
    backend: string;
    /** Where the measured binary came from, e.g. "node-llama-cpp prebuilt" or "source Release (autoact native build)". */
    build: string;
    node_version: string;
    node_llama_cpp_version: string;
    /** Tag of the llama.cpp source node-llama-cpp ships (llama/llama.cpp.info.json). */
    llama_cpp_version: string;
    /** Commit llama-bench reports for its build, when it ran. */
    llama_cpp_commit: string | null;
    model: ModelFingerprint;
    /** autoact's package version (absent from results written before it was recorded, as the two below). */
    autoact_version?: string;
    /** HEAD of the checkout that ran, and whether its tracked files had changes; null outside a git checkout. */
    git_commit?: string | null;
    git_dirty?: boolean | null;
    /** The native build's source stamp (llama.cpp tag, the patches applied and their sha256); null where nothing was built. */
    native_build?: { tag: string; patches: { name: string; sha256: string }[] } | null;
}

export interface BenchTest {
    /** e.g. "pp512", "tg128", "tg128@8", "tg128+lora3", "train". */
    name: string;
    engine: BenchEngine;
    /** Prompt tokens per repetition (0 when the test generates only). */
    pp: number;
    /** Generated tokens per sequence and repetition (0 for prompt tests). */
    tg: number;
    /** Sequences decoding together in one batch. */
    parallel: number;
    /** LoRA adapters: 0, or the number of sub-agent contexts each with its own adapter. */
    lora_adapters: number;
    reps: number;
    /** Tokens/s of each repetition (training: of each step after the first). */
    samples: number[];
    mean: number;
    stddev: number;
    unit: "tokens/s";
    /**
     * Peak resident memory of the measuring process (getrusage maxRSS), when known. autoact's
     * inference tests: the Node process's peak so far, so it includes the model load and every
     * earlier test of the run; autoact-train and PyTorch: the whole training process's peak.
     */
    peak_rss_bytes: number | null;
    /**
     * Peak GPU memory, when known. autoact and autoact-train: nvidia-smi's per-process figure
     * (CUDA context and allocator pools included); PyTorch: torch.cuda.max_memory_allocated
     * (its allocator's tensors only, less than nvidia-smi shows for the same process).
     */
    peak_vram_bytes: number | null;
}

export interface BenchResult {
    schema: typeof BENCH_RESULT_SCHEMA;
    kind: BenchKind;
    /** ISO 8601, when the run started. */
    timestamp: string;
    /** The command line that produced it. */
    command: string;
    /** 1-minute load average before and after the run (others' work on the machine skews timings). */
    load_avg: { before: number; after: number };
    fingerprint: Fingerprint;
    /** The run's options after defaults (threads, sizes, adapters, trainer flags...). */
    settings: Record<string, unknown>;
    tests: BenchTest[];
    /**
     * The same tests run by llama.cpp's own llama-bench, when compared. `patches`: the project's
     * patches (native/patches) its build applied to llama.cpp; null for a binary given by path;
     * absent from older results.
     */
    llama_bench: { binary: string; command: string; tests: BenchTest[]; patches?: string[] | null } | null;
    /** autoact / llama-bench prompt tokens/s (pp test); null when not compared. */
    ratio_pp: number | null;
    /** autoact / llama-bench generation tokens/s (tg test, one sequence); null when not compared. */
    ratio_tg: number | null;
    /** Training runs: the PyTorch LoRA reference of the same shape (bench/reference/torch_lora.py), when compared. */
    torch?: TorchReference | null;
    /** Training runs: autoact-train tokens/s / llama-bench pp<ctx> of the same file (the forward pass alone). */
    ratio_train_to_pp?: number | null;
    /** Training runs: autoact-train tokens/s / the PyTorch reference's; null when not compared. */
    ratio_torch?: number | null;
    notes: string[];
}

export interface TorchReference {
    /** The command line that ran torch_lora.py. */
    command: string;
    /** torch.__version__. */
    version: string;
    /** "plain" (the script's LoRA module) or "peft <version>". */
    lora: string;
    device: string;
    /** Frozen weights and autocast type: f32, bf16. */
    dtype: string;
    /** Trainable adapter parameters (equal to autoact-train's for the same shape, rank and targets). */
    lora_params: number;
    tests: BenchTest[];
}

type Check = (value: unknown, at: string) => string | null;

const isNumber: Check = (v, at) => (typeof v === "number" && Number.isFinite(v) ? null : `${at}: expected a finite number`);
const isNonNegative: Check = (v, at) => isNumber(v, at) ?? ((v as number) >= 0 ? null : `${at}: expected >= 0`);
const isInteger: Check = (v, at) => (Number.isInteger(v) && (v as number) >= 0 ? null : `${at}: expected a non-negative integer`);
const isString: Check = (v, at) => (typeof v === "string" ? null : `${at}: expected a string`);
const nonEmpty: Check = (v, at) => (typeof v === "string" && v.length > 0 ? null : `${at}: expected a non-empty string`);
const nullable = (check: Check): Check => (v, at) => (v === null ? null : check(v, at));
const oneOf = (values: readonly string[]): Check => (v, at) =>
    (typeof v === "string" && values.includes(v) ? null : `${at}: expected one of ${values.join(", ")}`);
const numberArray: Check = (v, at) => {
    if (!Array.isArray(v))
        return `${at}: expected an array of numbers`;
    for (let i = 0; i < v.length; i++) {
        const problem = isNonNegative(v[i], `${at}[${i}]`);
        if (problem != null)
            return problem;
    }
    return null;
};

function checkObject(value: unknown, at: string, fields: Record<string, Check>): string[] {
    if (value == null || typeof value !== "object" || Array.isArray(value))
        return [`${at}: expected an object`];
    const record = value as Record<string, unknown>;
    const problems: string[] = [];
    for (const [key, check] of Object.entries(fields)) {
        if (!(key in record)) {
            problems.push(`${at}.${key}: missing`);
            continue;
        }
        const problem = check(record[key], `${at}.${key}`);
        if (problem != null)
            problems.push(problem);
    }
    return problems;
}

const modelFields: Record<string, Check> = {
    file: nonEmpty, name: nonEmpty, sha256: (v, at) => (typeof v === "string" && /^[0-9a-f]{64}$/.test(v) ? null : `${at}: expected a sha256 hex digest`),
    bytes: isInteger, arch: isString, type: isString, params: isInteger
};

const fingerprintFields: Record<string, Check> = {
    machine: nonEmpty, hostname: isString, os: isString, cpu: nonEmpty, cores: isInteger, logical_cpus: isInteger,
    threads: isInteger, ram_bytes: isInteger, gpu: nullable(isString), vram_bytes: nullable(isInteger), driver: nullable(isString),
    backend: oneOf(gpuChoices.filter((choice) => choice !== "auto")), build: nonEmpty, node_version: isString,
    node_llama_cpp_version: isString, llama_cpp_version: isString, llama_cpp_commit: nullable(isString)
};

const isBoolean: Check = (v, at) => (typeof v === "boolean" ? null : `${at}: expected true or false`);
const stringArray: Check = (v, at) => (Array.isArray(v) && v.every((s) => typeof s === "string") ? null : `${at}: expected an array of strings`);
const nativeBuild: Check = (v, at) => {
    const problems = checkObject(v, at, { tag: isString, patches: (p, pat) => (Array.isArray(p) ? null : `${pat}: expected an array`) });
    const patches = (v as { patches?: unknown } | null)?.patches;
    if (problems.length === 0 && Array.isArray(patches))
        problems.push(...patches.flatMap((p, i) => checkObject(p, `${at}.patches[${i}]`, { name: nonEmpty, sha256: isString })));
    return problems[0] ?? null;
};

/** Fields results carry since they were added: checked where present, so older files still read. */
const laterFingerprintFields: Record<string, Check> = {
    autoact_version: isString, git_commit: nullable(isString), git_dirty: nullable(isBoolean), native_build: nullable(nativeBuild)
};

const testFields: Record<string, Check> = {
    name: nonEmpty, engine: oneOf(benchEngines), pp: isInteger, tg: isInteger, parallel: isInteger, lora_adapters: isInteger,
    reps: isInteger, samples: numberArray, mean: isNonNegative, stddev: isNonNegative, unit: oneOf(["tokens/s"]),
    peak_rss_bytes: nullable(isInteger), peak_vram_bytes: nullable(isInteger)
};

/** `fields` of `record` that are present (optional fields). */
function checkPresent(record: Record<string, unknown>, at: string, fields: Record<string, Check>): string[] {
    return Object.entries(fields).filter(([key]) => key in record).flatMap(([key, check]) => check(record[key], `${at}.${key}`) ?? []);
}

function checkTests(value: unknown, at: string): string[] {
    if (!Array.isArray(value))
        return [`${at}: expected an array`];
    return value.flatMap((test, i) => checkObject(test, `${at}[${i}]`, testFields));
}

/**
 * Problems with a parsed result file, one line each (empty when it is valid): every field
 * of `BenchResult` present with its type, and the ratios present when llama-bench ran.
 */
export function validateBenchResult(value: unknown): string[] {
    const problems = checkObject(value, "result", {
        schema: oneOf([BENCH_RESULT_SCHEMA]), kind: oneOf(benchKinds), timestamp: (v, at) => (typeof v === "string" && !Number.isNaN(Date.parse(v)) ? null : `${at}: expected an ISO 8601 time`),
        command: nonEmpty, ratio_pp: nullable(isNonNegative), ratio_tg: nullable(isNonNegative),
        notes: (v, at) => (Array.isArray(v) && v.every((n) => typeof n === "string") ? null : `${at}: expected an array of strings`),
        settings: (v, at) => (v != null && typeof v === "object" && !Array.isArray(v) ? null : `${at}: expected an object`)
    });
    if (problems.length > 0 && problems.some((p) => p.startsWith("result: ")))
        return problems;
    const result = value as Record<string, unknown>;
    problems.push(...checkObject(result.load_avg, "result.load_avg", { before: isNonNegative, after: isNonNegative }));
    problems.push(...checkObject(result.fingerprint, "result.fingerprint", fingerprintFields));
    const fingerprint = result.fingerprint as Record<string, unknown> | undefined;
    if (fingerprint != null && typeof fingerprint === "object") {
        problems.push(...checkObject(fingerprint.model, "result.fingerprint.model", modelFields));
        problems.push(...checkPresent(fingerprint, "result.fingerprint", laterFingerprintFields));
    }
    problems.push(...checkTests(result.tests, "result.tests"));
    if (Array.isArray(result.tests) && result.tests.length === 0)
        problems.push("result.tests: no measurements");
    for (const key of ["ratio_train_to_pp", "ratio_torch"] as const) {
        if (result[key] !== undefined) {
            const problem = nullable(isNonNegative)(result[key], `result.${key}`);
            if (problem != null)
                problems.push(problem);
        }
    }
    if (result.torch != null) {
        problems.push(...checkObject(result.torch, "result.torch", { command: nonEmpty, version: isString, lora: nonEmpty, device: nonEmpty, dtype: nonEmpty, lora_params: isInteger }));
        problems.push(...checkTests((result.torch as Record<string, unknown>).tests, "result.torch.tests"));
        if (result.ratio_torch == null)
            problems.push("result: ratio_torch must be set when the PyTorch reference ran");
    }
    if (result.llama_bench !== null) {
        problems.push(...checkObject(result.llama_bench, "result.llama_bench", { binary: nonEmpty, command: nonEmpty }));
        const lb = result.llama_bench as Record<string, unknown> | undefined;
        if (lb != null && typeof lb === "object") {
            problems.push(...checkTests(lb.tests, "result.llama_bench.tests"));
            problems.push(...checkPresent(lb, "result.llama_bench", { patches: nullable(stringArray) }));
        }
        if (result.kind === "infer" && (result.ratio_pp === null || result.ratio_tg === null))
            problems.push("result: ratio_pp and ratio_tg must be set when llama_bench ran");
        if (result.kind === "train" && result.ratio_train_to_pp == null)
            problems.push("result: ratio_train_to_pp must be set when llama_bench ran");
    }
    return problems;
}

/** Throws with the first problems when `value` is not a valid result. */
export function assertBenchResult(value: unknown, where: string): asserts value is BenchResult {
    const problems = validateBenchResult(value);
    if (problems.length > 0)
        throw new InputError(`${where}: not a valid bench result: ${problems.slice(0, 3).join("; ")}${problems.length > 3 ? ` (+${problems.length - 3} more)` : ""}`);
}

/** One test from several runs of it: their samples together. */
export function poolTests(tests: BenchTest[]): BenchTest {
    if (tests.length === 1)
        return tests[0]!;
    const samples = tests.flatMap((t) => t.samples);
    const peak = (key: "peak_rss_bytes" | "peak_vram_bytes") => tests.reduce<number | null>((m, t) => (t[key] == null ? m : Math.max(m ?? 0, t[key]!)), null);
    return { ...tests[0]!, reps: samples.length, samples, mean: mean(samples), stddev: stddev(samples), peak_rss_bytes: peak("peak_rss_bytes"), peak_vram_bytes: peak("peak_vram_bytes") };
}
