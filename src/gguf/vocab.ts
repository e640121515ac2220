/**
 * A byte-level BPE vocabulary in GPT-2's encoding (each byte mapped to a printable code
 * point, space -> "Ġ"): 256 byte tokens, then merges that build common-looking letter
 * sequences up to the requested size, then the special tokens (CONTROL). This is what
 * llama.cpp's `gpt2` tokenizer needs: every byte present, and `merges` present.
 */

export const TOKEN_TYPE_NORMAL = 1;
export const TOKEN_TYPE_CONTROL = 3;

export interface ByteLevelVocab {
    tokens: string[];
    tokenTypes: number[];
    merges: string[];
    /** Token id of each special token, by text. */
    specialIds: Record<string, number>;
}

let byteChars: string[] | undefined;

/** GPT-2's byte -> printable character table. */
export function byteToUnicode(): string[] {
    if (byteChars != null)
        return byteChars;
    const table = new Array<string>(256);
    let extra = 0;
    for (let b = 0; b < 256; b++) {
        const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        table[b] = String.fromCodePoint(printable ? b : 256 + extra++);
    }
    return (byteChars = table);
}

// Characters merges are built from, most frequent in English text first.
const MERGE_CHARS = " etaoinshrdlucmfwgypbvkjxqz";

/** Builds a vocabulary of exactly `size` tokens with `specials` at the end. */
export function buildByteLevelVocab(size: number, specials: readonly string[]): ByteLevelVocab {
    const table = byteToUnicode();
    const nMerges = size - 256 - specials.length;
    if (nMerges < 0)
        throw new Error(`a byte-level vocabulary needs at least ${256 + specials.length} tokens, got ${size}`);
    const tokens = [...table];
    const seen = new Set(tokens);
    const merges: string[] = [];
    const chars = [...MERGE_CHARS].map((c) => table[c.charCodeAt(0)]!);
    // Breadth first: every pair of frequent characters, then those pairs extended by one, ...
    let frontier = chars;
    while (merges.length < nMerges) {
        const next: string[] = [];
        for (const left of frontier) {
            for (const right of chars) {
                if (merges.length >= nMerges)
                    break;
                const merged = left + right;
                if (seen.has(merged))
                    continue;
                seen.add(merged);
                merges.push(`${left} ${right}`);
                tokens.push(merged);
                next.push(merged);
            }
        }
        frontier = next;
    }
    const tokenTypes = tokens.map(() => TOKEN_TYPE_NORMAL);
    const specialIds: Record<string, number> = {};
    for (const special of specials) {
        specialIds[special] = tokens.length;
        tokens.push(special);
        tokenTypes.push(TOKEN_TYPE_CONTROL);
    }
    return { tokens, tokenTypes, merges, specialIds };
}
