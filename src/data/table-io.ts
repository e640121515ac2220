import fs from "node:fs";
import path from "node:path";
import {
    DataType, Message, RecordBatch, RecordBatchFileWriter, RecordBatchReader, Struct,
    type AsyncRecordBatchFileReader, type Data, type AsyncRecordBatchStreamReader, type Schema
} from "apache-arrow";
import { InputError, errorMessage } from "../util/errors.js";
import { makeDirectory, releaseTemporary, requireFile, temporaryNameFor } from "../util/fs.js";
import { arrowType, struct, type Column } from "./columns.js";
import { encodeColumn } from "./encode.js";
import { batchToRows, describeArrowType } from "./convert.js";
import {
    arrowSchemaFor, isTableName, tableSchemas, SCHEMA_NAME_KEY, SCHEMA_VERSION_KEY,
    type RowFor, type TableName, type TableSchema
} from "./schemas.js";
import { prepareRow } from "./validate.js";

/** Rows per Arrow record batch when writing. */
export const DEFAULT_ROWS_PER_BATCH = 4096;

export interface WriteTableOptions {
    /** Rows per record batch; readers can load one batch at a time. Defaults to 4096. */
    rowsPerBatch?: number;
}

export interface WriteTableResult {
    path: string;
    rows: number;
    batches: number;
    bytes: number;
}

/**
 * An Arrow IPC file being written under a temporary name beside its target; `close`
 * renames it into place, `abort` (or any failure) removes it. Bytes go out batch by
 * batch, so memory stays at one batch whatever the table size.
 */
class ArrowFileSink {
    private readonly writer = new RecordBatchFileWriter();
    private readonly pump: Promise<void>;
    private failure: unknown = null;
    private finished = false;
    bytes = 0;
    batches = 0;

    private constructor(readonly target: string, readonly tmp: string, private readonly fd: number, readonly schema: Schema) {
        this.writer.reset(undefined, schema);
        // The writer queues bytes; this loop moves them to the file (synchronously, so one
        // turn of the event loop after a batch leaves nothing queued in memory).
        this.pump = (async () => {
            for await (const chunk of this.writer) {
                if (this.failure != null)
                    continue;
                try {
                    fs.writeSync(this.fd, chunk);
                    this.bytes += chunk.byteLength;
                } catch (error) {
                    this.failure = error;
                }
            }
        })();
    }

    static open(target: string, schema: Schema): ArrowFileSink {
        makeDirectory(path.dirname(path.resolve(target)));
        removeStaleTemporaries(target);
        const tmp = temporaryNameFor(target);
        const fd = fs.openSync(tmp, "wx");
        return new ArrowFileSink(target, tmp, fd, schema);
    }

    async write(batch: RecordBatch): Promise<void> {
        this.writer.write(batch);
        this.batches++;
        await new Promise((resolve) => setImmediate(resolve));
        if (this.failure != null)
            throw this.failure;
    }

    async close(): Promise<void> {
        if (this.finished)
            throw new Error(`table writer for ${this.target} is already closed`);
        this.finished = true;
        try {
            this.writer.close();
            await this.pump;
            if (this.failure != null)
                throw this.failure;
            fs.closeSync(this.fd);
            fs.renameSync(this.tmp, this.target);
            releaseTemporary(this.tmp);
        } catch (error) {
            this.discard();
            throw error;
        }
    }

    async abort(): Promise<void> {
        if (this.finished)
            return;
        this.finished = true;
        this.writer.abort();
        await this.pump.catch(() => undefined);
        this.discard();
    }

    private discard(): void {
        try {
            fs.closeSync(this.fd);
        } catch {
            // already closed
        }
        fs.rmSync(this.tmp, { force: true });
        releaseTemporary(this.tmp);
    }
}

/**
 * Removes temporary files that a killed writer of `target` left behind (`.name.<pid>.<hex>.tmp`
 * whose process is gone), so SIGKILLed stages do not pile up hidden files.
 */
