import fs from "node:fs";
import { InputError } from "../util/errors.js";

/** autoact-train --grad-dump's file (native/README.md): the first step's loss and every adapter tensor's gradient, in name order. */
export interface GradDump {
    loss: number;
    grads: Float32Array[];
}

/** Reads a --grad-dump file: "AAGD", u32 tensors, f64 loss, then per tensor u32 n and n floats. */
export function readGradDump(file: string): GradDump {
    const buf = fs.readFileSync(file);
    if (buf.subarray(0, 4).toString() !== "AAGD")
        throw new InputError(`${file}: not an autoact-train gradient dump (no "AAGD" header)`);
    const n = buf.readUInt32LE(4);
    const loss = buf.readDoubleLE(8);
    const grads: Float32Array[] = [];
    let off = 16;
    for (let i = 0; i < n; i++) {
        const k = buf.readUInt32LE(off);
        off += 4;
        grads.push(new Float32Array(buf.buffer.slice(buf.byteOffset + off, buf.byteOffset + off + 4 * k)));
        off += 4 * k;
    }
    return { loss, grads };
}

/** Largest |a - b| over all entries of two dumps' gradients, relative to the largest |a|. */
export function relMaxDiff(a: Float32Array[], b: Float32Array[]): number {
    let diff = 0;
    let scale = 0;
    a.forEach((x, t) => x.forEach((v, i) => {
        diff = Math.max(diff, Math.abs(v - b[t]![i]!));
        scale = Math.max(scale, Math.abs(v));
    }));
    return diff / scale;
}
