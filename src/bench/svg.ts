/**
 * Hand-written SVG charts (no dependency): horizontal bar charts on a log or linear axis and
 * line charts. Plain SVG 1.1 with inline attributes only, so GitHub renders the files as
 * images.
 */

const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
const FONT = `font-family="Helvetica, Arial, sans-serif"`;

export function colorOf(index: number): string {
    return PALETTE[index % PALETTE.length]!;
}

/** Line styles after the palette's colours run out: series 1 and 11 share a colour, not a dash. */
const DASHES = ["", "6 3", "2 2", "8 3 2 3"];

export function dashOf(index: number): string {
    return DASHES[Math.floor(index / PALETTE.length) % DASHES.length]!;
}

export function escapeXml(text: string): string {
    return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** 1234.5 -> "1.23k"; 12.3 -> "12.3". */
export function formatValue(value: number): string {
    if (!Number.isFinite(value))
        return "-";
    const abs = Math.abs(value);
    if (abs >= 1e6)
        return `${(value / 1e6).toPrecision(3)}M`;
    if (abs >= 1e4)
        return `${(value / 1e3).toPrecision(3)}k`;
    if (abs >= 100)
        return value.toFixed(0);
    return value.toPrecision(3);
}

export interface Bar {
    series: string;
    value: number;
    /** Standard deviation, drawn as a whisker. */
    error?: number;
}

export interface BarGroup {
    label: string;
    bars: Bar[];
}

export interface BarChartOptions {
    title: string;
    /** Axis label, e.g. "tokens/s (log scale)". */
    unit: string;
    groups: BarGroup[];
    /** Log axis (values spanning orders of magnitude, CPU beside GPU). Defaults to true. */
    log?: boolean;
    width?: number;
}

/** Horizontal grouped bars: one group per label, one bar per series, a legend on top. */
export function barChart(options: BarChartOptions): string {
    const width = options.width ?? 820;
    const series = [...new Set(options.groups.flatMap((g) => g.bars.map((b) => b.series)))];
    const labelWidth = Math.min(300, 20 + 6.2 * Math.max(10, ...options.groups.map((g) => g.label.length)));
    const left = labelWidth;
    const right = width - 70;
    const barH = 14;
    const legendRows = Math.ceil(series.length / 4);
    const top = 40 + legendRows * 18;
    const values = options.groups.flatMap((g) => g.bars.map((b) => b.value + (b.error ?? 0))).filter((v) => v > 0);
    const log = options.log ?? true;
    const maxV = values.length > 0 ? Math.max(...values) : 1;
    const minV = values.length > 0 ? Math.min(...options.groups.flatMap((g) => g.bars.map((b) => b.value)).filter((v) => v > 0)) : 1;
    const lo = log ? 10 ** Math.floor(Math.log10(Math.max(1e-9, minV))) : 0;
    const hi = log ? 10 ** Math.ceil(Math.log10(maxV * 1.0001)) : niceCeil(maxV);
    const x = (v: number) => {
        if (log)
            return left + ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo) || 1)) * (right - left);
        return left + (v / (hi || 1)) * (right - left);
    };
    const parts: string[] = [];
    let y = top;
    const rows: string[] = [];
    for (const group of options.groups) {
        const groupTop = y;
        for (const bar of group.bars) {
            const color = colorOf(series.indexOf(bar.series));
            const w = Math.max(1, x(bar.value) - left);
            rows.push(`<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${barH - 2}" fill="${color}"><title>${escapeXml(`${group.label} · ${bar.series}: ${formatValue(bar.value)}${bar.error ? ` ± ${formatValue(bar.error)}` : ""}`)}</title></rect>`);
            if (bar.error != null && bar.error > 0 && bar.value > 0) {
                const x0 = x(Math.max(bar.value - bar.error, log ? lo : 0));
                const x1 = x(bar.value + bar.error);
                const cy = y + (barH - 2) / 2;
                rows.push(`<line x1="${x0.toFixed(1)}" y1="${cy}" x2="${x1.toFixed(1)}" y2="${cy}" stroke="#333" stroke-width="1"/>`);
            }
            rows.push(`<text x="${(x(bar.value + (bar.error ?? 0)) + 4).toFixed(1)}" y="${y + barH - 4}" font-size="10" ${FONT} fill="#333">${escapeXml(formatValue(bar.value))}</text>`);
            y += barH;
        }
        rows.push(`<text x="${left - 8}" y="${(groupTop + (y - groupTop) / 2 + 4).toFixed(1)}" font-size="11" ${FONT} text-anchor="end" fill="#111">${escapeXml(group.label)}</text>`);
        y += 10;
    }
    const bottom = y + 4;
    const height = bottom + 36;
    // grid and ticks
    const ticks = log ? logTicks(lo, hi) : linearTicks(hi);
    for (const t of ticks) {
        const tx = x(t).toFixed(1);
        parts.push(`<line x1="${tx}" y1="${top - 4}" x2="${tx}" y2="${bottom}" stroke="#ddd" stroke-width="1"/>`);
        parts.push(`<text x="${tx}" y="${bottom + 14}" font-size="10" ${FONT} text-anchor="middle" fill="#555">${escapeXml(formatTick(t))}</text>`);
    }
    parts.push(`<line x1="${left}" y1="${top - 4}" x2="${left}" y2="${bottom}" stroke="#333" stroke-width="1"/>`);
    parts.push(`<text x="${((left + right) / 2).toFixed(1)}" y="${bottom + 30}" font-size="11" ${FONT} text-anchor="middle" fill="#333">${escapeXml(options.unit)}</text>`);
    const legend = series.map((s, i) => {
        const lx = left + (i % 4) * ((right - left) / 4);
        const ly = 32 + Math.floor(i / 4) * 18;
        return `<rect x="${lx}" y="${ly - 9}" width="10" height="10" fill="${colorOf(i)}"/><text x="${lx + 14}" y="${ly}" font-size="11" ${FONT} fill="#111">${escapeXml(s)}</text>`;
    });
    return svg(width, height, options.title, [...parts, ...rows, ...legend]);
}

