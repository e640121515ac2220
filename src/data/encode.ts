import { makeData, type Data, type DataType, type Field, type List, type Struct } from "apache-arrow";
import type { Column } from "./columns.js";

/**
 * Validated cells (see `prepareRow`) to Arrow Data, written straight into typed
 * arrays: strings go into one buffer with `Buffer.write`, which is several times
 * faster than Arrow's generic builders (a TextEncoder call and a resize per value).
 * `type` must be `arrowType(column)`.
 */
export function encodeColumn(column: Column, type: DataType, values: readonly unknown[]): Data {
    const length = values.length;
    const { nullBitmap, nullCount } = validity(values);
    switch (column.kind) {
        case "utf8": {
            const offsets = new Int32Array(length + 1);
            let total = 0;
            for (let i = 0; i < length; i++) {
                const value = values[i];
                if (typeof value === "string")
                    total += Buffer.byteLength(value, "utf8");
                offsets[i + 1] = total;
            }
            const bytes = Buffer.allocUnsafe(total);
            for (let i = 0; i < length; i++) {
                const value = values[i];
                if (typeof value === "string")
                    bytes.write(value, offsets[i]!, "utf8");
            }
            return makeData({ type, length, nullCount, nullBitmap, valueOffsets: offsets, data: new Uint8Array(bytes.buffer, bytes.byteOffset, total) } as never);
        }
        case "bool": {
            const bits = new Uint8Array((length + 7) >> 3);
            for (let i = 0; i < length; i++)
                if (values[i] === true)
                    bits[i >> 3]! |= 1 << (i & 7);
            return makeData({ type, length, nullCount, nullBitmap, data: bits } as never);
        }
        case "int32": {
            const data = new Int32Array(length);
            for (let i = 0; i < length; i++)
                data[i] = (values[i] as number | null) ?? 0;
            return makeData({ type, length, nullCount, nullBitmap, data } as never);
        }
        case "float64": {
            const data = new Float64Array(length);
            for (let i = 0; i < length; i++)
                data[i] = (values[i] as number | null) ?? 0;
            return makeData({ type, length, nullCount, nullBitmap, data } as never);
        }
        case "int64": {
            const data = new BigInt64Array(length);
            for (let i = 0; i < length; i++)
                data[i] = (values[i] as bigint | null) ?? 0n;
            return makeData({ type, length, nullCount, nullBitmap, data } as never);
        }
        case "list": {
            const offsets = new Int32Array(length + 1);
            const items: unknown[] = [];
            for (let i = 0; i < length; i++) {
                const value = values[i] as unknown[] | null;
                if (value != null)
                    for (const item of value)
                        items.push(item);
                offsets[i + 1] = items.length;
            }
            const itemType = ((type as List).children[0] as Field).type;
            const child = encodeColumn(column.item, itemType, items);
            return makeData({ type, length, nullCount, nullBitmap, valueOffsets: offsets, child } as never);
        }
        case "struct": {
            const fields = (type as Struct).children;
            const children = Object.entries(column.fields).map(([name, fieldColumn], j) =>
                encodeColumn(fieldColumn, fields[j]!.type, values.map((v) => v == null ? placeholder(fieldColumn) : (v as Record<string, unknown>)[name])));
            return makeData({ type, length, nullCount, nullBitmap, children } as never);
        }
    }
}

/** What fills the fields of a null struct, so non-nullable children hold no nulls. */
function placeholder(column: Column): unknown {
    if (column.nullable)
        return null;
    switch (column.kind) {
        case "utf8": return "";
        case "bool": return false;
        case "int64": return 0n;
        case "int32":
        case "float64": return 0;
        case "list": return [];
        case "struct": return Object.fromEntries(Object.entries(column.fields).map(([name, c]) => [name, placeholder(c)]));
    }
}

function validity(values: readonly unknown[]): { nullBitmap: Uint8Array; nullCount: number } {
    let nullCount = 0;
    for (const value of values)
        if (value == null)
            nullCount++;
    if (nullCount === 0)
        return { nullBitmap: new Uint8Array(0), nullCount };
    const bitmap = new Uint8Array((values.length + 7) >> 3);
    for (let i = 0; i < values.length; i++)
        if (values[i] != null)
            bitmap[i >> 3]! |= 1 << (i & 7);
    return { nullBitmap: bitmap, nullCount };
}
