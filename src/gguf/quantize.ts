import { GgmlType, GGML_TYPE_TRAITS, ggmlTypeName } from "./types.js";

/**
 * Block quantizers and dequantizers with ggml's exact byte layouts (little-endian):
 *   Q8_0: 32 values -> f16 d, int8 q[32];              x = d * q
 *   Q4_0: 32 values -> f16 d, u8 qs[16] (two nibbles); x = d * (q - 8); nibble j low = x[j], high = x[j+16]
 *   Q4_K: 256 values -> f16 d, f16 dmin, u8 scales[12] (8 x 6-bit scale + 8 x 6-bit min), u8 qs[128];
 *         sub-block s of 32: x = d*sc[s]*q - dmin*m[s]; 64-value chunk c holds sub-blocks 2c (low nibbles) and 2c+1 (high)
 * Q8_0 and Q4_0 follow ggml's reference rounding; Q4_K picks its scales by a small search
 * (not ggml's, which is heavier) but writes the same layout, so any reader decodes it.
 */

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** float32 -> IEEE half bits, round to nearest even (as F16C and ggml do). */
export function f32ToF16Bits(value: number): number {
    f32Scratch[0] = value;
    return f32BitsToF16Bits(u32Scratch[0]!);
}

/** The same, from the float's bit pattern (lets bulk conversion skip the scratch write). */
export function f32BitsToF16Bits(x: number): number {
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    let mant = x & 0x7fffff;
    if (exp === 0xff)
        return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
    const e = exp - 112;
    if (e >= 0x1f)
        return sign | 0x7c00;
    if (e <= 0) {
        if (e < -10)
            return sign;
        mant |= 0x800000;
        const shift = 14 - e;
        let half = mant >>> shift;
        const rem = mant & ((1 << shift) - 1);
        const halfway = 1 << (shift - 1);
        if (rem > halfway || (rem === halfway && (half & 1) !== 0))
            half++;
        return sign | half;
    }
    // Round to nearest even without a branch: add 0xfff plus the kept mantissa's lowest bit;
    // a carry out of the mantissa bumps the exponent (up to infinity), as it should.
    const v = (e << 23) | mant;
    return sign | ((v + 0xfff + ((v >>> 13) & 1)) >>> 13);
}

let f16Table: Float32Array | undefined;

/** IEEE half bits -> number (table lookup). */
export function f16BitsToF32(bits: number): number {
    return (f16Table ??= buildF16Table())[bits & 0xffff]!;
}

function buildF16Table(): Float32Array {
    const table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) {
        const sign = h & 0x8000 ? -1 : 1;
        const exp = (h >>> 10) & 0x1f;
        const mant = h & 0x3ff;
        if (exp === 0)
            table[h] = sign * mant * 2 ** -24;
        else if (exp === 0x1f)
            table[h] = mant !== 0 ? NaN : sign * Infinity;
        else
            table[h] = sign * (1 + mant / 1024) * 2 ** (exp - 15);
    }
    return table;
}

function checkLength(type: GgmlType, n: number): number {
    const blockSize = GGML_TYPE_TRAITS[type]!.blockSize;
    if (n % blockSize !== 0)
        throw new Error(`${ggmlTypeName(type)} needs a multiple of ${blockSize} values, got ${n}`);
    return n / blockSize;
}

