import { textKey } from "./qa.js";

const LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/** The letter of option `index` (0 -> "A"). */
export function optionLetter(index: number): string {
    return LETTERS[index] ?? String(index + 1);
}

/**
 * Reads which option a prediction names: a letter ("B", "(B)", "B)", "B.", "B. Dover",
 * "Option B", "The answer is (B)", "**B**", "b", "B is correct"), or an option's text
 * ("Dover"), compared after answer normalization. Where a letter and an option's text
 * disagree ("(C) Dover"), the text decides, as the original's similarity match does.
 * Returns the 0-based index, or undefined when it names no option or several.
 */
export function parseOption(prediction: string, choices: readonly string[]): number | undefined {
    // markdown emphasis and quotes around the whole answer: "**B**", "'B'", "`Dover`"
    const text = prediction.trim().replace(/^[*_`'"“‘\s]+|[*_`'"”’\s]+$/g, "").trim();
    if (text.length === 0)
        return undefined;
    // Options that differ only in what normalization removes ("dear Reggie," / "Dear Reggie,"): as written.
    const verbatim = choices.map((choice) => choice.trim()).indexOf(text);
    if (verbatim >= 0 && choices.filter((choice) => choice.trim() === text).length === 1)
        return verbatim;
    const normalized = textKey(text);
    const texts = choices.map((choice) => textKey(choice));
    // The option text exactly (wins over letters: an option may itself be "A").
    const exact = texts.indexOf(normalized);
    if (exact >= 0 && texts.lastIndexOf(normalized) === exact)
        return exact;
    const letterIndex = (letter: string) => {
        const index = LETTERS.indexOf(letter.toUpperCase());
        return index >= 0 && index < choices.length ? index : undefined;
    };
    // The text of exactly one option inside the answer (the tie-breaker between a letter and a text).
    const contained = texts.map((t, i) => (t.length > 0 && ` ${normalized} `.includes(` ${t} `) ? i : -1)).filter((i) => i >= 0);
    // A lone lowercase letter is a letter ("b"), not the article normalization drops.
    if (/^[a-z]$/.test(text))
        return letterIndex(text);
    // "I think the answer is B", "the answer is (b).", "B is correct": a letter the sentence points at
    const stated = /(?:^|\s)(?:[Aa]nswer|ANSWER|[Oo]ption|[Cc]hoice)\s+is\s*:?\s*(?:\(([A-Za-z])\)|([A-Z])(?=$|[\s.,;:!)])|([a-z])(?=$|[.,;:!)]))/.exec(text)
        ?? /^\(?([A-Za-z])\)?\s+is\s+(?:the\s+)?(?:correct|right)\b/.exec(text);
    if (stated != null) {
        const index = letterIndex((stated[1] ?? stated[2] ?? stated[3])!);
        if (index !== undefined && (contained.length === 0 || contained[0] === index))
            return index;
    }
    // A leading letter: "B", "(B)", "B)", "B.", "B: Dover", "Answer: B", "The answer is (B)".
    const lead = /^(?:(?:[Tt]he\s+)?(?:[Cc]orrect\s+)?(?:[Aa]nswer|ANSWER|[Oo]ption|[Cc]hoice)\s*(?:is\s*)?:?\s*)?(?:[([]([A-Za-z])[)\]]|([A-Z])(?=$|[.:)])|([a-z])(?=[.:)]))[.:)]?\s*([\s\S]*)$/.exec(text);
    if (lead != null) {
        const index = letterIndex((lead[1] ?? lead[2] ?? lead[3])!);
        const rest = textKey(lead[4] ?? "");
        // After the letter: nothing, its own option text, or text that names no other option.
        // A second bracketed letter ("(A) or (B)") makes the reading ambiguous.
        const otherLetter = [...(lead[4] ?? "").matchAll(/\(([A-Za-z])\)/g)].some((m) => letterIndex(m[1]!) !== index);
        if (index !== undefined && !otherLetter && (rest.length === 0 || rest === texts[index] || !texts.includes(rest)))
            return index;
    }
    // An option's text inside a longer answer, when exactly one option text appears.
    if (contained.length === 1)
        return contained[0];
    // "(B)" anywhere, when only one bracketed letter appears.
    const bracketed = [...text.matchAll(/\(([A-Za-z])\)/g)].map((m) => letterIndex(m[1]!)).filter((i) => i !== undefined);
    if (new Set(bracketed).size === 1)
        return bracketed[0];
    return undefined;
}

/** Whether a prediction names the gold option. `gold` is a letter ("B") or an option's text. */
export function optionMatch(prediction: string, gold: string, choices: readonly string[]): boolean {
    const predicted = parseOption(prediction, choices);
    if (predicted === undefined)
        return false;
    const goldIndex = parseOption(gold, choices);
    return goldIndex !== undefined && predicted === goldIndex;
}
