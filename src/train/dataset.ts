import path from "node:path";
import { detectRecordShape, readJsonRecords } from "../data/datasets/records.js";
import { iterateAnyTable } from "../data/table-io.js";
import { InputError } from "../util/errors.js";
import { requireFile } from "../util/fs.js";
import type { TokenizedSample } from "./samples-file.js";

/** One training row: the prompt text, the response to learn, and optionally its sub-agent. */
export interface TrainingRow {
    input: string;
    output: string;
    agent?: string;
}

/**
 * Reads training rows from the pipeline's `samples.arrow` (or any Arrow file with `input` and
 * `output` columns), a JSON array, or JSONL of `{input, output, agent?}` objects (the shape of
 * the original AutoAct training files). Throws InputError naming the file and line (or row).
 */
export async function loadTrainingRows(filePath: string): Promise<TrainingRow[]> {
    requireFile(filePath, "training data");
    const ext = path.extname(filePath).toLowerCase();
    if (ext === ".arrow" || ext === ".feather" || ext === ".ipc")
        return loadArrowRows(filePath);
    if (ext === ".jsonl" || ext === ".ndjson" || ext === ".json")
        return loadJsonRows(filePath);
    throw new InputError(`${filePath}: unknown training data format (expected .arrow, .json or .jsonl)`);
}

/**
 * The rows of one sub-agent. Rows without an `agent` field belong to every agent (files
 * written for one agent, as AutoAct's are); with agent "all" every row is kept.
 */
export function rowsForAgent(rows: readonly TrainingRow[], agent: string): TrainingRow[] {
    if (agent === "all")
        return [...rows];
    return rows.filter((row) => row.agent == null || row.agent === agent);
}

/** The distinct agents named by the rows, in first-seen order. */
export function agentsInRows(rows: readonly TrainingRow[]): string[] {
    return [...new Set(rows.flatMap((row) => (row.agent == null ? [] : [row.agent])))];
}

/**
 * Tokenizes rows with `tokenize` (the project's prompt formatter in production: prompt tokens
 * with mask 0, response tokens with mask 1). Kept separate so tests and tools can pass tokens.
 */
export function tokenizeRows(rows: readonly TrainingRow[], tokenize: (row: TrainingRow) => TokenizedSample): TokenizedSample[] {
    return rows.map((row, i) => {
        const sample = tokenize(row);
        if (sample.tokens.length !== sample.mask.length)
            throw new InputError(`row ${i}: the tokenizer returned ${sample.tokens.length} tokens but ${sample.mask.length} mask values`);
        return sample;
    });
}

async function loadArrowRows(filePath: string): Promise<TrainingRow[]> {
    const rows: TrainingRow[] = [];
    for await (const batch of iterateAnyTable(filePath)) {
        for (const raw of batch)
            rows.push(checkRow(raw, `${filePath}: row ${rows.length}`));
    }
    return rows;
}

/**
 * JSONL or one JSON array (what alpaca / ShareGPT `.json` files are), through the shared
 * reader: a BOM, binary input and bad lines are reported as for every other JSON input.
 */
async function loadJsonRows(filePath: string): Promise<TrainingRow[]> {
    if (path.extname(filePath).toLowerCase() === ".json" && await detectRecordShape(filePath, true) === "jsonl")
        throw new InputError(`${filePath}: expected a JSON array of {input, output} objects`);
    const rows: TrainingRow[] = [];
    // an empty file is for the caller to report ("the dataset is empty")
    for await (const record of readJsonRecords(filePath, { what: "training data", allowEmpty: true }))
        rows.push(checkRow(record.value, `${filePath}:${record.line}`));
    return rows;
}

function checkRow(value: unknown, where: string): TrainingRow {
    if (value == null || typeof value !== "object" || Array.isArray(value))
        throw new InputError(`${where}: expected an object with string fields input and output`);
    const row = fromExportShape(value as Record<string, unknown>, where);
    for (const key of ["input", "output"] as const) {
        if (typeof row[key] !== "string")
            throw new InputError(`${where}: field "${key}" must be a string`);
        if ((row[key] as string).trim() === "")
            throw new InputError(`${where}: field "${key}" is empty; there would be nothing to learn from`);
    }
    if (row.agent != null && typeof row.agent !== "string")
        throw new InputError(`${where}: field "agent" must be a string`);
    return { input: row.input as string, output: row.output as string, ...(row.agent != null ? { agent: row.agent as string } : {}) };
}

export interface FittedSamples {
    samples: TokenizedSample[];
    /** Samples whose prompt lost tokens on the left to fit. */
    truncated: number;
    /** Samples left out because their response alone does not fit (never silently). */
    dropped: number;
    /** Of the truncated, those cut on the left of the prompt: no question (followed by a step) to keep, or the rest could not make room. */
    leftCut: number;
}