export interface LineSeries {
    name: string;
    points: { x: number; y: number; error?: number }[];
}

export interface LineChartOptions {
    title: string;
    xLabel: string;
    yLabel: string;
    series: LineSeries[];
    /** Log2 x axis (sequence counts 1, 2, 4 ... 32). Defaults to true. */
    logX?: boolean;
    /** Log10 y axis (CPU and GPU runs on one chart). Defaults to true. */
    logY?: boolean;
    width?: number;
    height?: number;
}

/** Lines with markers; y from 0 (linear), x on a log2 axis by default. */
export function lineChart(options: LineChartOptions): string {
    const width = options.width ?? 820;
    const legendRows = Math.ceil(options.series.length / 2);
    const height = (options.height ?? 380) + legendRows * 16;
    const left = 70;
    const right = width - 20;
    const top = 40;
    const bottom = height - 50 - legendRows * 16;
    const points = options.series.flatMap((s) => s.points);
    const logX = options.logX ?? true;
    const xs = points.map((p) => p.x);
    const xMin = xs.length > 0 ? Math.min(...xs) : 1;
    const xMax = xs.length > 0 ? Math.max(...xs) : 2;
    const logY = options.logY ?? true;
    const positive = points.map((p) => p.y).filter((v) => v > 0);
    const yLo = logY ? 10 ** Math.floor(Math.log10(Math.max(1e-9, positive.length > 0 ? Math.min(...positive) : 1))) : 0;
    const yHi = logY ? 10 ** Math.ceil(Math.log10(Math.max(...points.map((p) => p.y + (p.error ?? 0)), 1) * 1.0001))
        : niceCeil(Math.max(1, ...points.map((p) => p.y + (p.error ?? 0))));
    const fx = (v: number) => {
        const [a, b, t] = logX ? [Math.log2(xMin), Math.log2(xMax), Math.log2(v)] : [xMin, xMax, v];
        return left + 24 + (b === a ? 0.5 : (t - a) / (b - a)) * (right - left - 48);
    };
    const fy = (v: number) => logY
        ? bottom - ((Math.log10(Math.max(v, yLo)) - Math.log10(yLo)) / (Math.log10(yHi) - Math.log10(yLo) || 1)) * (bottom - top)
        : bottom - (v / yHi) * (bottom - top);
    const parts: string[] = [];
    for (const t of logY ? logTicks(yLo, yHi) : linearTicks(yHi)) {
        const ty = fy(t).toFixed(1);
        parts.push(`<line x1="${left}" y1="${ty}" x2="${right}" y2="${ty}" stroke="#e3e3e3" stroke-width="1"/>`);
        parts.push(`<text x="${left - 6}" y="${(fy(t) + 4).toFixed(1)}" font-size="10" ${FONT} text-anchor="end" fill="#555">${escapeXml(formatTick(t))}</text>`);
    }
    for (const v of [...new Set(xs)].sort((a, b) => a - b)) {
        const tx = fx(v).toFixed(1);
        parts.push(`<line x1="${tx}" y1="${top}" x2="${tx}" y2="${bottom}" stroke="#f0f0f0" stroke-width="1"/>`);
        parts.push(`<text x="${tx}" y="${bottom + 14}" font-size="10" ${FONT} text-anchor="middle" fill="#555">${v}</text>`);
    }
    parts.push(`<line x1="${left}" y1="${bottom}" x2="${right}" y2="${bottom}" stroke="#333"/><line x1="${left}" y1="${top}" x2="${left}" y2="${bottom}" stroke="#333"/>`);
    parts.push(`<text x="${((left + right) / 2).toFixed(1)}" y="${bottom + 30}" font-size="11" ${FONT} text-anchor="middle" fill="#333">${escapeXml(options.xLabel)}</text>`);
    parts.push(`<text transform="translate(16 ${((top + bottom) / 2).toFixed(1)}) rotate(-90)" font-size="11" ${FONT} text-anchor="middle" fill="#333">${escapeXml(options.yLabel)}</text>`);
    options.series.forEach((s, i) => {
        const color = colorOf(i);
        const dash = dashOf(i) === "" ? "" : ` stroke-dasharray="${dashOf(i)}"`;
        const sorted = [...s.points].sort((a, b) => a.x - b.x);
        if (sorted.length > 1)
            parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2"${dash} points="${sorted.map((p) => `${fx(p.x).toFixed(1)},${fy(p.y).toFixed(1)}`).join(" ")}"/>`);
        for (const p of sorted) {
            parts.push(`<circle cx="${fx(p.x).toFixed(1)}" cy="${fy(p.y).toFixed(1)}" r="3.5" fill="${color}"><title>${escapeXml(`${s.name}: ${p.x} → ${formatValue(p.y)}${p.error ? ` ± ${formatValue(p.error)}` : ""}`)}</title></circle>`);
            if (p.error != null && p.error > 0)
                parts.push(`<line x1="${fx(p.x).toFixed(1)}" y1="${fy(Math.max(logY ? yLo : 0, p.y - p.error)).toFixed(1)}" x2="${fx(p.x).toFixed(1)}" y2="${fy(p.y + p.error).toFixed(1)}" stroke="${color}" stroke-width="1"/>`);
        }
        const lx = left + (i % 2) * ((right - left) / 2);
        const ly = bottom + 48 + Math.floor(i / 2) * 16;
        parts.push(`<line x1="${lx}" y1="${ly - 4}" x2="${lx + 18}" y2="${ly - 4}" stroke="${color}" stroke-width="2"${dash}/><text x="${lx + 22}" y="${ly}" font-size="11" ${FONT} fill="#111">${escapeXml(s.name)}</text>`);
    });
    return svg(width, height, options.title, parts);
}

