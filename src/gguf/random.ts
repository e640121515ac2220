/**
 * Deterministic random numbers for synthetic weights: xorshift128 seeded by splitmix32 from
 * (seed, stream name), so each tensor's values depend only on the seed and its name, not on
 * the tensor order or the element type (an F32 and a Q8_0 model of one seed share weights).
 */
export class Xorshift128 {
    private x: number;
    private y: number;
    private z: number;
    private w: number;

    constructor(seed: number, stream = "") {
        let s = (seed ^ fnv1a(stream)) >>> 0;
        const next = () => {
            s = (s + 0x9e3779b9) | 0;
            let t = s ^ (s >>> 16);
            t = Math.imul(t, 0x21f0aaad);
            t ^= t >>> 15;
            t = Math.imul(t, 0x735a2d97);
            return (t ^ (t >>> 15)) | 0;
        };
        this.x = next();
        this.y = next();
        this.z = next();
        this.w = next() || 1;
    }

    /** A uint32. */
    nextU32(): number {
        const t = this.x ^ (this.x << 11);
        this.x = this.y;
        this.y = this.z;
        this.z = this.w;
        this.w = this.w ^ (this.w >>> 19) ^ (t ^ (t >>> 8));
        return this.w >>> 0;
    }

    /** Fills `out` with uniform values of standard deviation `std` (range +-std*sqrt(3)). */
    fillUniform(out: Float32Array, std: number): void {
        const k = (std * Math.sqrt(3) * 2) / 4294967296;
        const a = std * Math.sqrt(3);
        let { x, y, z, w } = this;
        for (let i = 0; i < out.length; i++) {
            const t = x ^ (x << 11);
            x = y;
            y = z;
            z = w;
            w = w ^ (w >>> 19) ^ (t ^ (t >>> 8));
            out[i] = (w >>> 0) * k - a;
        }
        this.x = x;
        this.y = y;
        this.z = z;
        this.w = w;
    }
}

function fnv1a(text: string): number {
    let h = 0x811c9dc5;
    for (let i = 0; i < text.length; i++) {
        h ^= text.charCodeAt(i);
        h = Math.imul(h, 0x01000193);
    }
    return h >>> 0;
}