export function removeStaleTemporaries(target: string): string[] {
    const dir = path.dirname(path.resolve(target));
    const base = path.basename(target);
    const removed: string[] = [];
    let names: string[];
    try {
        names = fs.readdirSync(dir);
    } catch {
        return removed;
    }
    for (const name of names) {
        if (!name.startsWith(`.${base}.`) || !name.endsWith(".tmp"))
            continue;
        const match = /^\.(\d+)\.[0-9a-f]+\.tmp$/.exec(name.slice(base.length + 1));
        if (match == null || processAlive(Number(match[1])))
            continue;
        fs.rmSync(path.join(dir, name), { force: true });
        removed.push(path.join(dir, name));
    }
    return removed;
}

function processAlive(pid: number): boolean {
    if (pid === process.pid)
        return true;
    try {
        process.kill(pid, 0);
        return true;
    } catch (error) {
        return (error as NodeJS.ErrnoException).code === "EPERM";
    }
}

/**
 * Writes a table incrementally: `write` rows as they come, `close` to publish the
 * file atomically. Each row is validated against the table's schema; a bad row throws
 * a RowValidationError naming the row (index in the whole table) and the column, and
 * the caller should `abort`. `writeTable` wraps this for the common case.
 */
export class TableWriter<N extends TableName> {
    private pending: Record<string, unknown>[] = [];
    private written = 0;
    private readonly rowsPerBatch: number;
    private readonly structType: Struct;
    private readonly rowColumn: Column;

    private constructor(readonly table: TableSchema<N>, private readonly sink: ArrowFileSink, options: WriteTableOptions) {
        this.rowsPerBatch = Math.max(1, options.rowsPerBatch ?? DEFAULT_ROWS_PER_BATCH);
        this.structType = new Struct(sink.schema.fields);
        this.rowColumn = struct(table.columns);
    }

    static open<N extends TableName>(filePath: string, schemaName: N, options: WriteTableOptions = {}): TableWriter<N> {
        const table = tableSchemas[schemaName] as unknown as TableSchema<N>;
        return new TableWriter(table, ArrowFileSink.open(filePath, arrowSchemaFor(table)), options);
    }

    /** Rows accepted so far (written or waiting for their batch). */
    get rowCount(): number {
        return this.written + this.pending.length;
    }

    async write(rows: Iterable<RowFor<N>>): Promise<void> {
        for (const row of rows) {
            this.pending.push(prepareRow(this.table, row, this.rowCount));
            if (this.pending.length >= this.rowsPerBatch)
                await this.flush();
        }
    }

    async close(): Promise<WriteTableResult> {
        await this.flush();
        await this.sink.close();
        return { path: this.sink.target, rows: this.written, batches: this.sink.batches, bytes: this.sink.bytes };
    }

    async abort(): Promise<void> {
        this.pending = [];
        await this.sink.abort();
    }

    private async flush(): Promise<void> {
        if (this.pending.length === 0)
            return;
        const data = encodeColumn(this.rowColumn, this.structType, this.pending) as Data<Struct>;
        const batch = new RecordBatch(this.sink.schema, data);
        this.written += this.pending.length;
        this.pending = [];
        await this.sink.write(batch);
    }
}

/**
 * Writes `rows` as the Arrow IPC file `filePath` with the schema `schemaName`:
 * validated, in record batches, to a temporary name that is renamed into place
 * only when complete. On any error no file (and no temporary file) is left.
 */
export async function writeTable<N extends TableName>(
    filePath: string, schemaName: N, rows: Iterable<RowFor<N>> | AsyncIterable<RowFor<N>>, options: WriteTableOptions = {}
): Promise<WriteTableResult> {
    const writer = TableWriter.open(filePath, schemaName, options);
    try {
        if (Symbol.asyncIterator in rows) {
            for await (const row of rows)
                await writer.write([row]);
        } else
            await writer.write(rows);
        return await writer.close();
    } catch (error) {
        await writer.abort();
        if (error instanceof InputError)
            throw new InputError(`cannot write ${filePath}: ${error.message}`, { cause: error });
        throw error;
    }
}

// ---------------------------------------------------------------- reading

export interface FieldInfo {
    name: string;
    /** Short type text, e.g. `list<struct<index: int32, ...>>`. */
    type: string;
    nullable: boolean;
}

export interface TableInfo {
    path: string;
    /** The autoact table name from the schema metadata; null for foreign Arrow files. */
    schemaName: string | null;
    schemaVersion: number | null;
    fields: FieldInfo[];
    numRows: number;
    numBatches: number;
    bytes: number;
    /** "file" (IPC file, random access) or "stream" (IPC stream). */
    format: "file" | "stream";
    /** All schema metadata (key -> value). */
    metadata: Record<string, string>;
}

