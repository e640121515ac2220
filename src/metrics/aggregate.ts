/** Arithmetic mean; 0 for no values (so empty groups show 0, not NaN, in reports). */
export function mean(values: readonly number[]): number {
    if (values.length === 0)
        return 0;
    let sum = 0;
    for (const v of values)
        sum += v;
    return sum / values.length;
}

export interface GroupStats {
    group: string;
    count: number;
    /** The mean of each metric over the group's rows. */
    means: Record<string, number>;
}

/**
 * Means of the named numeric fields per group, plus an "overall" row last. Groups are
 * listed in first-seen order. `groupOf` returning undefined puts a row in "overall" only.
 */
export function meanByGroup<T>(rows: readonly T[], options: {
    /** The group a row belongs to (a level, a grade). */
    groupOf: (row: T) => string | undefined;
    /** The metrics to average: name -> value of a row (booleans count as 0/1). */
    metrics: Record<string, (row: T) => number | boolean>;
    /** Name of the all-rows group. Defaults to "overall". */
    overallName?: string;
}): GroupStats[] {
    const { groupOf, metrics, overallName = "overall" } = options;
    const groups = new Map<string, T[]>();
    for (const row of rows) {
        const group = groupOf(row);
        if (group === undefined)
            continue;
        let list = groups.get(group);
        if (list == null)
            groups.set(group, list = []);
        list.push(row);
    }
    const stats = (group: string, list: readonly T[]): GroupStats => ({
        group,
        count: list.length,
        means: Object.fromEntries(Object.entries(metrics).map(([name, fn]) => [name, mean(list.map((r) => Number(fn(r))))]))
    });
    return [...[...groups].map(([group, list]) => stats(group, list)), stats(overallName, rows)];
}
