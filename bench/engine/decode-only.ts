/**
 * Native decode time alone (no generator loop): `parallel` sequences, one token each per step,
 * 128 steps from an empty cache, through the generator's helper decode backend; the share of the generator's step
 * time that llama.cpp itself takes. Profile it with
 *   perf record -g node dist/bench/engine/decode-only.js MODEL 8 && perf report --no-children
 *
 *   npx tsc -p tsconfig.json && node dist/bench/engine/decode-only.js MODEL [parallel=8] [threads=2] [reps=10]
 */
import { createEngine } from "../../src/llm/engine.js";
import { TokenBatch, type DecodeBackend } from "../../src/llm/decode-backend.js";

const [file, parallelArg, threadsArg, repsArg] = process.argv.slice(2);
if (file == null)
    throw new Error("usage: decode-only.js MODEL [parallel] [threads] [reps]");
const parallel = Number(parallelArg ?? 8);
const engine = await createEngine({ gpu: "cpu", threads: Number(threadsArg ?? 2) });
const model = await engine.loadModel(file);
for (const n of [1, parallel]) {
    const generator = await model.createGenerator({ parallel: n, contextSize: 144 });
    // The generator's decode backend itself, without the scheduler around it.
    const backend = (generator as unknown as { tokens: DecodeBackend }).tokens;
    if (backend.name !== "helper")
        throw new Error("the engine helper is not available (autoact native build-engine)");
    const batch = new TokenBatch(n);
    let steps = 0;
    const started = performance.now();
    for (let rep = 0; rep < Number(repsArg ?? 10); rep++) {
        for (let s = 0; s < n; s++)
            backend.removeCells(s, 0);
        for (let p = 0; p < 128; p++, steps++) {
            batch.count = 0;
            for (let s = 0; s < n; s++)
                batch.add(1 + ((p * 7 + s) % 200), s, p, true);
            await backend.decode(batch);
        }
    }
    const ms = performance.now() - started;
    console.log(`${n} sequence(s): ${(steps * n / ms * 1000).toFixed(0)} tokens/s, ${(ms / steps * 1000).toFixed(0)} us per decode`);
    await generator.dispose();
}
await engine.dispose();