type AsyncReader = AsyncRecordBatchFileReader | AsyncRecordBatchStreamReader;

/** An opened Arrow file: its reader, schema and the handle to close. */
interface OpenedTable {
    filePath: string;
    handle: fs.promises.FileHandle;
    reader: AsyncReader;
    schema: Schema;
    bytes: number;
}

async function openTable(filePath: string): Promise<OpenedTable> {
    requireFile(filePath, "table file");
    const bytes = fs.statSync(filePath).size;
    const handle = await fs.promises.open(filePath, "r");
    try {
        if (bytes < 8)
            throw new Error(`${bytes} bytes is too short`);
        if (await cutShortFile(handle, bytes))
            throw new Error("truncated: it ends before the Arrow file footer; was its write cut short?");
        const reader = await (await RecordBatchReader.from(handle)).open();
        const schema = reader.schema as Schema | undefined;
        if (schema == null)
            throw new Error("no schema");
        return { filePath, handle, reader, schema, bytes };
    } catch (error) {
        await handle.close().catch(() => undefined);
        throw new InputError(`not a readable Arrow IPC file: ${filePath} (${arrowErrorCause(error)})`);
    }
}

/** An IPC file opens and ends with the magic "ARROW1": one that opens with it alone was cut short. */
async function cutShortFile(handle: fs.promises.FileHandle, bytes: number): Promise<boolean> {
    const head = Buffer.alloc(6);
    const tail = Buffer.alloc(6);
    await handle.read(head, 0, 6, 0);
    await handle.read(tail, 0, 6, bytes - 6);
    return head.toString("latin1") === "ARROW1" && tail.toString("latin1") !== "ARROW1";
}

/**
 * arrow-js reading past the end of a cut stream fails inside itself ("Cannot read properties
 * of null (reading 'fieldsLength')"): such errors say nothing to a user.
 */
function arrowErrorCause(error: unknown): string {
    if (error instanceof TypeError || error instanceof RangeError)
        return "truncated or not an Arrow IPC file";
    const message = oneLine(errorMessage(error));
    return /^Expected to read \d+ .*but only read \d+/.test(message) ? `truncated: ${message}` : message;
}

async function closeTable(table: OpenedTable): Promise<void> {
    await table.handle.close().catch(() => undefined);
}

/** Record batches one at a time; a batch that fails to decode is an InputError naming the file. */
async function* batchesOf(table: OpenedTable): AsyncGenerator<RecordBatch> {
    try {
        if (table.reader.isFile()) {
            for (let i = 0; i < table.reader.numRecordBatches; i++) {
                const batch = await table.reader.readRecordBatch(i);
                if (batch != null)
                    yield batch;
            }
        } else {
            for await (const batch of table.reader as AsyncRecordBatchStreamReader)
                yield batch;
        }
    } catch (error) {
        if (error instanceof InputError)
            throw error;
        throw new InputError(`corrupt Arrow file: ${table.filePath} (${arrowErrorCause(error)})`);
    }
}

/** Row count of an IPC file from its batch headers only: bodies are not read. */
async function countRows(table: OpenedTable): Promise<{ rows: number; batches: number }> {
    const reader = table.reader;
    if (reader.isFile() && reader.footer != null) {
        let rows = 0;
        let batches = 0;
        for (const block of reader.footer.recordBatches()) {
            const prefix = Buffer.alloc(8);
            await table.handle.read(prefix, 0, 8, block.offset);
            const continuation = prefix.readInt32LE(0) === -1;
            const length = continuation ? prefix.readInt32LE(4) : prefix.readInt32LE(0);
            const metadata = Buffer.alloc(length);
            await table.handle.read(metadata, 0, length, block.offset + (continuation ? 8 : 4));
            const header = Message.decode(metadata).header() as unknown as { length: number | bigint };
            rows += Number(header.length);
            batches++;
        }
        return { rows, batches };
    }
    let rows = 0;
    let batches = 0;
    for await (const batch of batchesOf(table)) {
        rows += batch.numRows;
        batches++;
    }
    return { rows, batches };
}

