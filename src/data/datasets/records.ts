import fs from "node:fs";
import { StringDecoder } from "node:string_decoder";
import { InputError } from "../../util/errors.js";
import { requireFile } from "../../util/fs.js";

/** One JSON value read from a file, with the 1-based line it starts on. */
export interface JsonRecord {
    value: unknown;
    line: number;
}

export type RecordFileShape = "jsonl" | "array" | "empty";

const CHUNK_BYTES = 1 << 20;

/**
 * Streams the records of a JSONL file or of a JSON array file (detected from the first
 * non-blank character: `[` means array), so files larger than memory or than V8's string
 * limit can be read. Malformed input throws an InputError naming file and line.
 */
export async function* readJsonRecords(file: string, options: {
    /** What to call the file in errors. Defaults to "file". */
    what?: string;
    /** Yield nothing for an empty file (or `[]`) instead of throwing. Defaults to false. */
    allowEmpty?: boolean;
    /** Said after "a single JSON object, not JSONL or a JSON list": what to use for one. Defaults to nothing. */
    objectHint?: string;
} = {}): AsyncGenerator<JsonRecord> {
    requireFile(file, options.what ?? "file");
    const allowEmpty = options.allowEmpty ?? false;
    const shape = await detectRecordShape(file, allowEmpty);
    if (shape === "empty")
        return;
    if (shape === "array")
        yield* readJsonArray(file, allowEmpty);
    else
        yield* readJsonLines(file, allowEmpty, options.objectHint);
}

/**
 * JSON text holds no control bytes but tab, newline and CR (JSON escapes the others): any
 * other byte below 0x20 means an Arrow, gzip or other binary file, whose bytes must not
 * end up in a message.
 */
function isBinary(bytes: Uint8Array): boolean {
    return bytes.some((b) => b < 0x20 && b !== 9 && b !== 10 && b !== 13);
}

function binaryError(file: string): InputError {
    return new InputError(`${file}: not a JSON file (binary content)`);
}

/** Peeks at the first non-blank character. Empty files are an InputError unless `allowEmpty`. */
export async function detectRecordShape(file: string, allowEmpty = false): Promise<RecordFileShape> {
    const fd = await fs.promises.open(file, "r");
    try {
        const buffer = Buffer.alloc(64 * 1024);
        let position = 0;
        for (;;) {
            const { bytesRead } = await fd.read(buffer, 0, buffer.length, position);
            if (bytesRead === 0) {
                if (allowEmpty)
                    return "empty";
                throw new InputError(`${file}: the file is empty`);
            }
            if (isBinary(buffer.subarray(0, bytesRead)))
                throw binaryError(file);
            const text = buffer.subarray(0, bytesRead).toString("utf8").replace(/^\uFEFF/, "");
            const first = /\S/.exec(text);
            if (first != null)
                return first[0] === "[" ? "array" : "jsonl";
            position += bytesRead;
        }
    } finally {
        await fd.close();
    }
}

async function* readJsonLines(file: string, allowEmpty: boolean, objectHint?: string): AsyncGenerator<JsonRecord> {
    const decoder = new StringDecoder("utf8");
    let pending = "";
    let line = 0;
    let count = 0;
    const stream = fs.createReadStream(file, { highWaterMark: CHUNK_BYTES });
    for await (const chunk of stream) {
        const text = pending + decoder.write(chunk as Buffer);
        const lines = text.split("\n");
        pending = lines.pop()!;
        for (const raw of lines) {
            line++;
            if (count === 0 && opensMultilineObject(raw))
                throw new InputError(`${file}: a single JSON object, not JSONL or a JSON list${objectHint == null ? "" : ` (${objectHint})`}`);
            const record = parseLine(file, raw, line);
            if (record !== undefined) {
                count++;
                yield record;
            }
        }
    }
    pending += decoder.end();
    if (pending.length > 0) {
        line++;
        const record = parseLine(file, pending, line);
        if (record !== undefined) {
            count++;
            yield record;
        }
    }
    if (count === 0 && !allowEmpty)
        throw new InputError(`${file}: no records (the file has only blank lines)`);
}

/**
 * A first line such as `{` or `{"5890": {` opens a pretty-printed JSON object: no JSONL line
 * ends that way, where a JSONL line cut short ends anywhere.
 */
