/**
 * Native decode time alone (no generator loop): `parallel` sequences, one token each per step,
 * 128 steps from an empty cache, through the engine helper; the share of the generator's step
 * time that llama.cpp itself takes. Profile it with
 *   perf record -g node dist/bench/engine/decode-only.js MODEL 8 && perf report --no-children
 *
 *   npx tsc -p tsconfig.json && node dist/bench/engine/decode-only.js MODEL [parallel=8] [threads=2] [reps=10]
 */
import { createEngine } from "../../src/llm/engine.js";
import type { EngineHelper, EngineHelperHandle, RawContext } from "../../src/llm/native-access.js";

const [file, parallelArg, threadsArg, repsArg] = process.argv.slice(2);
if (file == null)
    throw new Error("usage: decode-only.js MODEL [parallel] [threads] [reps]");
const parallel = Number(parallelArg ?? 8);
const engine = await createEngine({ gpu: "cpu", threads: Number(threadsArg ?? 2) });
const model = await engine.loadModel(file);
for (const n of [1, parallel]) {
    const generator = await model.createGenerator({ parallel: n, contextSize: 144 });
    const internals = generator as unknown as { helper?: EngineHelper; helperHandle?: EngineHelperHandle; raw: RawContext };
    if (internals.helper == null || internals.helperHandle == null)
        throw new Error("the engine helper is not available");
    const [tokens, sequences, positions, logits] = [0, 0, 0, 0].map(() => new Int32Array(n));
    let steps = 0;
    const started = performance.now();
    for (let rep = 0; rep < Number(repsArg ?? 10); rep++) {
        for (let s = 0; s < n; s++)
            internals.raw.removeTokenCellsFromSequence(s, 0, -1);
        for (let p = 0; p < 128; p++, steps++) {
            for (let s = 0; s < n; s++) {
                tokens[s] = 1 + ((p * 7 + s) % 200);
                sequences[s] = s;
                positions[s] = p;
                logits[s] = 1;
            }
            const status = internals.helper.decode(internals.helperHandle, tokens!, sequences!, positions!, logits!, n);
            if (status !== 0)
                throw new Error(`llama_decode returned ${status}`);
        }
    }
    const ms = performance.now() - started;
    console.log(`${n} sequence(s): ${(steps * n / ms * 1000).toFixed(0)} tokens/s, ${(ms / steps * 1000).toFixed(0)} us per decode`);
    await generator.dispose();
}
await engine.dispose();
