// Abbreviations after which a period does not end a sentence.
const ABBREVIATIONS = new Set(["mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "no", "inc", "ltd", "co",
    "corp", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "e.g", "i.e", "u.s", "mt"]);

/**
 * Splits prose into sentences for Lookup: at . ! ? followed by space and an upper-case
 * letter, digit or quote, and at blank lines; not after common abbreviations or initials.
 */
export function splitSentences(text: string): string[] {
    const sentences: string[] = [];
    for (const paragraph of text.split(/\n\s*\n/)) {
        const boundary = /([.!?]["')\]]?)\s+(?=["'(\[]?[\p{Lu}\p{N}])/gu;
        let start = 0;
        let match: RegExpExecArray | null;
        while ((match = boundary.exec(paragraph)) != null) {
            const end = match.index + match[1]!.length;
            // Only a short window before the period can hold an abbreviation or an initial.
            const lastWord = /(?:^|[^\p{L}.])([\p{L}.]+)\.$/u.exec(paragraph.slice(Math.max(start, end - 12), end));
            if (match[1] === "." && lastWord != null) {
                const word = lastWord[1]!.toLowerCase();
                if (ABBREVIATIONS.has(word) || /^\p{Lu}$/u.test(lastWord[1]!))
                    continue;
            }
            pushSentence(sentences, paragraph.slice(start, end));
            start = match.index + match[0].length;
        }
        pushSentence(sentences, paragraph.slice(start));
    }
    return sentences;
}

function pushSentence(sentences: string[], text: string): void {
    const sentence = text.replace(/\s+/g, " ").trim();
    if (sentence.length > 0)
        sentences.push(sentence);
}
