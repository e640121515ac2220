import { InputError } from "../util/errors.js";
import type { Column } from "./columns.js";
import type { TableSchema } from "./schemas.js";

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

/** A row that does not fit its table: names the table, the row index and the column path. */
export class RowValidationError extends InputError {
    readonly table: string;
    readonly row: number;
    readonly column: string;

    constructor(table: string, row: number, column: string, problem: string) {
        super(`table ${table}: row ${row}, column "${column}": ${problem}`);
        this.name = "RowValidationError";
        this.table = table;
        this.row = row;
        this.column = column;
    }
}

/**
 * Checks one row against its table and returns the value Arrow's builders take
 * (int64 as BigInt; a nullable cell left undefined becomes null). Unknown keys are
 * errors, so a misspelt column never vanishes silently.
 */
export function prepareRow(table: TableSchema, row: unknown, index: number): Record<string, unknown> {
    if (!isPlainObject(row))
        throw new RowValidationError(table.name, index, "*", `expected an object, got ${describe(row)}`);
    return prepareStruct(table.columns, row, (column, problem) => {
        throw new RowValidationError(table.name, index, column, problem);
    }, "");
}

type Fail = (column: string, problem: string) => never;

function prepareStruct(columns: Record<string, Column>, value: Record<string, unknown>, fail: Fail, prefix: string): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value))
        if (!Object.hasOwn(columns, key))
            fail(prefix + key, `unknown column (the table has: ${Object.keys(columns).join(", ")})`);
    for (const [name, column] of Object.entries(columns))
        out[name] = prepareCell(column, value[name], fail, prefix + name);
    return out;
}

function prepareCell(column: Column, value: unknown, fail: Fail, at: string): unknown {
    if (value === null || value === undefined) {
        if (column.nullable)
            return null;
        return fail(at, value === undefined ? "missing (the column is not nullable)" : "null in a non-nullable column");
    }
    switch (column.kind) {
        case "utf8":
            if (typeof value !== "string")
                return fail(at, `expected a string, got ${describe(value)}`);
            if (column.values != null && !column.values.includes(value))
                return fail(at, `expected one of ${column.values.join(" | ")}, got ${JSON.stringify(value)}`);
            return value;
        case "bool":
            if (typeof value !== "boolean")
                return fail(at, `expected a boolean, got ${describe(value)}`);
            return value;
        case "int32":
            if (typeof value !== "number" || !Number.isInteger(value) || value < INT32_MIN || value > INT32_MAX)
                return fail(at, `expected an int32, got ${describe(value)}`);
            return value;
        case "int64":
            if (typeof value === "bigint")
                return value;
            if (typeof value !== "number" || !Number.isSafeInteger(value))
                return fail(at, `expected an integer (int64, exact up to 2^53), got ${describe(value)}`);
            return BigInt(value);
        case "float64":
            if (typeof value !== "number")
                return fail(at, `expected a number, got ${describe(value)}`);
            return value;
        case "list":
            if (!Array.isArray(value))
                return fail(at, `expected an array, got ${describe(value)}`);
            return value.map((item, i) => prepareCell(column.item, item, fail, `${at}[${i}]`));
        case "struct":
            if (!isPlainObject(value))
                return fail(at, `expected an object, got ${describe(value)}`);
            return prepareStruct(column.fields, value, fail, `${at}.`);
    }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
    return typeof value === "object" && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
    if (Array.isArray(value))
        return "an array";
    if (value === null)
        return "null";
    if (typeof value === "string")
        return `${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value)} (string)`;
    if (typeof value === "object")
        return "an object";
    return `${String(value)} (${typeof value})`;
}
