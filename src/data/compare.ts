export interface CellDifference {
    row: number;
    /** Path inside the row, e.g. `steps[2].observation`; `*` for a whole missing/extra row. */
    column: string;
    expected: unknown;
    actual: unknown;
}

/**
 * Every differing cell between two row lists (not just the first), for tests and
 * round-trip checks. Numbers compare with Object.is (NaN equals NaN, 0 differs
 * from -0); a bigint equals the number of the same value.
 */
export function diffRows(expected: readonly unknown[], actual: readonly unknown[]): CellDifference[] {
    const differences: CellDifference[] = [];
    const count = Math.max(expected.length, actual.length);
    for (let row = 0; row < count; row++) {
        if (row >= expected.length || row >= actual.length) {
            differences.push({ row, column: "*", expected: expected[row], actual: actual[row] });
            continue;
        }
        diffValue(expected[row], actual[row], "", (column, e, a) => differences.push({ row, column, expected: e, actual: a }));
    }
    return differences;
}

/** The differences as text, one line each, capped at `limit` lines. */
export function formatDifferences(differences: readonly CellDifference[], limit = 50): string {
    const lines = differences.slice(0, limit).map((d) =>
        `row ${d.row}, ${d.column || "(row)"}: expected ${show(d.expected)}, got ${show(d.actual)}`);
    if (differences.length > limit)
        lines.push(`... and ${differences.length - limit} more`);
    return lines.join("\n");
}

function diffValue(expected: unknown, actual: unknown, at: string, report: (column: string, e: unknown, a: unknown) => void): void {
    if (Array.isArray(expected) && Array.isArray(actual)) {
        if (expected.length !== actual.length)
            report(`${at}.length`, expected.length, actual.length);
        for (let i = 0; i < Math.min(expected.length, actual.length); i++)
            diffValue(expected[i], actual[i], `${at}[${i}]`, report);
        return;
    }
    if (isObject(expected) && isObject(actual)) {
        const keys = new Set([...Object.keys(expected), ...Object.keys(actual)]);
        for (const key of keys)
            diffValue(expected[key], actual[key], at === "" ? key : `${at}.${key}`, report);
        return;
    }
    if (!sameScalar(expected, actual))
        report(at, expected, actual);
}

function sameScalar(a: unknown, b: unknown): boolean {
    if (typeof a === "bigint" || typeof b === "bigint") {
        const x = asBigint(a);
        const y = asBigint(b);
        return x != null && x === y;
    }
    return Object.is(a, b);
}

function asBigint(value: unknown): bigint | null {
    if (typeof value === "bigint")
        return value;
    return typeof value === "number" && Number.isInteger(value) ? BigInt(value) : null;
}

function isObject(value: unknown): value is Record<string, unknown> {
    return typeof value === "object" && value !== null && !Array.isArray(value);
}

function show(value: unknown): string {
    const text = typeof value === "bigint" ? `${value}n` : value === undefined ? "(absent)" : JSON.stringify(value);
    return text.length > 80 ? `${text.slice(0, 80)}...` : text;
}