function infoOf(table: OpenedTable, counts: { rows: number; batches: number }): TableInfo {
    const metadata = Object.fromEntries(table.schema.metadata);
    const version = metadata[SCHEMA_VERSION_KEY];
    return {
        path: table.filePath,
        schemaName: metadata[SCHEMA_NAME_KEY] ?? null,
        schemaVersion: version != null && /^\d+$/.test(version) ? Number(version) : null,
        fields: table.schema.fields.map((f) => ({ name: f.name, type: describeArrowType(f.type), nullable: f.nullable })),
        numRows: counts.rows,
        numBatches: counts.batches,
        bytes: table.bytes,
        format: table.reader.isFile() ? "file" : "stream",
        metadata
    };
}

/** Schema, row count and metadata of any Arrow IPC file, without reading its rows. */
export async function readTableInfo(filePath: string): Promise<TableInfo> {
    const table = await openTable(filePath);
    try {
        return infoOf(table, await countRows(table));
    } finally {
        await closeTable(table);
    }
}

export interface AnyTable extends TableInfo {
    /** Rows as plain objects (nested lists/structs as arrays/objects; exact int64 as numbers). */
    rows: Record<string, unknown>[];
}

export interface ReadAnyTableOptions {
    /** Read only the first N rows (only the batches that hold them are decoded). Defaults to all rows. */
    head?: number;
}

/** Any Arrow IPC file (autoact's or not) as plain rows, for inspection and export. */
export async function readAnyTable(filePath: string, options: ReadAnyTableOptions = {}): Promise<AnyTable> {
    const table = await openTable(filePath);
    try {
        const limit = options.head ?? Infinity;
        const rows: Record<string, unknown>[] = [];
        if (table.reader.isFile()) {
            const counts = await countRows(table);
            if (limit > 0) {
                for await (const batch of batchesOf(table)) {
                    rows.push(...decodeRows(table, batch, Math.min(batch.numRows, limit - rows.length)));
                    if (rows.length >= limit)
                        break;
                }
            }
            return { ...infoOf(table, counts), rows };
        }
        // A stream can be read once: count while collecting the head.
        const counts = { rows: 0, batches: 0 };
        for await (const batch of batchesOf(table)) {
            if (rows.length < limit)
                rows.push(...decodeRows(table, batch, Math.min(batch.numRows, limit - rows.length)));
            counts.rows += batch.numRows;
            counts.batches++;
        }
        return { ...infoOf(table, counts), rows };
    } finally {
        await closeTable(table);
    }
}

/**
 * Rows of any Arrow file, one record batch at a time, as plain objects: for exports
 * and for stages that must not hold a large table in memory.
 */
export async function* iterateAnyTable(filePath: string): AsyncGenerator<Record<string, unknown>[]> {
    const table = await openTable(filePath);
    try {
        for await (const batch of batchesOf(table))
            yield decodeRows(table, batch);
    } finally {
        await closeTable(table);
    }
}

/**
 * Typed rows of an autoact table, one record batch at a time. The file's schema must
 * be `schemaName` (from its metadata; for files without it, every column is checked).
 * Columns the file lacks are null when nullable; extra columns are dropped.
 */
export async function* iterateTable<N extends TableName>(filePath: string, schemaName: N): AsyncGenerator<RowFor<N>[]> {
    const table = await openTable(filePath);
    try {
        const spec = tableSchemas[schemaName] as unknown as TableSchema;
        const missing = checkSchema(table, spec);
        for await (const batch of batchesOf(table)) {
            const rows = decodeRows(table, batch);
            const shaped = rows.map((row) => {
                const out: Record<string, unknown> = {};
                for (const name of Object.keys(spec.columns))
                    out[name] = missing.has(name) ? null : row[name];
                return out;
            });
            yield shaped as RowFor<N>[];
        }
    } finally {
        await closeTable(table);
    }
}

/** Every row of `filePath`, typed as `schemaName`'s rows. See `iterateTable`. */
export async function readTable<N extends TableName>(filePath: string, schemaName: N): Promise<RowFor<N>[]>;
/** Every row of `filePath`, its table taken from the file's metadata. */
export async function readTable(filePath: string): Promise<RowFor<TableName>[]>;
export async function readTable(filePath: string, schemaName?: TableName): Promise<RowFor<TableName>[]> {
    const name = schemaName ?? await detectTableName(filePath);
    const rows: RowFor<TableName>[] = [];
    for await (const batch of iterateTable(filePath, name))
        rows.push(...batch);
    return rows;
}

