import path from "node:path";
import { InputError } from "../../util/errors.js";
import { readJsonRecords, type JsonRecord } from "./records.js";
import type { ContextParagraph, DatasetFormat, TaskExample } from "./types.js";

export interface LoadTasksOptions {
    /** A HotpotQA (BOLAA JSONL or official JSON array), ScienceQA, generic JSONL or seeds file. */
    file: string;
    /** Defaults to "auto": decided from the first record's keys. */
    format?: DatasetFormat;
    /** Keep only these ids, in this order; an id missing from the file is an InputError. Defaults to all tasks, in file order. */
    ids?: readonly string[];
    /** Keep at most this many tasks (after `ids`). Defaults to all. */
    limit?: number;
}

// `number` is the record's 1-based position in the file (ids of records without one).
type Converter = (record: JsonRecord, where: string, stem: string, number: number) => TaskExample;

/**
 * Loads tasks from a file into TaskExample rows. Empty files, malformed lines, missing or
 * mistyped keys and duplicate ids are InputErrors naming the file and line.
 */
export async function loadTasks(options: LoadTasksOptions): Promise<TaskExample[]> {
    const { file, format = "auto", ids, limit } = options;
    if (!["auto", "hotpotqa", "scienceqa", "jsonl", "seeds"].includes(format))
        throw new InputError(`unknown dataset format "${format}" (expected auto, hotpotqa, scienceqa, jsonl or seeds)`);
    const stem = path.basename(file).replace(/\.[^.]*$/, "");
    const wanted = ids == null ? undefined : new Set(ids);
    const tasks: TaskExample[] = [];
    const seen = new Map<string, number>();
    let convert: Converter | undefined = format === "auto" ? undefined : CONVERTERS[format];
    for await (const record of readJsonRecords(file, { what: "dataset file" })) {
        const where = `${file}:${record.line}`;
        convert ??= CONVERTERS[detectFormat(record, where)];
        const task = convert(record, where, stem, seen.size + 1);
        const previous = seen.get(task.id);
        if (previous !== undefined)
            throw new InputError(`${where}: duplicate id "${task.id}" (first on line ${previous})`);
        seen.set(task.id, record.line);
        if (wanted == null || wanted.has(task.id))
            tasks.push(task);
        // Without an id filter nothing past the limit is needed.
        if (wanted == null && limit != null && tasks.length >= limit)
            break;
    }
    let result = tasks;
    if (ids != null) {
        const byId = new Map(tasks.map((t) => [t.id, t]));
        const missing = ids.filter((id) => !byId.has(id));
        if (missing.length > 0)
            throw new InputError(`${file}: ${missing.length} requested id(s) not in the file, e.g. "${missing[0]}"`);
        result = ids.map((id) => byId.get(id)!);
    }
    return limit == null ? result : result.slice(0, limit);
}

function detectFormat(record: JsonRecord, where: string): Exclude<DatasetFormat, "auto"> {
    const value = record.value;
    if (isObject(value)) {
        if ("context" in value && "question" in value && ("supporting_facts" in value || "_id" in value))
            return "hotpotqa";
        if ("Question" in value && "choices" in value)
            return "scienceqa";
        if ("Question" in value && "Answer" in value)
            return "seeds";
        if ("question" in value && "answer" in value)
            return "jsonl";
    }
    throw new InputError(`${where}: cannot tell the dataset format from this record (expected HotpotQA, ScienceQA, seeds {Question, Answer} or JSONL {question, answer})`);
}

const CONVERTERS: Record<Exclude<DatasetFormat, "auto">, Converter> = {
    hotpotqa: hotpotqaTask,
    scienceqa: scienceqaTask,
    jsonl: genericTask,
    seeds: seedTask
};

