/**
 * HotpotQA's answer normalization: lowercase, punctuation removed, the articles a/an/the
 * removed, whitespace collapsed (the official evaluation script's order of steps).
 */
export function normalizeAnswer(text: string): string {
    let s = text.toLowerCase();
    // As the official script: Python's string.punctuation only (ASCII; a curly apostrophe stays,
    // so scores are comparable with the paper's), and articles between Python's Unicode word
    // boundaries (letters, digits, _), not JavaScript's ASCII \b (é would be a boundary)
    s = s.replace(/[!-/:-@[-`{-~]/g, "");
    s = s.replace(/(?<![\p{L}\p{N}_])(a|an|the)(?![\p{L}\p{N}_])/gu, " ");
    return s.split(/\s+/).filter((w) => w.length > 0).join(" ");
}

/**
 * A looser key for "the same text" (a question of the evaluation sets, an answer or question
 * seen before, an option's text): HotpotQA's normalization with Unicode punctuation and
 * symbols gone too, so that a curly apostrophe or a guillemet does not make a text new.
 */
export function textKey(text: string): string {
    return normalizeAnswer(text.replace(/[\p{P}\p{S}]/gu, ""));
}

/** Normalized exact match. */
export function exactMatch(prediction: string, gold: string): boolean {
    return normalizeAnswer(prediction) === normalizeAnswer(gold);
}

export interface F1Result {
    f1: number;
    precision: number;
    recall: number;
}

const SPECIAL = new Set(["yes", "no", "noanswer"]);

/**
 * Token F1 on normalized answers, with the official rule: when either side is yes, no or
 * noanswer and the two differ, every score is 0.
 */
export function tokenF1(prediction: string, gold: string): F1Result {
    const zero = { f1: 0, precision: 0, recall: 0 };
    const p = normalizeAnswer(prediction);
    const g = normalizeAnswer(gold);
    if ((SPECIAL.has(p) || SPECIAL.has(g)) && p !== g)
        return zero;
    const predicted = p.split(" ").filter((w) => w.length > 0);
    const truth = g.split(" ").filter((w) => w.length > 0);
    const counts = new Map<string, number>();
    for (const token of truth)
        counts.set(token, (counts.get(token) ?? 0) + 1);
    let same = 0;
    for (const token of predicted) {
        const left = counts.get(token) ?? 0;
        if (left > 0) {
            same++;
            counts.set(token, left - 1);
        }
    }
    if (same === 0)
        return zero;
    const precision = same / predicted.length;
    const recall = same / truth.length;
    return { f1: (2 * precision * recall) / (precision + recall), precision, recall };
}

/** EM and F1 of one prediction, as the filter and the evaluation record them. */
export function scoreAnswer(prediction: string, gold: string): { em: number } & F1Result {
    return { em: exactMatch(prediction, gold) ? 1 : 0, ...tokenF1(prediction, gold) };
}
