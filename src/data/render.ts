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
 * mode). Long text is cut with "…", newlines shown as "⏎", nested values as compact JSON.
 */
export function renderRows(fields: readonly string[], rows: readonly Record<string, unknown>[], options: RenderOptions = {}, firstRow = 0): string {
    const width = Math.max(40, options.width ?? 120);
    const maxCell = Math.max(4, options.maxCellWidth ?? 40);
    if (rows.length === 0)
        return "(no rows)";
    const cells = rows.map((row) => fields.map((f) => cellText(row[f])));
    const widths = fields.map((f, j) => Math.min(maxCell, Math.max(textWidth(f), ...cells.map((r) => textWidth(r[j]!)))));
    const total = widths.reduce((a, b) => a + b, 0) + 3 * (fields.length - 1);
    if (total <= width) {
        const line = (values: string[]) => values.map((v, j) => pad(truncate(v, widths[j]!), widths[j]!)).join(" │ ").trimEnd();
        return [line([...fields]), widths.map((w) => "─".repeat(w)).join("─┼─"), ...cells.map(line)].join("\n");
    }
    const nameWidth = Math.max(...fields.map(textWidth));
    const valueWidth = Math.max(10, width - nameWidth - 3);
    const blocks = cells.map((row, i) => [
        `-[ row ${firstRow + i} ]-`,
        ...row.map((value, j) => `${pad(fields[j]!, nameWidth)} │ ${truncate(value, valueWidth)}`)
    ].join("\n"));
    return blocks.join("\n");
}

function cellText(value: unknown): string {
    if (value === null || value === undefined)
        return "null";
    if (typeof value === "string")
        return value.replace(/\r?\n/g, "⏎").replace(/\t/g, " ");
    if (Array.isArray(value))
        return `(${value.length}) ${toJson(value)}`;
    if (typeof value === "object" || typeof value === "bigint")
        return toJson(value);
    return String(value);
}

function textWidth(text: string): number {
    let width = 0;
    for (const _ of text)
        width++;
    return width;
}

function truncate(text: string, width: number): string {
    if (textWidth(text) <= width)
        return text;
    return `${Array.from(text).slice(0, Math.max(0, width - 1)).join("")}…`;
}

function pad(text: string, width: number): string {
    return text + " ".repeat(Math.max(0, width - textWidth(text)));
}