/** The autoact table name stored in a file's metadata; InputError when it has none. */
export async function detectTableName(filePath: string): Promise<TableName> {
    const table = await openTable(filePath);
    try {
        const name = table.schema.metadata.get(SCHEMA_NAME_KEY);
        if (name == null || !isTableName(name))
            throw new InputError(`${filePath} is not an autoact table (schema metadata "${SCHEMA_NAME_KEY}" is ${name == null ? "absent" : JSON.stringify(name)}); name its table`);
        return name;
    } finally {
        await closeTable(table);
    }
}

/** Checks the file against the table; returns the nullable columns it lacks. */
function checkSchema(table: OpenedTable, spec: TableSchema): Set<string> {
    const metadata = table.schema.metadata;
    const name = metadata.get(SCHEMA_NAME_KEY);
    if (name != null && name !== spec.name)
        throw new InputError(`${table.filePath} holds the table "${name}", not "${spec.name}"`);
    const version = Number(metadata.get(SCHEMA_VERSION_KEY) ?? spec.version);
    if (version > spec.version)
        throw new InputError(`${table.filePath} has ${spec.name} schema version ${version}; this autoact reads up to ${spec.version}`, { hint: "upgrade autoact" });
    const fields = new Map(table.schema.fields.map((f) => [f.name, f]));
    const missing = new Set<string>();
    for (const [column, columnSpec] of Object.entries(spec.columns) as [string, Column][]) {
        const field = fields.get(column);
        if (field == null) {
            if (!columnSpec.nullable)
                throw new InputError(`${table.filePath}: column "${column}" of table ${spec.name} is missing`);
            missing.add(column);
            continue;
        }
        const expected = describeArrowType(arrowType(columnSpec));
        // Dictionary-encoded strings (pandas categoricals, tableFromArrays) read as their values.
        const actual = describeArrowType(DataType.isDictionary(field.type) ? field.type.dictionary : field.type);
        if (stripNullability(expected) !== stripNullability(actual))
            throw new InputError(`${table.filePath}: column "${column}" is ${actual}, table ${spec.name} expects ${expected}`);
    }
    return missing;
}

function stripNullability(type: string): string {
    return type.replace(/\?:/g, ":");
}

/**
 * Concatenates tables with the same schema into `out` (atomically), batch by batch
 * without decoding rows: e.g. the per-batch parts of a resumable stage.
 */
export async function concatTables(paths: readonly string[], out: string): Promise<WriteTableResult> {
    if (paths.length === 0)
        throw new InputError(`concatTables: no input tables for ${out}`);
    const first = await openTable(paths[0]!);
    const schema = first.schema;
    const signature = schemaSignature(schema);
    await closeTable(first);
    const sink = ArrowFileSink.open(out, schema);
    let rows = 0;
    try {
        for (const filePath of paths) {
            const table = await openTable(filePath);
            try {
                if (schemaSignature(table.schema) !== signature)
                    throw new InputError(`cannot concatenate ${filePath}: its schema differs from ${paths[0]}'s`);
                for await (const batch of batchesOf(table)) {
                    rows += batch.numRows;
                    await sink.write(new RecordBatch(schema, batch.data));
                }
            } finally {
                await closeTable(table);
            }
        }
        await sink.close();
    } catch (error) {
        await sink.abort();
        throw error;
    }
    return { path: out, rows, batches: sink.batches, bytes: sink.bytes };
}

function schemaSignature(schema: Schema): string {
    return JSON.stringify([
        schema.fields.map((f) => [f.name, describeArrowType(f.type), f.nullable]),
        schema.metadata.get(SCHEMA_NAME_KEY) ?? null
    ]);
}

/** A batch's rows as objects; a value JavaScript cannot hold (an int64 past 2^53) names the file. */
function decodeRows(table: OpenedTable, batch: RecordBatch, end = batch.numRows): Record<string, unknown>[] {
    try {
        return batchToRows(batch, 0, end);
    } catch (error) {
        throw new InputError(`${table.filePath}: cannot read its rows (${oneLine(errorMessage(error))})`);
    }
}

function oneLine(text: string): string {
    return text.replace(/\s+/g, " ").trim().slice(0, 200);
}
