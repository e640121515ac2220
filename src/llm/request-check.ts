import { InputError } from "../util/errors.js";
import type { GenerationRequest } from "./types.js";

/** llama.cpp's samplers take a 32-bit seed: 2^32 would sample as seed 0, and -1 as 2^32 - 1. */
const maxSeed = 2 ** 32 - 1;

/**
 * A request's sampling values, checked before llama.cpp sees them: it takes a NaN temperature,
 * a fractional top-k or an out-of-range seed without a word and samples garbage or another
 * seed's text.
 */
export function checkSampling(request: GenerationRequest): void {
    const { temperature, topP, topK, seed } = request;
    if (temperature != null && !(Number.isFinite(temperature) && temperature >= 0))
        invalid("temperature", temperature, "a finite number >= 0");
    if (topP != null && !(Number.isFinite(topP) && topP >= 0 && topP <= 1))
        invalid("topP", topP, "a number from 0 to 1");
    if (topK != null && !(Number.isInteger(topK) && topK >= 0))
        invalid("topK", topK, "a whole number >= 0");
    if (seed != null && !(Number.isInteger(seed) && seed >= 0 && seed <= maxSeed))
        invalid("seed", seed, `a whole number from 0 to ${maxSeed}`);
}

/**
 * Token ids a caller gives (a prompt, tokens to score): llama.cpp truncates 2.5 to 2 and
 * refuses an id outside the vocabulary only as "llama_decode returned -1".
 */
export function checkTokenIds(tokens: readonly number[], vocabularySize: number, what: string): void {
    tokens.forEach((token, i) => {
        if (!Number.isInteger(token) || token < 0 || token >= vocabularySize)
            throw new InputError(`${what} has invalid token id ${String(token)} at position ${i} (the vocabulary's ids are 0 to ${vocabularySize - 1})`);
    });
}

function invalid(what: string, value: unknown, expected: string): never {
    throw new InputError(`generation request has invalid ${what} ${String(value)} (expected ${expected})`);
}
