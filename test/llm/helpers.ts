import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { packageRoot } from "../../src/util/package.js";
import { writeSyntheticModel } from "../../src/gguf/synth.js";
import { loraAdapterMetadata } from "../../src/gguf/lora.js";
import { writeGguf } from "../../src/gguf/writer.js";
import { GgmlType } from "../../src/gguf/types.js";
import { Xorshift128 } from "../../src/gguf/random.js";

export const sharedModel = path.resolve(packageRoot, "../shared/models/stories260K.gguf");
export const hasSharedModel = fs.existsSync(sharedModel);
if (!hasSharedModel)
    console.warn(`skipping stories260K tests: ${sharedModel} is absent (../shared not mounted)`);

export function tempDir(prefix: string): string {
    return fs.mkdtempSync(path.join(os.tmpdir(), `autoact-${prefix}-`));
}

/** A ~115K-parameter random llama (the "tiny" preset shape): nEmbd 64, 2 layers. */
export async function makeTinyModel(dir: string, overrides: { nEmbd?: number; layers?: number; vocab?: number; ff?: number } = {}): Promise<string> {
    const out = path.join(dir, `tiny-${overrides.nEmbd ?? 64}-${overrides.layers ?? 2}.gguf`);
    await writeSyntheticModel({
        arch: "llama", nEmbd: overrides.nEmbd ?? 64, layers: overrides.layers ?? 2, heads: 4, kvHeads: 2,
        ff: overrides.ff ?? 128, ctx: 512, vocab: overrides.vocab ?? 320, type: "f32", seed: 7, out
    });
    return out;
}

/**
 * A GGUF LoRA adapter on the attention q/v projections of every layer (design.md "GGUF LoRA
 * adapters"): A random, B random with std `bStd` (0 = a zero B, an exact no-op).
 */
export async function writeLoraAdapter(options: { out: string; nEmbd: number; layers: number; rank?: number; bStd: number; seed?: number; arch?: string }): Promise<string> {
    const rank = options.rank ?? 4;
    const rng = new Xorshift128(options.seed ?? 3, "lora");
    const random = (n: number, std: number) => {
        const values = new Float32Array(n);
        if (std !== 0)
            rng.fillUniform(values, std);
        return values;
    };
    const tensors = [];
    for (let layer = 0; layer < options.layers; layer++) {
        for (const name of ["attn_q", "attn_v"]) {
            const nOut = name === "attn_v" ? options.nEmbd / 2 : options.nEmbd; // tiny models use 2 of 4 KV heads
            tensors.push({ name: `blk.${layer}.${name}.weight.lora_a`, dims: [options.nEmbd, rank], type: GgmlType.F32, data: random(options.nEmbd * rank, 1 / Math.sqrt(options.nEmbd)) });
            tensors.push({ name: `blk.${layer}.${name}.weight.lora_b`, dims: [rank, nOut], type: GgmlType.F32, data: random(rank * nOut, options.bStd) });
        }
    }
    await writeGguf({
        path: options.out,
        metadata: loraAdapterMetadata(options.arch ?? "llama", rank),
        tensors
    });
    return options.out;
}
