import { toJson } from "./convert.js";
import type { Column } from "./columns.js";
import { isTableName, tableSchemas } from "./schemas.js";
import type { TableInfo } from "./table-io.js";

export interface RenderOptions {
    /** Terminal width in characters. Defaults to 120. */
    width?: number;
    /** Widest a column may get in the horizontal layout. Defaults to 40. */
    maxCellWidth?: number;
}

/** The header `inspect` prints: file, table name and version, row count, columns and types. */
export function renderSchema(info: TableInfo): string {
    const lines = [
        `file:    ${info.path} (${info.bytes.toLocaleString("en-US")} bytes, Arrow IPC ${info.format})`,
        `table:   ${info.schemaName == null ? "(not an autoact table)" : `${info.schemaName} (schema version ${info.schemaVersion ?? "?"})`}`,
        `rows:    ${info.numRows.toLocaleString("en-US")} in ${info.numBatches} record batch${info.numBatches === 1 ? "" : "es"}`,
        `columns: ${info.fields.length}`
    ];
    const nameWidth = Math.max(...info.fields.map((f) => f.name.length), 0);
    const known = info.schemaName != null && isTableName(info.schemaName) ? tableSchemas[info.schemaName].columns as Record<string, Column> : {};
    for (const field of info.fields) {
        const column = known[field.name];
        const values = column?.kind === "utf8" && column.values != null ? `  one of: ${column.values.join(" | ")}` : "";
        lines.push(`  ${field.name.padEnd(nameWidth)}  ${field.type}${field.nullable ? "  (nullable)" : ""}${values}`);
    }
    return lines.join("\n");
}

/**
 * Rows for a terminal: a horizontal table when the columns fit the width, otherwise
 * one block per row (`-[ row 3 ]-` then `column | value` lines, like psql's expanded
 * mode). Long text is cut with "…", newlines shown as "⏎", other control characters as
 * ␍ ␛ … (never sent to the terminal), null as "∅", nested values as compact JSON; CJK and
 * emoji count as two columns.
 */
export function renderRows(fields: readonly string[], rows: readonly Record<string, unknown>[], options: RenderOptions = {}, firstRow = 0): string {
    const width = Math.max(40, options.width ?? 120);
    const maxCell = Math.max(4, options.maxCellWidth ?? 40);
    if (rows.length === 0)
        return "(no rows)";
    const cells = rows.map((row) => fields.map((f) => cellText(row[f])));
    const names = fields.map(visible);
    const widths = names.map((f, j) => Math.min(maxCell, Math.max(textWidth(f), ...cells.map((r) => textWidth(r[j]!)))));
    const total = widths.reduce((a, b) => a + b, 0) + 3 * (fields.length - 1);
    if (total <= width) {
        const line = (values: string[]) => values.map((v, j) => pad(truncate(v, widths[j]!), widths[j]!)).join(" │ ").trimEnd();
        return [line(names), widths.map((w) => "─".repeat(w)).join("─┼─"), ...cells.map(line)].join("\n");
    }
    const nameWidth = Math.max(...names.map(textWidth));
    const valueWidth = Math.max(10, width - nameWidth - 3);
    const blocks = cells.map((row, i) => [
        `-[ row ${firstRow + i} ]-`,
        ...row.map((value, j) => `${pad(names[j]!, nameWidth)} │ ${truncate(value, valueWidth)}`)
    ].join("\n"));
    return blocks.join("\n");
}

/** What a null cell shows: not the word "null", which a string may hold. */
const NULL_CELL = "∅";

function cellText(value: unknown): string {
    if (value === null || value === undefined)
        return NULL_CELL;
    if (typeof value === "string")
        return value === NULL_CELL ? `"${value}"` : visible(value.replace(/\r?\n/g, "⏎").replace(/\t/g, " "));
    if (Array.isArray(value))
        return `(${value.length}) ${visible(toJson(value))}`;
    if (typeof value === "object" || typeof value === "bigint")
        return visible(toJson(value));
    return String(value);
}

/**
 * Control characters shown, not obeyed: web and corpus text carries CRs and ESC sequences
 * that would move the cursor or recolor the terminal. C0 as their control pictures (␍, ␛),
 * DEL and C1 as \u escapes.
 */
function visible(text: string): string {
    return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => {
        const code = c.charCodeAt(0);
        return code < 0x20 ? String.fromCharCode(0x2400 + code) : `\\u${code.toString(16).padStart(4, "0")}`;
    });
}

/** Terminal columns of one code point: 0 for combining marks and joiners, 2 for wide (CJK, emoji), else 1. */
function charWidth(char: string): number {
    if (/[\p{Mn}\p{Me}\u200b-\u200f\ufe00-\ufe0f]/u.test(char))
        return 0;
    const code = char.codePointAt(0)!;
    const wide = /\p{Emoji_Presentation}/u.test(char) ||
        (code >= 0x1100 && code <= 0x115f) || (code >= 0x2e80 && code <= 0xa4cf && code !== 0x303f) ||
        (code >= 0xac00 && code <= 0xd7a3) || (code >= 0xf900 && code <= 0xfaff) || (code >= 0xfe30 && code <= 0xfe4f) ||
        (code >= 0xff00 && code <= 0xff60) || (code >= 0xffe0 && code <= 0xffe6) || (code >= 0x20000 && code <= 0x3fffd);
    return wide ? 2 : 1;
}

function textWidth(text: string): number {
    let width = 0;
    for (const char of text)
        width += charWidth(char);
    return width;
}

/** Cuts `text` to `width` columns, "…" marking the cut. */
function truncate(text: string, width: number): string {
    if (textWidth(text) <= width)
        return text;
    let kept = "";
    let used = 0;
    for (const char of text) {
        const w = charWidth(char);
        if (used + w > width - 1)
            break;
        kept += char;
        used += w;
    }
    return `${kept}…`;
}

function pad(text: string, width: number): string {
    return text + " ".repeat(Math.max(0, width - textWidth(text)));
}
