/**
 * Finds stop strings in generated text as tokens arrive. Each token is detokenized once (with
 * a few preceding tokens as context, for leading spaces), tokens that end inside a UTF-8
 * character wait for the next one, and only the new tail is searched: O(1) per token instead
 * of detokenizing everything generated at every step.
 */
export class StopMatcher {
    private text = "";
    private readonly decoded: number[] = [];
    private pending: number[] = [];
    private readonly longest: number;

    /** `detokenize(tokens, lastTokens)`: text of `tokens` following `lastTokens`. */
    constructor(private readonly stops: readonly string[], private readonly detokenize: (tokens: number[], lastTokens: number[]) => string) {
        this.longest = Math.max(0, ...stops.map((s) => s.length));
    }

    get active(): boolean {
        return this.stops.length > 0;
    }

    /** Adds one generated token; returns the earliest stop string now in the text, if any. */
    push(token: number): string | undefined {
        if (!this.active)
            return undefined;
        this.pending.push(token);
        const piece = this.detokenize(this.pending, this.decoded.slice(-8));
        // An incomplete multi-byte character: wait for the token that completes it.
        if (endsUnfinished(piece) && this.pending.length < 4)
            return undefined;
        const searchFrom = Math.max(0, this.text.length - this.longest + 1);
        this.text += piece;
        this.decoded.push(...this.pending);
        this.pending = [];
        let found: { at: number; stop: string } | undefined;
        for (const stop of this.stops) {
            const at = this.text.indexOf(stop, searchFrom);
            if (at >= 0 && (found == null || at < found.at))
                found = { at, stop };
        }
        return found?.stop;
    }
}

/** Cuts `text` at the earliest of `stops`; `cut` false when none occurs. */
export function cutAtStop(text: string, stops: readonly string[]): { text: string; stop?: string } {
    let best: { at: number; stop: string } | undefined;
    for (const stop of stops) {
        const at = text.indexOf(stop);
        if (at >= 0 && (best == null || at < best.at))
            best = { at, stop };
    }
    return best == null ? { text } : { text: text.slice(0, best.at), stop: best.stop };
}

/** Detokenized text that ends inside a multi-byte UTF-8 character ends in U+FFFD (the next token would complete it). */
const unfinishedEnd = /\uFFFD+$/;

function endsUnfinished(text: string): boolean {
    return unfinishedEnd.test(text);
}

/**
 * The text of a generation cut off by its token limit or a full context, without what more
 * tokens would have changed: an unfinished character at its end, and an ending that begins one
 * of `stops` (more tokens would have completed it and cut it, as the matcher would).
 */
export function cutOffText(text: string, stops: readonly string[]): string {
    const kept = text.replace(unfinishedEnd, "");
    let partial = 0;
    for (const stop of stops)
        for (let n = Math.min(stop.length - 1, kept.length); n > partial; n--)
            if (kept.endsWith(stop.slice(0, n))) {
                partial = n;
                break;
            }
    return kept.slice(0, kept.length - partial);
}
