import { DataType, makeVector, type Data, type Field, type RecordBatch } from "apache-arrow";

/**
 * Arrow values to plain JavaScript: strings, numbers, booleans, arrays and objects.
 * Works for any Arrow file (not only autoact's), so `inspect` can show foreign tables.
 * int64 becomes a number when it is exact (|v| <= 2^53), else stays a bigint, which
 * `toJson` writes as a bare integer.
 */
export function toPlain(value: unknown, type: DataType): unknown {
    if (value === null || value === undefined)
        return null;
    if (typeof value === "bigint")
        return bigintToPlain(value);
    if (DataType.isList(type) || DataType.isFixedSizeList(type) || DataType.isLargeList(type)) {
        const itemType = (type.children[0] as Field).type;
        const out: unknown[] = [];
        for (const item of value as Iterable<unknown>)
            out.push(toPlain(item, itemType));
        return out;
    }
    if (DataType.isStruct(type)) {
        const row = value as Record<string, unknown>;
        const out: Record<string, unknown> = {};
        for (const field of type.children)
            out[field.name] = toPlain(row[field.name], field.type);
        return out;
    }
    if (DataType.isMap(type)) {
        const out: Record<string, unknown> = {};
        const valueType = (type.children[0]!.type.children[1] as Field).type;
        for (const [k, v] of value as Iterable<[unknown, unknown]>)
            out[String(k)] = toPlain(v, valueType);
        return out;
    }
    if (DataType.isDictionary(type))
        return toPlain(value, type.dictionary);
    if (value instanceof Uint8Array)
        return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64");
    if (value instanceof Date)
        return value.toISOString();
    if (ArrayBuffer.isView(value))
        return Array.from(value as unknown as ArrayLike<number | bigint>, (v) => typeof v === "bigint" ? bigintToPlain(v) : v);
    if (typeof value === "object" && typeof (value as { toJSON?: unknown }).toJSON === "function")
        return (value as { toJSON(): unknown }).toJSON();
    return value;
}

function bigintToPlain(value: bigint): number | bigint {
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
}

/** The rows [start, end) of a record batch as plain objects, decoded column by column. */
export function batchToRows(batch: RecordBatch, start = 0, end = batch.numRows): Record<string, unknown>[] {
    end = Math.min(end, batch.numRows);
    const count = Math.max(0, end - start);
    const rows: Record<string, unknown>[] = Array.from({ length: count }, () => ({}));
    batch.schema.fields.forEach((field, j) => {
        const values = decodeData(batch.data.children[j]!, start, end);
        for (let i = 0; i < count; i++)
            rows[i]![field.name] = values[i];
    });
    return rows;
}

/**
 * Values [start, end) of one Arrow Data, straight from its buffers: several times
 * faster than `vector.get(i)` for strings and nested lists of structs, which is what
 * trajectories are made of. Types not handled here go through `toPlain`.
 */
export function decodeData(data: Data, start: number, end: number): unknown[] {
    const type = data.type;
    const out: unknown[] = new Array(Math.max(0, end - start));
    const hasNulls = data.nullCount > 0;
    if (DataType.isUtf8(type)) {
        const offsets = data.valueOffsets as Int32Array;
        const values = data.values as Uint8Array;
        const bytes = Buffer.from(values.buffer, values.byteOffset, values.byteLength);
        for (let i = start; i < end; i++)
            out[i - start] = hasNulls && !data.getValid(i) ? null : bytes.toString("utf8", offsets[i], offsets[i + 1]);
        return out;
    }
    if ((DataType.isInt(type) && type.bitWidth <= 32) || (DataType.isFloat(type) && type.precision !== 0)) {
        const values = data.values as ArrayLike<number>;
        for (let i = start; i < end; i++)
            out[i - start] = hasNulls && !data.getValid(i) ? null : values[i];
        return out;
    }
    if (DataType.isInt(type) && type.bitWidth === 64) {
        const values = data.values as unknown as ArrayLike<bigint>;
        for (let i = start; i < end; i++)
            out[i - start] = hasNulls && !data.getValid(i) ? null : bigintToPlain(values[i]!);
        return out;
    }
    if (DataType.isBool(type)) {
        const values = data.values as Uint8Array;
        for (let i = start; i < end; i++) {
            const bit = data.offset + i;
            out[i - start] = hasNulls && !data.getValid(i) ? null : (values[bit >> 3]! & (1 << (bit & 7))) !== 0;
        }
        return out;
    }
    if (DataType.isList(type)) {
        const offsets = data.valueOffsets as Int32Array;
        const base = offsets[start]!;
        const items = end > start ? decodeData(data.children[0]!, base, offsets[end]!) : [];
        for (let i = start; i < end; i++)
            out[i - start] = hasNulls && !data.getValid(i) ? null : items.slice(offsets[i]! - base, offsets[i + 1]! - base);
        return out;
    }
    if (DataType.isStruct(type)) {
        const columns = type.children.map((field, j) => [field.name, decodeData(data.children[j]!, start, end)] as const);
        for (let i = start; i < end; i++) {
            if (hasNulls && !data.getValid(i)) {
                out[i - start] = null;
                continue;
            }
            const row: Record<string, unknown> = {};
            for (const [name, values] of columns)
                row[name] = values[i - start];
            out[i - start] = row;
        }
        return out;
    }
    const vector = makeVector(data);
    for (let i = start; i < end; i++)
        out[i - start] = toPlain(vector.get(i), type);
    return out;
}

/** JSON text for plain values; bigints are written as bare integers (JSON.stringify would throw). */
export function toJson(value: unknown, indent?: number): string {
    if (!containsBigint(value))
        return JSON.stringify(value, null, indent);
    return stringifyWithBigint(value, indent == null ? "" : " ".repeat(indent), "");
}

function stringifyWithBigint(value: unknown, unit: string, current: string): string {
    if (typeof value === "bigint")
        return value.toString();
    if (value === null || typeof value !== "object")
        return JSON.stringify(value) ?? "null";
    const inner = current + unit;
    const open = unit === "" ? "" : `\n${inner}`;
    const close = unit === "" ? "" : `\n${current}`;
    const separator = unit === "" ? "," : `,\n${inner}`;
    if (Array.isArray(value)) {
        if (value.length === 0)
            return "[]";
        return `[${open}${value.map((v) => stringifyWithBigint(v, unit, inner)).join(separator)}${close}]`;
    }
    const entries = Object.entries(value).filter(([, v]) => v !== undefined);
    if (entries.length === 0)
        return "{}";
    const colon = unit === "" ? ":" : ": ";
    return `{${open}${entries.map(([k, v]) => `${JSON.stringify(k)}${colon}${stringifyWithBigint(v, unit, inner)}`).join(separator)}${close}}`;
}

function containsBigint(value: unknown): boolean {
    if (typeof value === "bigint")
        return true;
    if (Array.isArray(value))
        return value.some(containsBigint);
    if (value !== null && typeof value === "object")
        return Object.values(value).some(containsBigint);
    return false;
}

/** Arrow type as text, e.g. `List<Struct<{index:Int32, ...}>>`, made a bit shorter for terminals. */
export function describeArrowType(type: DataType): string {
    if (DataType.isList(type) || DataType.isLargeList(type))
        return `list<${describeArrowType((type.children[0] as Field).type)}>`;
    if (DataType.isStruct(type))
        return `struct<${type.children.map((f) => `${f.name}${f.nullable ? "?" : ""}: ${describeArrowType(f.type)}`).join(", ")}>`;
    const text = String(type);
    return text === "Utf8" ? "utf8" : text === "Bool" ? "bool" : text.toLowerCase();
}
