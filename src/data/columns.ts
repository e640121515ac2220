import {
    Bool, DataType, Field, Float64, Int32, Int64, List, Struct, Utf8
} from "apache-arrow";

/**
 * A small column vocabulary that is the single source of truth for every table:
 * the Arrow schema, the TypeScript row type (`RowOf`) and the write-time validator
 * are all derived from one declaration, so they cannot drift apart.
 */
export type Column =
    | Utf8Column<string, boolean>
    | ScalarColumn<"bool" | "int32" | "int64" | "float64", boolean>
    | ListColumn<Column, boolean>
    | StructColumn<Record<string, Column>, boolean>;

export interface Utf8Column<V extends string = string, N extends boolean = boolean> {
    readonly kind: "utf8";
    readonly nullable: N;
    /** When set, the only values allowed (an enum stored as plain utf8 for easy interop). */
    readonly values?: readonly V[];
}

export interface ScalarColumn<K extends "bool" | "int32" | "int64" | "float64", N extends boolean = boolean> {
    readonly kind: K;
    readonly nullable: N;
}

export interface ListColumn<I extends Column = Column, N extends boolean = boolean> {
    readonly kind: "list";
    readonly nullable: N;
    readonly item: I;
}

export interface StructColumn<F extends Record<string, Column> = Record<string, Column>, N extends boolean = boolean> {
    readonly kind: "struct";
    readonly nullable: N;
    readonly fields: F;
}

/** The JavaScript value of a non-null cell. int64 is read and written as `number` (exact up to 2^53). */
export type ValueOf<C> =
    C extends Utf8Column<infer V, boolean> ? V
        : C extends ScalarColumn<"bool", boolean> ? boolean
            : C extends ScalarColumn<"int32" | "int64" | "float64", boolean> ? number
                : C extends ListColumn<infer I, boolean> ? CellOf<I>[]
                    : C extends StructColumn<infer F, boolean> ? RowOf<F>
                        : never;

export type CellOf<C> = C extends { readonly nullable: true } ? ValueOf<C> | null : ValueOf<C>;

/** The row type of a set of columns: every column is a key; nullable columns admit `null`. */
export type RowOf<F extends Record<string, Column>> = { [K in keyof F]: CellOf<F[K]> };

// Builders. Non-null by default; wrap in `nullable(...)` where a value can be missing.
export const utf8 = (): Utf8Column<string, false> => ({ kind: "utf8", nullable: false });
export const oneOf = <const V extends string>(values: readonly V[]): Utf8Column<V, false> =>
    ({ kind: "utf8", nullable: false, values });
export const bool = (): ScalarColumn<"bool", false> => ({ kind: "bool", nullable: false });
export const int32 = (): ScalarColumn<"int32", false> => ({ kind: "int32", nullable: false });
export const int64 = (): ScalarColumn<"int64", false> => ({ kind: "int64", nullable: false });
export const float64 = (): ScalarColumn<"float64", false> => ({ kind: "float64", nullable: false });
export const list = <I extends Column>(item: I): ListColumn<I, false> => ({ kind: "list", nullable: false, item });
export const struct = <F extends Record<string, Column>>(fields: F): StructColumn<F, false> =>
    ({ kind: "struct", nullable: false, fields });

export type Nullable<C extends Column> = Omit<C, "nullable"> & { readonly nullable: true };
export const nullable = <C extends Column>(column: C): Nullable<C> => ({ ...column, nullable: true });

/** The Arrow data type of a column (list items are named "item", as pyarrow names them). */
export function arrowType(column: Column): DataType {
    switch (column.kind) {
        case "utf8": return new Utf8();
        case "bool": return new Bool();
        case "int32": return new Int32();
        case "int64": return new Int64();
        case "float64": return new Float64();
        case "list": return new List(new Field("item", arrowType(column.item), column.item.nullable));
        case "struct": return new Struct(arrowFields(column.fields));
    }
}

export function arrowFields(columns: Record<string, Column>): Field[] {
    return Object.entries(columns).map(([name, column]) => new Field(name, arrowType(column), column.nullable));
}

/** Short human-readable type, e.g. `list<struct<index: int32, thought: utf8>>`. */
export function describeColumn(column: Column): string {
    switch (column.kind) {
        case "utf8": return column.values != null ? `utf8 (${column.values.join(" | ")})` : "utf8";
        case "list": return `list<${describeColumn(column.item)}${column.item.nullable ? "?" : ""}>`;
        case "struct": return `struct<${Object.entries(column.fields)
            .map(([name, c]) => `${name}${c.nullable ? "?" : ""}: ${describeColumn(c)}`).join(", ")}>`;
        default: return column.kind;
    }
}