/** HotpotQA, BOLAA JSONL (`id`) or official JSON (`_id`). */
function hotpotqaTask(record: JsonRecord, where: string): TaskExample {
    const value = asObject(record.value, where);
    const id = value.id ?? value._id;
    if (typeof id !== "string" || id.length === 0)
        throw new InputError(`${where}: key "id" (or "_id") must be a non-empty string`);
    const context = parseContext(value.context, where);
    const supportingFacts = value.supporting_facts;
    if (supportingFacts !== undefined && !Array.isArray(supportingFacts))
        throw new InputError(`${where}: key "supporting_facts" must be a list of [title, sentence index] pairs`);
    return {
        id,
        question: requireString(value, "question", where),
        answer: requireString(value, "answer", where, true),
        level: optionalString(value, "level", where),
        context,
        meta: {
            ...(value.type !== undefined ? { type: value.type } : {}),
            ...(supportingFacts !== undefined ? { supportingFacts } : {})
        }
    };
}

function parseContext(context: unknown, where: string): ContextParagraph[] {
    if (!Array.isArray(context))
        throw new InputError(`${where}: key "context" must be a list of [title, [sentences]] pairs`);
    return context.map((entry: unknown, index) => {
        if (Array.isArray(entry) && typeof entry[0] === "string" && Array.isArray(entry[1]) && entry[1].every((s) => typeof s === "string"))
            return { title: entry[0], sentences: (entry[1] as string[]).map((s) => s.trim()).filter((s) => s.length > 0) };
        if (isObject(entry) && typeof entry.title === "string" && Array.isArray(entry.sentences) && entry.sentences.every((s) => typeof s === "string"))
            return { title: entry.title, sentences: (entry.sentences as string[]).map((s) => s.trim()).filter((s) => s.length > 0) };
        throw new InputError(`${where}: context[${index}] must be [title, [sentences]] or {title, sentences}`);
    });
}

/** ScienceQA as AutoAct formats it: Question (with "Options: (A) ..."), choices, caption, orc, Answer letter, metadata, pid. */
function scienceqaTask(record: JsonRecord, where: string, _stem: string, number: number): TaskExample {
    const value = asObject(record.value, where);
    const question = requireString(value, "Question", where);
    const choices = value.choices;
    if (!Array.isArray(choices) || choices.length < 2 || !choices.every((c) => typeof c === "string"))
        throw new InputError(`${where}: key "choices" must be a list of at least 2 strings`);
    const answer = requireString(value, "Answer", where).trim();
    const letter = /^\(?([A-Z])\)?(?:[.:)\s]|$)/.exec(answer)?.[1];
    if (letter == null || letter.charCodeAt(0) - 65 >= choices.length)
        throw new InputError(`${where}: key "Answer" must be an option letter A-${String.fromCharCode(64 + choices.length)}, got "${answer}"`);
    const metadata = isObject(value.metadata) ? value.metadata : {};
    const pid = value.pid;
    const id = typeof pid === "string" || typeof pid === "number" ? String(pid) : `scienceqa-${number}`;
    const grade = typeof metadata.grade === "number" ? metadata.grade : Number(String(metadata.grade ?? "").replace(/\D/g, "")) || undefined;
    return {
        id,
        question,
        answer: letter,
        choices: choices as string[],
        level: grade === undefined ? undefined : gradeBand(grade),
        image: scienceqaImage(value.caption, value.orc),
        meta: { ...metadata, ...(pid !== undefined ? { pid: String(pid) } : {}) }
    };
}

/** ScienceQA's evaluation groups: grades 1-4, 5-8 and 9-12. */
export function gradeBand(grade: number): string {
    return grade <= 4 ? "1-4" : grade <= 8 ? "5-8" : "9-12";
}

/** "no img" / "[]" mean no image; `orc` is a Python-printed list of (box, text, confidence) tuples. */
export function scienceqaImage(caption: unknown, orc: unknown): TaskExample["image"] {
    const text = typeof caption === "string" && caption.trim() !== "no img" ? caption.trim() : "";
    const ocr = typeof orc === "string" ? ocrText(orc) : "";
    return text === "" && ocr === "" ? undefined : { caption: text, ocr };
}

/** Pulls the recognized strings out of an OCR dump like `[([[x, y], ...], 'Oklahoma', 0.71), ...]`. */
export function ocrText(orc: string): string {
    const trimmed = orc.trim();
    if (trimmed === "" || trimmed === "[]" || trimmed === "no img")
        return "";
    if (!trimmed.startsWith("[("))
        return trimmed;
    const texts: string[] = [];
    // A quoted string right after a box's closing "]]," is the recognized text.
    const pattern = /\]\],\s*('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")\s*,/g;
    for (const match of trimmed.matchAll(pattern))
        texts.push(match[1]!.slice(1, -1).replace(/\\(.)/g, "$1"));
    return texts.join(" ");
}

