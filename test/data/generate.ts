import type { Column } from "../../src/data/columns.js";
import type { TableSchema } from "../../src/data/schemas.js";

/** A small seeded PRNG (mulberry32), so generated tables are the same on every run. */
export function random(seed: number): () => number {
    let a = seed >>> 0;
    return () => {
        a = (a + 0x6d2b79f5) >>> 0;
        let t = a;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}

const samples = [
    "", "plain", "ünïcödé 数据 🤖 emoji", "line one\nline two\ttab", "quote \" and \\ backslash",
    "\u0000nul inside", "Ω≈ç√∫", "right-to-left עברית"
];

/**
 * Rows for any table, exercising what a round trip can get wrong: nulls in every
 * nullable column, empty lists, unicode, control characters, long strings, extreme numbers.
 */
export function generateRows(table: TableSchema, count: number, seed = 1): Record<string, unknown>[] {
    const rand = random(seed);
    const rows: Record<string, unknown>[] = [];
    for (let i = 0; i < count; i++)
        rows.push(generateStruct(table.columns, rand, i));
    return rows;
}

function generateStruct(columns: Record<string, Column>, rand: () => number, i: number): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [name, column] of Object.entries(columns))
        out[name] = generateCell(column, rand, i);
    return out;
}

function generateCell(column: Column, rand: () => number, i: number): unknown {
    // Row 0: every nullable cell null; row 1: none null; later rows: random.
    if (column.nullable && (i === 0 || (i > 1 && rand() < 0.3)))
        return null;
    const pick = <T>(values: readonly T[]) => values[Math.floor(rand() * values.length)]!;
    switch (column.kind) {
        case "utf8":
            if (column.values != null)
                return pick(column.values);
            if (i === 2)
                return "long ".repeat(20_000) + "end";
            return pick(samples) + (rand() < 0.5 ? ` #${i}` : "");
        case "bool":
            return rand() < 0.5;
        case "int32":
            return i === 1 ? 2 ** 31 - 1 : i === 2 ? -(2 ** 31) : Math.floor(rand() * 2000) - 1000;
        case "int64":
            return i === 1 ? Number.MAX_SAFE_INTEGER : i === 2 ? -Number.MAX_SAFE_INTEGER : Math.floor(rand() * 1e12);
        case "float64":
            return i === 1 ? 1.7976931348623157e308 : i === 2 ? 5e-324 : i === 3 ? -0.1 : rand() * 1000;
        case "list": {
            // Row 0 and 3: empty lists.
            const length = i === 0 || i === 3 ? 0 : 1 + Math.floor(rand() * 4);
            return Array.from({ length }, () => generateCell(column.item, rand, i));
        }
        case "struct":
            return generateStruct(column.fields, rand, i);
    }
}
