import { rewriteGguf } from "./test/reliability/gguf-fixtures.ts";
await rewriteGguf("/work/shared/models/stories260K.gguf", "/tmp/wt11-missing-tensor.gguf", () => {}, (t) => { t.splice(t.findIndex((x) => x.name === "output_norm.weight"), 1); });
await rewriteGguf("/work/shared/models/stories260K.gguf", "/tmp/wt11-bad-shape.gguf", () => {}, (t) => { const i = t.findIndex((x) => x.name === "blk.0.attn_q.weight"); t[i] = { ...t[i], dims: [32, 128] }; });
