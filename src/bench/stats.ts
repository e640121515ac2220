/** Mean and sample standard deviation, as llama-bench reports them. */
export function mean(values: readonly number[]): number {
    return values.length === 0 ? 0 : values.reduce((a, b) => a + b, 0) / values.length;
}

/** Sample standard deviation (n - 1); 0 for fewer than two values. */
export function stddev(values: readonly number[]): number {
    if (values.length < 2)
        return 0;
    const m = mean(values);
    return Math.sqrt(values.reduce((a, b) => a + (b - m) ** 2, 0) / (values.length - 1));
}

/** Deterministic token ids in [0, vocab): llama-bench feeds random ids too, so no tokenizer runs. */
export function randomTokens(count: number, vocab: number, seed: number): Uint32Array {
    // xorshift32: small, fast and the same on every machine
    let state = (seed >>> 0) || 0x9e3779b9;
    const out = new Uint32Array(count);
    for (let i = 0; i < count; i++) {
        state ^= state << 13;
        state >>>= 0;
        state ^= state >>> 17;
        state ^= state << 5;
        state >>>= 0;
        out[i] = state % vocab;
    }
    return out;
}

/** Rounds for display and JSON: 4 significant digits are plenty for tokens/s. */
/** The middle value (the mean of the two middle ones for an even count). */
export function median(values: readonly number[]): number {
    const sorted = [...values].sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function round(value: number, digits = 4): number {
    if (!Number.isFinite(value) || value === 0)
        return value;
    return Number(value.toPrecision(digits));
}