function svg(width: number, height: number, title: string, body: string[]): string {
    return [
        `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${Math.ceil(height)}" viewBox="0 0 ${width} ${Math.ceil(height)}">`,
        `<title>${escapeXml(title)}</title>`,
        `<rect width="100%" height="100%" fill="#ffffff"/>`,
        `<text x="12" y="20" font-size="14" font-weight="bold" ${FONT} fill="#111">${escapeXml(title)}</text>`,
        ...body,
        "</svg>",
        ""
    ].join("\n");
}

/** Axis ticks: 1, 10, 100, 1k, 10k, 2.5k ... */
export function formatTick(value: number): string {
    if (value >= 1e6)
        return `${Number((value / 1e6).toPrecision(3))}M`;
    if (value >= 1e3)
        return `${Number((value / 1e3).toPrecision(3))}k`;
    return String(Number(value.toPrecision(3)));
}

function niceCeil(v: number): number {
    if (v <= 0)
        return 1;
    const p = 10 ** Math.floor(Math.log10(v));
    for (const m of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10])
        if (m * p >= v)
            return m * p;
    return 10 * p;
}

function linearTicks(max: number): number[] {
    const step = niceCeil(max / 5);
    const ticks: number[] = [];
    for (let t = 0; t <= max + 1e-9; t += step)
        ticks.push(Number(t.toPrecision(6)));
    return ticks;
}

function logTicks(lo: number, hi: number): number[] {
    const ticks: number[] = [];
    for (let t = lo; t <= hi * 1.0001; t *= 10)
        ticks.push(t);
    return ticks;
}
