import { InputError } from "../util/errors.js";
import { writeFileAtomic } from "../util/fs.js";

/**
 * The trainer's input file (format version 1, little-endian; see native/README.md):
 *   "AATS"  u32 version=1  u32 n_samples  u32 reserved=0
 *   per sample: u32 n_tokens, i32 tokens[n_tokens], u8 mask[n_tokens]
 * mask[i] = 1 marks a response token: the prediction of token i (from position i-1) is trained.
 */
export interface TokenizedSample {
    tokens: number[];
    /** 1 where the token is part of the response, else 0; as long as `tokens`. */
    mask: number[];
    /** Leading tokens a cut to fit the context leaves (the task and question; not in the file). */
    keep?: number;
}

const MAGIC = "AATS";
const VERSION = 1;

export function encodeTrainingSamples(samples: readonly TokenizedSample[]): Uint8Array {
    let bytes = 16;
    for (const [i, s] of samples.entries()) {
        if (s.tokens.length !== s.mask.length)
            throw new InputError(`sample ${i}: ${s.tokens.length} tokens but ${s.mask.length} mask values`);
        bytes += 4 + 5 * s.tokens.length;
    }
    const buf = new Uint8Array(bytes);
    const view = new DataView(buf.buffer);
    buf.set(new TextEncoder().encode(MAGIC), 0);
    view.setUint32(4, VERSION, true);
    view.setUint32(8, samples.length, true);
    view.setUint32(12, 0, true);
    let at = 16;
    for (const [i, s] of samples.entries()) {
        view.setUint32(at, s.tokens.length, true);
        at += 4;
        for (const token of s.tokens) {
            if (!Number.isInteger(token) || token < 0 || token > 0x7fffffff)
                throw new InputError(`sample ${i}: token ${token} is not a token id`);
            view.setInt32(at, token, true);
            at += 4;
        }
        for (const m of s.mask) {
            if (m !== 0 && m !== 1)
                throw new InputError(`sample ${i}: mask value ${m} is not 0 or 1`);
            buf[at++] = m;
        }
    }
    return buf;
}

export function decodeTrainingSamples(buf: Uint8Array): TokenizedSample[] {
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    if (buf.byteLength < 16 || new TextDecoder().decode(buf.subarray(0, 4)) !== MAGIC || view.getUint32(4, true) !== VERSION)
        throw new InputError("not an autoact training-samples file (version 1)");
    const n = view.getUint32(8, true);
    const samples: TokenizedSample[] = [];
    let at = 16;
    for (let i = 0; i < n; i++) {
        const len = view.getUint32(at, true);
        at += 4;
        const tokens = Array.from({ length: len }, (_, j) => view.getInt32(at + 4 * j, true));
        at += 4 * len;
        const mask = Array.from(buf.subarray(at, at + len));
        at += len;
        samples.push({ tokens, mask });
    }
    return samples;
}

/** Writes the samples file atomically. */
export async function writeTrainingSamples(filePath: string, samples: readonly TokenizedSample[]): Promise<void> {
    await writeFileAtomic(filePath, encodeTrainingSamples(samples));
}