function opensMultilineObject(raw: string): boolean {
    const text = raw.replace(/^\uFEFF/, "").trim();
    return text.startsWith("{") && /[{[,:]$/.test(text);
}

function parseLine(file: string, raw: string, line: number): JsonRecord | undefined {
    const text = line === 1 ? raw.replace(/^\uFEFF/, "").trim() : raw.trim();
    if (text.length === 0)
        return undefined;
    try {
        return { value: JSON.parse(text), line };
    } catch (error) {
        throw new InputError(`${file}:${line}: invalid JSON (${shortJsonError(error)})`);
    }
}

function shortJsonError(error: unknown): string {
    const message = error instanceof Error ? error.message : String(error);
    return message.length > 120 ? `${message.slice(0, 117)}...` : message;
}

const QUOTE = 34, BACKSLASH = 92, NEWLINE = 10, OPEN_BRACE = 123, CLOSE_BRACE = 125,
    OPEN_BRACKET = 91, CLOSE_BRACKET = 93, COMMA = 44;

/**
 * Streams the elements of a top-level JSON array of objects without holding the whole
 * file: a small scanner finds where each element ends (strings and nesting tracked) and
 * JSON.parse reads that element alone.
 */
async function* readJsonArray(file: string, allowEmpty: boolean): AsyncGenerator<JsonRecord> {
    const decoder = new StringDecoder("utf8");
    let line = 1;
    let started = false, ended = false;
    let depth = 0, inString = false, escape = false;
    let parts: string[] = [];
    let elementLine = 0;
    let count = 0;
    let first = true;
    const stream = fs.createReadStream(file, { highWaterMark: CHUNK_BYTES });
    for await (const buffer of stream) {
        let chunk = decoder.write(buffer as Buffer);
        if (first) {
            chunk = chunk.replace(/^\uFEFF/, "");
            first = false;
        }
        let segmentStart = depth > 0 ? 0 : -1;
        for (let i = 0; i < chunk.length; i++) {
            const c = chunk.charCodeAt(i);
            if (c === NEWLINE)
                line++;
            if (inString) {
                if (escape)
                    escape = false;
                else if (c === BACKSLASH)
                    escape = true;
                else if (c === QUOTE)
                    inString = false;
                continue;
            }
            if (depth === 0) {
                if (isBlank(c))
                    continue;
                if (!started) {
                    if (c !== OPEN_BRACKET)
                        throw new InputError(`${file}:${line}: expected a JSON array`);
                    started = true;
                    continue;
                }
                if (ended)
                    throw new InputError(`${file}:${line}: unexpected text after the end of the JSON array`);
                if (c === COMMA)
                    continue;
                if (c === CLOSE_BRACKET) {
                    ended = true;
                    continue;
                }
                if (c !== OPEN_BRACE)
                    throw new InputError(`${file}:${line}: expected a JSON object as array element`);
                depth = 1;
                segmentStart = i;
                elementLine = line;
                continue;
            }
            if (c === QUOTE)
                inString = true;
            else if (c === OPEN_BRACE || c === OPEN_BRACKET)
                depth++;
            else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
                depth--;
                if (depth === 0) {
                    parts.push(chunk.slice(segmentStart, i + 1));
                    const text = parts.join("");
                    parts = [];
                    segmentStart = -1;
                    let value: unknown;
                    try {
                        value = JSON.parse(text);
                    } catch (error) {
                        throw new InputError(`${file}:${elementLine}: invalid JSON (${shortJsonError(error)})`);
                    }
                    count++;
                    yield { value, line: elementLine };
                }
            }
        }
        if (depth > 0)
            parts.push(chunk.slice(segmentStart));
    }
    if (!started)
        throw new InputError(`${file}: the file is empty`);
    if (depth > 0 || inString || !ended)
        throw new InputError(`${file}:${depth > 0 ? elementLine : line}: the JSON array is truncated (no closing bracket)`);
    if (count === 0 && !allowEmpty)
        throw new InputError(`${file}: the JSON array is empty`);
}

function isBlank(c: number): boolean {
    return c === 32 || c === 10 || c === 13 || c === 9;
}

/** Reads a whole small JSON file; errors name the file (and line when JSON.parse says where). */
export function readJsonFile(file: string, what = "file"): unknown {
    requireFile(file, what);
    const bytes = fs.readFileSync(file);
    if (isBinary(bytes.subarray(0, 64 * 1024)))
        throw binaryError(file);
    const text = bytes.toString("utf8").replace(/^\uFEFF/, "");
    if (text.trim().length === 0)
        throw new InputError(`${file}: the file is empty`);
    try {
        return JSON.parse(text);
    } catch (error) {
        const message = shortJsonError(error);
        const position = /position (\d+)/.exec(message);
        const line = position == null ? undefined : text.slice(0, Number(position[1])).split("\n").length;
        throw new InputError(`${file}${line == null ? "" : `:${line}`}: invalid JSON (${message})`);
    }
}