/**
 * A warning when the longest sample runs past the positions the base model was trained on
 * (GGUF `<arch>.context_length`): training there is allowed (a context extension) but rarely
 * meant; null when it fits or the model does not say.
 */
export function beyondModelContext(samples: readonly TokenizedSample[], modelContext: number | undefined): string | null {
    const longest = samples.reduce((max, s) => Math.max(max, s.tokens.length), 0);
    return modelContext != null && longest > modelContext
        ? `the longest sample has ${longest} tokens, more than the ${modelContext} the base model was trained on: positions past it are trained too (lower the context to stay within it)`
        : null;
}

/**
 * Fits samples into `context` tokens: prompt tokens are cut, the response is kept whole (it is
 * what is learned). The cut starts after the sample's `keep` tokens (the task header and the
 * question: the oldest steps go, as a long episode would otherwise be learned without knowing
 * its task) or, where the rest cannot make room, after a leading `bos` (the left of the
 * prompt goes, counted in `leftCut`). A sample whose response cannot fit even with the whole
 * prompt gone is left out and counted.
 */
export function fitSamplesToContext(samples: readonly TokenizedSample[], context: number, bos: number | null = null): FittedSamples {
    const out: TokenizedSample[] = [];
    let truncated = 0;
    let dropped = 0;
    let leftCut = 0;
    for (const sample of samples) {
        if (sample.tokens.length <= context) {
            out.push(sample);
            continue;
        }
        const promptLength = sample.mask.findIndex((m) => m !== 0);
        const responseStart = promptLength < 0 ? sample.tokens.length : promptLength;
        const bosHead = Math.min(bos != null && sample.tokens[0] === bos ? 1 : 0, responseStart);
        const excess = sample.tokens.length - context;
        // Only prompt tokens after the head can go, and one prompt token must stay: the first
        // response token is predicted from it.
        const fits = (head: number) => responseStart - head >= excess && responseStart - excess >= 1;
        const taskHead = Math.max(bosHead, Math.min(sample.keep ?? 0, responseStart));
        const head = fits(taskHead) ? taskHead : fits(bosHead) ? bosHead : null;
        if (head == null) {
            dropped++;
            continue;
        }
        if (sample.keep == null || head < taskHead)
            leftCut++;
        const cut = (values: number[]) => [...values.slice(0, head), ...values.slice(head + excess)];
        out.push({ tokens: cut(sample.tokens), mask: cut(sample.mask), ...sample.keep != null ? { keep: Math.min(sample.keep, head) } : {} });
        truncated++;
    }
    return { samples: out, truncated, dropped, leftCut };
}

/** Where the samples cut to fit lost their tokens: their oldest steps after the question, or the left of the prompt. */
export function cutWhere(fit: { truncated: number; leftCut: number }): string {
    const afterQuestion = fit.truncated - fit.leftCut;
    if (fit.truncated === 0)
        return "none cut";
    if (fit.leftCut === 0)
        return "their oldest steps after the question";
    return afterQuestion === 0 ? "on the left of the prompt" : `${afterQuestion} after the question, ${fit.leftCut} on the left of the prompt`;
}

/**
 * The alpaca and ShareGPT shapes `autoact inspect --export --shape` writes, read back as
 * {input, output}: alpaca's prompt is its instruction (then its input, when not empty),
 * ShareGPT's one human turn and one gpt turn. Other rows pass through unchanged.
 */
function fromExportShape(row: Record<string, unknown>, where: string): Record<string, unknown> {
    if ("instruction" in row) {
        if (typeof row.instruction !== "string" || typeof row.output !== "string" || (row.input != null && typeof row.input !== "string"))
            throw new InputError(`${where}: an alpaca row needs string fields instruction and output (and input, when present)`);
        const extra = (row.input as string | undefined) ?? "";
        return { ...row, input: extra === "" ? row.instruction : `${row.instruction}\n\n${extra}`, output: row.output };
    }
    if ("conversations" in row) {
        const turns = row.conversations;
        const isTurn = (t: unknown, from: string[]) => t != null && typeof t === "object" &&
            from.includes(String((t as { from?: unknown }).from)) && typeof (t as { value?: unknown }).value === "string";
        if (!Array.isArray(turns) || turns.length !== 2 || !isTurn(turns[0], ["human", "user"]) || !isTurn(turns[1], ["gpt", "assistant"]))
            throw new InputError(`${where}: a ShareGPT row must hold exactly one human turn then one gpt turn ({"from", "value"})`);
        return { ...row, input: (turns[0] as { value: string }).value, output: (turns[1] as { value: string }).value };
    }
    return row;
}