export function quantizeF16(src: Float32Array): Uint8Array {
    const out = new Uint16Array(src.length);
    const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
    for (let i = 0; i < src.length; i++)
        out[i] = f32BitsToF16Bits(bits[i]!);
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** bfloat16 bits -> float32 (they are its upper 16 bits). */
export function bf16BitsToF32(bits: number): number {
    u32Scratch[0] = (bits & 0xffff) << 16;
    return f32Scratch[0]!;
}

/** float32 -> bfloat16 (the upper 16 bits), round to nearest even as ggml does; NaN stays NaN. */
export function quantizeBF16(src: Float32Array): Uint8Array {
    const out = new Uint16Array(src.length);
    const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
    for (let i = 0; i < src.length; i++) {
        const x = bits[i]!;
        out[i] = (x & 0x7fffffff) > 0x7f800000 ? (x >>> 16) | 64 : (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
    }
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

export function quantizeQ8_0(src: Float32Array): Uint8Array {
    const blocks = checkLength(GgmlType.Q8_0, src.length);
    const out = new Uint8Array(blocks * 34);
    const signed = new Int8Array(out.buffer);
    for (let b = 0; b < blocks; b++) {
        const base = b * 32;
        let amax = 0;
        for (let j = 0; j < 32; j++)
            amax = Math.max(amax, Math.abs(src[base + j]!));
        const d = Math.fround(amax / 127);
        const id = d !== 0 ? Math.fround(1 / d) : 0;
        const dBits = f32ToF16Bits(d);
        const o = b * 34;
        out[o] = dBits & 0xff;
        out[o + 1] = dBits >>> 8;
        for (let j = 0; j < 32; j++) {
            // roundf(x*id) in float32, without a data-dependent branch on the sign (random
            // weights make it unpredictable): floor(v + 0.5), moving negative ties away from zero.
            const v = Math.fround(src[base + j]! * id);
            const t = v + 128.5;
            let q = t | 0;
            if (q === t && v < 0)
                q--;
            signed[o + 2 + j] = q - 128;
        }
    }
    return out;
}

export function quantizeQ4_0(src: Float32Array): Uint8Array {
    const blocks = checkLength(GgmlType.Q4_0, src.length);
    const out = new Uint8Array(blocks * 18);
    for (let b = 0; b < blocks; b++) {
        const base = b * 32;
        let amax = 0;
        let max = 0;
        for (let j = 0; j < 32; j++) {
            const v = src[base + j]!;
            if (Math.abs(v) > amax) {
                amax = Math.abs(v);
                max = v;
            }
        }
        const d = Math.fround(max / -8);
        const id = d !== 0 ? Math.fround(1 / d) : 0;
        const dBits = f32ToF16Bits(d);
        const o = b * 18;
        out[o] = dBits & 0xff;
        out[o + 1] = dBits >>> 8;
        for (let j = 0; j < 16; j++) {
            // (int8_t)(x*id + 8.5f) in float32; the sum is >= 0.5, so |0 truncates like the cast.
            const q0 = Math.min(15, Math.fround(Math.fround(src[base + j]! * id) + 8.5) | 0);
            const q1 = Math.min(15, Math.fround(Math.fround(src[base + 16 + j]! * id) + 8.5) | 0);
            out[o + 2 + j] = q0 | (q1 << 4);
        }
    }
    return out;
}

export function quantizeQ4_K(src: Float32Array): Uint8Array {
    const blocks = checkLength(GgmlType.Q4_K, src.length);
    const out = new Uint8Array(blocks * 144);
    const scales = new Float64Array(8);
    const mins = new Float64Array(8);
    const q = new Uint8Array(256);
    for (let b = 0; b < blocks; b++) {
        const base = b * 256;
        for (let s = 0; s < 8; s++) {
            const [scale, min] = fitSubBlock(src, base + s * 32);
            scales[s] = scale;
            mins[s] = min;
        }
        let maxScale = 0;
        let maxMin = 0;
        for (let s = 0; s < 8; s++) {
            maxScale = Math.max(maxScale, scales[s]!);
            maxMin = Math.max(maxMin, mins[s]!);
        }
        const dBits = f32ToF16Bits(maxScale / 63);
        const dminBits = f32ToF16Bits(maxMin / 63);
        const d = f16BitsToF32(dBits);
        const dmin = f16BitsToF32(dminBits);
        const o = b * 144;
        out[o] = dBits & 0xff;
        out[o + 1] = dBits >>> 8;
        out[o + 2] = dminBits & 0xff;
        out[o + 3] = dminBits >>> 8;
        const sc = o + 4;
        for (let s = 0; s < 8; s++) {
            const ls = d > 0 ? Math.min(63, Math.round(scales[s]! / d)) : 0;
            const lm = dmin > 0 ? Math.min(63, Math.round(mins[s]! / dmin)) : 0;
            if (s < 4) {
                out[sc + s] = ls;
                out[sc + s + 4] = lm;
            } else {
                out[sc + s + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
                out[sc + s - 4] |= (ls >> 4) << 6;
                out[sc + s] |= (lm >> 4) << 6;
            }
            const ds = d * ls;
            const dm = dmin * lm;
            const inv = ds !== 0 ? 1 / ds : 0;
            for (let l = 0; l < 32; l++) {
                const v = Math.round((src[base + s * 32 + l]! + dm) * inv);
                q[s * 32 + l] = v < 0 ? 0 : v > 15 ? 15 : v;
            }
        }
        const qs = o + 16;
        for (let c = 0; c < 4; c++)
            for (let l = 0; l < 32; l++)
                out[qs + c * 32 + l] = q[c * 64 + l]! | (q[c * 64 + 32 + l]! << 4);
    }
    return out;
}

/**
 * Scale and min (x ~ scale*q - min, q in 0..15, min >= 0) for 32 values: the plain
 * range fit, then a few shrunken ranges, keeping the one with the least squared error.
 */
function fitSubBlock(src: Float32Array, start: number): [number, number] {
    let lo = 0;
    let hi = -Infinity;
    for (let l = 0; l < 32; l++) {
        const v = src[start + l]!;
        if (v < lo)
            lo = v;
        if (v > hi)
            hi = v;
    }
    if (hi <= lo)
        return [0, -lo];
    let best: [number, number] = [(hi - lo) / 15, -lo];
    let bestErr = Infinity;
    for (let step = 0; step <= 6; step++) {
        const shrink = 1 - step * 0.02;
        const scale = ((hi - lo) * shrink) / 15;
        const min = -lo;
        let err = 0;
        for (let l = 0; l < 32; l++) {
            const v = src[start + l]!;
            let qv = Math.round((v + min) / scale);
            qv = qv < 0 ? 0 : qv > 15 ? 15 : qv;
            const diff = scale * qv - min - v;
            err += diff * diff;
        }
        if (err < bestErr) {
            bestErr = err;
            best = [scale, min];
        }
    }
    return best;
}

function getScaleMinK4(j: number, bytes: Uint8Array, at: number): [number, number] {
    if (j < 4)
        return [bytes[at + j]! & 63, bytes[at + j + 4]! & 63];
    return [
        (bytes[at + j + 4]! & 0xf) | ((bytes[at + j - 4]! >> 6) << 4),
        (bytes[at + j + 4]! >> 4) | ((bytes[at + j]! >> 6) << 4)
    ];
}

/** Encodes float values as a tensor of `type` (F32, F16, BF16, Q8_0, Q4_0, Q4_K). */
export function quantize(type: GgmlType, src: Float32Array): Uint8Array {
    switch (type) {
        case GgmlType.F32:
            return new Uint8Array(src.buffer, src.byteOffset, src.byteLength);
        case GgmlType.F16:
            return quantizeF16(src);
        case GgmlType.BF16:
            return quantizeBF16(src);
        case GgmlType.Q8_0:
            return quantizeQ8_0(src);
        case GgmlType.Q4_0:
            return quantizeQ4_0(src);
        case GgmlType.Q4_K:
            return quantizeQ4_K(src);
        default:
            throw new Error(`quantizing to ${ggmlTypeName(type)} is not supported`);
    }
}

/** Decodes `count` values of a tensor of `type` from its raw bytes. */
export function dequantize(type: GgmlType, bytes: Uint8Array, count: number): Float32Array {
    const out = new Float32Array(count);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const half = (at: number) => f16BitsToF32(bytes[at]! | (bytes[at + 1]! << 8));
    switch (type) {
        case GgmlType.F32:
            for (let i = 0; i < count; i++)
                out[i] = view.getFloat32(i * 4, true);
            return out;
        case GgmlType.F16:
            for (let i = 0; i < count; i++)
                out[i] = half(i * 2);
            return out;
        case GgmlType.BF16:
            for (let i = 0; i < count; i++)
                out[i] = bf16BitsToF32(view.getUint16(i * 2, true));
            return out;
        case GgmlType.Q8_0:
            for (let b = 0; b < checkLength(type, count); b++) {
                const d = half(b * 34);
                for (let j = 0; j < 32; j++)
                    out[b * 32 + j] = d * view.getInt8(b * 34 + 2 + j);
            }
            return out;
        case GgmlType.Q4_0:
            for (let b = 0; b < checkLength(type, count); b++) {
                const d = half(b * 18);
                for (let j = 0; j < 16; j++) {
                    const byte = bytes[b * 18 + 2 + j]!;
                    out[b * 32 + j] = d * ((byte & 0xf) - 8);
                    out[b * 32 + 16 + j] = d * ((byte >> 4) - 8);
                }
            }
            return out;
        case GgmlType.Q4_K:
            for (let b = 0; b < checkLength(type, count); b++) {
                const o = b * 144;
                const d = half(o);
                const dmin = half(o + 2);
                for (let c = 0; c < 4; c++) {
                    const [sc1, m1] = getScaleMinK4(2 * c, bytes, o + 4);
                    const [sc2, m2] = getScaleMinK4(2 * c + 1, bytes, o + 4);
                    for (let l = 0; l < 32; l++) {
                        const byte = bytes[o + 16 + c * 32 + l]!;
                        out[b * 256 + c * 64 + l] = d * sc1 * (byte & 0xf) - dmin * m1;
                        out[b * 256 + c * 64 + 32 + l] = d * sc2 * (byte >> 4) - dmin * m2;
                    }
                }
            }
            return out;
        default:
            throw new Error(`dequantizing ${ggmlTypeName(type)} is not supported`);
    }
}