/** Generic JSONL: {id?, question, answer, choices?, level?, image_caption?, image_ocr?, context?}. */
function genericTask(record: JsonRecord, where: string, stem: string, number: number): TaskExample {
    const value = asObject(record.value, where);
    const id = value.id;
    if (id !== undefined && typeof id !== "string" && typeof id !== "number")
        throw new InputError(`${where}: key "id" must be a string or a number`);
    const choices = value.choices;
    if (choices !== undefined && (!Array.isArray(choices) || !choices.every((c) => typeof c === "string")))
        throw new InputError(`${where}: key "choices" must be a list of strings`);
    const caption = optionalString(value, "image_caption", where);
    const ocr = optionalString(value, "image_ocr", where);
    const known = new Set(["id", "question", "answer", "choices", "level", "image_caption", "image_ocr", "context"]);
    const rest = Object.fromEntries(Object.entries(value).filter(([key]) => !known.has(key)));
    return {
        id: id === undefined ? `${stem}-${number}` : String(id),
        question: requireString(value, "question", where),
        answer: requireString(value, "answer", where, true),
        ...(choices !== undefined ? { choices: choices as string[] } : {}),
        ...(value.level !== undefined ? { level: String(value.level) } : {}),
        ...(value.context !== undefined ? { context: parseContext(value.context, where) } : {}),
        ...(caption !== undefined || ocr !== undefined ? { image: { caption: caption ?? "", ocr: ocr ?? "" } } : {}),
        ...(Object.keys(rest).length > 0 ? { meta: rest } : {})
    };
}

/** Seeds as AutoAct writes them: a JSON list of {Question, Answer} (ScienceQA seeds add caption, orc, metadata). */
function seedTask(record: JsonRecord, where: string, stem: string, number: number): TaskExample {
    const value = asObject(record.value, where);
    const question = requireString(value, "Question", where);
    const answer = requireString(value, "Answer", where, true);
    const choices = parseOptions(question);
    const image = scienceqaImage(value.caption, value.orc);
    const metadata = isObject(value.metadata) ? value.metadata : undefined;
    const grade = typeof metadata?.grade === "number" ? metadata.grade : undefined;
    return {
        id: `${stem}-${number}`,
        question,
        answer,
        ...(choices != null ? { choices } : {}),
        ...(grade !== undefined ? { level: gradeBand(grade) } : {}),
        ...(image != null ? { image } : {}),
        ...(metadata != null ? { meta: metadata } : {})
    };
}

/** Reads "Options: (A) x (B) y" at the end of a question into ["x", "y"]; null when absent. */
export function parseOptions(question: string): string[] | null {
    const at = question.lastIndexOf("Options:");
    if (at < 0)
        return null;
    const parts = question.slice(at + "Options:".length).split(/\s*\(([A-Z])\)\s*/);
    // split with a capture group: ["", "A", "x", "B", "y", ...]
    const options: string[] = [];
    for (let i = 1; i + 1 < parts.length; i += 2)
        options.push(parts[i + 1]!.trim());
    return options.length >= 2 ? options : null;
}

function isObject(value: unknown): value is Record<string, unknown> {
    return value != null && typeof value === "object" && !Array.isArray(value);
}

function asObject(value: unknown, where: string): Record<string, unknown> {
    if (!isObject(value))
        throw new InputError(`${where}: expected a JSON object`);
    return value;
}

function requireString(value: Record<string, unknown>, key: string, where: string, allowNumber = false): string {
    const field = value[key];
    if (allowNumber && (typeof field === "number" || typeof field === "boolean"))
        return String(field);
    if (typeof field !== "string" || field.trim().length === 0)
        throw new InputError(`${where}: key "${key}" must be a non-empty string`);
    return field;
}

function optionalString(value: Record<string, unknown>, key: string, where: string): string | undefined {
    const field = value[key];
    if (field === undefined || field === null)
        return undefined;
    if (typeof field !== "string")
        throw new InputError(`${where}: key "${key}" must be a string`);
    return field;
}
