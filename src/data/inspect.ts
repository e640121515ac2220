import { InputError } from "../util/errors.js";
import { toJson } from "./convert.js";
import { checkExportTarget, checkShapeable, exportJsonl, shapeSample, type ExportJsonlResult, type ExportShape } from "./export.js";
import { renderRows, renderSchema } from "./render.js";
import { iterateAnyTable, readAnyTable, readTableInfo, type TableInfo } from "./table-io.js";

export type InspectFormat = "table" | "jsonl" | "json";
export const inspectFormats: readonly InspectFormat[] = ["table", "jsonl", "json"];

export interface InspectOptions {
    /** The Arrow file to inspect. */
    file: string;
    /** Rows to print. Defaults to 10 for `table`, every row for `jsonl` and `json`. */
    head?: number;
    /** `table`: schema, row count and rows for a terminal; `jsonl`: one JSON row per line; `json`: one document. Defaults to table. */
    format?: InspectFormat;
    /** Also write every row (not only the head) to this file: JSONL, or a JSON array for `.json`. Defaults to no export. */
    exportTo?: string;
    /** alpaca or ShareGPT records instead of raw rows (samples tables only). Defaults to raw rows. */
    shape?: ExportShape;
    /** Only this agent's sample rows. Required with `shape` when printing; optional with `exportTo` (one file per agent without it). */
    agent?: string;
    /** Terminal width for `table`. Defaults to the width of stdout, else 120. */
    width?: number;
    /** Where printed text goes. Defaults to process.stdout (waiting for it to drain). */
    write?: (text: string) => void | Promise<void>;
}

export interface InspectResult {
    rowsPrinted: number;
    numRows: number;
    exported?: ExportJsonlResult;
}

/** `autoact inspect`: prints an Arrow table's schema and rows, and exports it as JSONL. */
export async function inspectTable(options: InspectOptions): Promise<InspectResult> {
    const format = options.format ?? "table";
    if (!inspectFormats.includes(format))
        throw new InputError(`--format must be one of ${inspectFormats.join(", ")}; got "${format}"`);
    if (options.head != null && !(Number.isInteger(options.head) && options.head >= 0))
        throw new InputError(`--head must be a whole number >= 0; got ${options.head}`);
    const write = options.write ?? writeStdout;
    const printsShaped = options.shape != null && format !== "table";
    if (options.shape != null) {
        await checkShapeable(options.file, options.agent);
        if (printsShaped && options.agent == null)
            throw new InputError("--shape with --format jsonl|json prints one agent's samples: add --agent plan|tool|reflect (or use --export FILE for one file per agent)");
    } else if (options.agent != null)
        await checkShapeable(options.file, options.agent, "--agent");

    // The export's folder is checked before anything is printed: a bad --export prints nothing.
    if (options.exportTo != null)
        checkExportTarget(options.exportTo, options.file, options.shape != null && options.agent == null);

    const keep = (row: Record<string, unknown>) => options.agent == null || row.agent === options.agent;
    const present = (row: Record<string, unknown>) => printsShaped ? shapeSample(row, options.shape!) : row;
    let rowsPrinted = 0;
    let numRows: number;

    if (format === "table") {
        const head = options.head ?? 10;
        let table: TableInfo & { rows: Record<string, unknown>[] };
        if (options.agent == null)
            table = await readAnyTable(options.file, { head });
        else {
            table = { ...await readTableInfo(options.file), rows: [] };
            outer: for await (const rows of iterateAnyTable(options.file)) {
                for (const row of rows) {
                    if (table.rows.length >= head)
                        break outer;
                    if (keep(row))
                        table.rows.push(row);
                }
            }
        }
        numRows = table.numRows;
        const rows = table.rows;
        rowsPrinted = rows.length;
        await write(`${renderSchema(table)}\n\n`);
        if (head > 0) {
            const total = table.numRows.toLocaleString("en-US");
            await write(`${options.agent != null ? `first ${plural(rows.length, "row")} of agent ${options.agent} (${total} rows in all)`
                : rows.length < table.numRows ? `first ${rows.length} of ${total} rows` : `all ${plural(rows.length, "row")}`}:\n`);
            await write(`${renderRows(table.fields.map((f) => f.name), rows, { width: options.width ?? process.stdout.columns ?? 120 })}\n`);
        }
    } else if (format === "jsonl") {
        numRows = (await readTableInfo(options.file)).numRows;
        const limit = options.head ?? Infinity;
        outer: for await (const rows of iterateAnyTable(options.file)) {
            for (const row of rows) {
                if (rowsPrinted >= limit)
                    break outer;
                if (!keep(row))
                    continue;
                await write(`${toJson(present(row))}\n`);
                rowsPrinted++;
            }
        }
    } else {
        const table = await readAnyTable(options.file, { head: options.agent == null ? options.head : undefined });
        numRows = table.numRows;
        const rows = table.rows.filter(keep).slice(0, options.head ?? Infinity).map(present);
        rowsPrinted = rows.length;
        const { rows: _, ...info } = table;
        await write(`${toJson({ ...info, rows }, 2)}\n`);
    }

    let exported: ExportJsonlResult | undefined;
    if (options.exportTo != null) {
        exported = await exportJsonl({ input: options.file, output: options.exportTo, shape: options.shape, agent: options.agent });
        if (format === "table")
            for (const file of exported.files)
                await write(`exported ${file.rows} row${file.rows === 1 ? "" : "s"} to ${file.path}\n`);
    }
    return { rowsPrinted, numRows, ...(exported != null ? { exported } : {}) };
}

function plural(count: number, noun: string): string {
    return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

async function writeStdout(text: string): Promise<void> {
    if (!process.stdout.write(text))
        await new Promise<void>((resolve) => process.stdout.once("drain", () => resolve()));
}
