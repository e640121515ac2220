import { describe, expect, it } from "vitest";
import {
    bf16BitsToF32, dequantize, f16BitsToF32, f32ToF16Bits, quantize, quantizeBF16, quantizeQ4_0, quantizeQ4_K, quantizeQ8_0
} from "../../src/gguf/quantize.js";
import { Xorshift128 } from "../../src/gguf/random.js";
import { GgmlType, tensorByteSize } from "../../src/gguf/types.js";

function randomValues(n: number, seed = 1, std = 1): Float32Array {
    const values = new Float32Array(n);
    new Xorshift128(seed, "quantize-test").fillUniform(values, std);
    return values;
}

describe("f16 conversion", () => {
    it("matches IEEE half bit patterns, rounding to nearest even", () => {
        expect(f32ToF16Bits(1)).toBe(0x3c00);
        expect(f32ToF16Bits(-2)).toBe(0xc000);
        expect(f32ToF16Bits(0.5)).toBe(0x3800);
        expect(f32ToF16Bits(65504)).toBe(0x7bff);
        expect(f32ToF16Bits(65520)).toBe(0x7c00); // rounds up to infinity
        expect(f32ToF16Bits(Infinity)).toBe(0x7c00);
        expect(f32ToF16Bits(NaN) & 0x7e00).toBe(0x7e00);
        expect(f32ToF16Bits(2 ** -24)).toBe(0x0001); // smallest subnormal
        expect(f32ToF16Bits(2 ** -26)).toBe(0x0000);
        expect(f32ToF16Bits(-0)).toBe(0x8000);
        // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties go to the even mantissa (1).
        expect(f32ToF16Bits(1 + 2 ** -11)).toBe(0x3c00);
        // 1 + 3*2^-11 is halfway between 1+2^-10 (odd) and 1+2^-9 (even): rounds up.
        expect(f32ToF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    });

    it("round-trips every finite half value exactly", () => {
        for (let h = 0; h < 0x10000; h++) {
            const exp = (h >> 10) & 0x1f;
            if (exp === 0x1f)
                continue;
            expect(f32ToF16Bits(f16BitsToF32(h))).toBe(h === 0x8000 ? 0x8000 : h);
        }
    });
});

describe("bf16 conversion", () => {
    const bits = (x: number) => { const b = quantizeBF16(new Float32Array([x])); return b[0]! | (b[1]! << 8); };

    it("keeps the upper 16 bits of the float, rounding to nearest even", () => {
        expect(bits(1)).toBe(0x3f80);
        expect(bits(-2)).toBe(0xc000);
        expect(bits(1 + 2 ** -8)).toBe(0x3f80); // halfway between 1 (even) and 1 + 2^-7: down
        expect(bits(1 + 3 * 2 ** -8)).toBe(0x3f82); // halfway between 1 + 2^-7 (odd) and 1 + 2^-6: up
        expect(bits(1 + 2 ** -8 + 2 ** -20)).toBe(0x3f81); // above halfway: up
        expect(bits(Infinity)).toBe(0x7f80);
        expect(bits(3.4e38)).toBe(0x7f80); // rounds up to infinity
        expect(bits(NaN) & 0x7fc0).toBe(0x7fc0); // stays NaN
        expect(bits(-0)).toBe(0x8000);
    });

    it("round-trips every finite bf16 value exactly", () => {
        for (let h = 0; h < 0x10000; h++) {
            if (((h >> 7) & 0xff) === 0xff)
                continue;
            expect(bits(bf16BitsToF32(h))).toBe(h);
        }
        const x = randomValues(64, 4);
        const back = dequantize(GgmlType.BF16, quantize(GgmlType.BF16, x), 64);
        x.forEach((v, i) => expect(Math.abs(back[i]! - v)).toBeLessThanOrEqual(Math.abs(v) * 2 ** -8));
    });
});

describe("block layouts", () => {
    it("Q8_0: f16 scale amax/127, then 32 int8 rounded half away from zero", () => {
        const x = new Float32Array(32);
        for (let i = 0; i < 32; i++)
            x[i] = (i - 16) * 1.25;
        x[0] = -127; // amax 127 -> d = 1 exactly, so ties are exact
        x[31] = 2.5; // rounds away from zero to 3 (Math.round would give 3 too)
        x[30] = -2.5; // to -3 (Math.round would give -2)
        const bytes = quantizeQ8_0(x);
        expect(bytes.length).toBe(34);
        expect(bytes[0]! | (bytes[1]! << 8)).toBe(0x3c00);
        const q = new Int8Array(bytes.buffer, 2, 32);
        expect(q[0]).toBe(-127);
        expect(q[16]).toBe(0);
        expect(q[17]).toBe(1); // 1.25 -> 1
        expect(q[19]).toBe(4); // 3.75 -> 4
        expect(q[31]).toBe(3);
        expect(q[30]).toBe(-3);
    });

    it("Q4_0: d = max/-8, element j in the low nibble of byte j, element j+16 in the high nibble", () => {
        const x = new Float32Array(32);
        for (let i = 0; i < 32; i++)
            x[i] = i === 5 ? -8 : 0;
        x[20] = 7; // -> q = trunc(7 / 1 + 8.5) clamped = 15 ... with d = -8/-8 = 1: x*id = 7 -> 15
        const bytes = quantizeQ4_0(x);
        expect(bytes.length).toBe(18);
        expect(f16BitsToF32(bytes[0]! | (bytes[1]! << 8))).toBe(1);
        expect(bytes[2 + 5]! & 0xf).toBe(0); // -8 -> 0
        expect(bytes[2 + 4]! >> 4).toBe(15); // element 20 = high nibble of byte 4
        expect(bytes[2 + 0]).toBe(0x88); // zeros -> 8 in both nibbles
        expect(Array.from(dequantize(GgmlType.Q4_0, bytes, 32))).toEqual(Array.from(x));
    });

    it("Q4_K: 144 bytes per 256 values; scales/mins 6-bit packed; decodes what it encodes", () => {
        const x = randomValues(512, 3);
        const bytes = quantizeQ4_K(x);
        expect(bytes.length).toBe(2 * 144);
        expect(tensorByteSize(GgmlType.Q4_K, [256, 2])).toBe(288);
        // A constant sub-block ramp: values decoded from the packed layout must be ordered like the input.
        const ramp = new Float32Array(256);
        for (let i = 0; i < 256; i++)
            ramp[i] = (i % 32) / 31 - (i >> 5) * 0.1;
        const decoded = dequantize(GgmlType.Q4_K, quantizeQ4_K(ramp), 256);
        for (let i = 0; i < 256; i++)
            expect(Math.abs(decoded[i]! - ramp[i]!)).toBeLessThan(0.05);
    });
});

describe("round-trip error bounds", () => {
    const n = 256 * 64;
    const x = randomValues(n, 11, 0.05);

    function maxErrorPerBlock(type: GgmlType, blockSize: number, bound: (amax: number) => number): void {
        const y = dequantize(type, quantize(type, x), n);
        for (let b = 0; b < n / blockSize; b++) {
            let amax = 0;
            let err = 0;
            for (let j = 0; j < blockSize; j++) {
                amax = Math.max(amax, Math.abs(x[b * blockSize + j]!));
                err = Math.max(err, Math.abs(x[b * blockSize + j]! - y[b * blockSize + j]!));
            }
            expect(err).toBeLessThanOrEqual(bound(amax));
        }
    }

    it("F16 within half an ulp (2^-11 relative)", () => {
        const y = dequantize(GgmlType.F16, quantize(GgmlType.F16, x), n);
        for (let i = 0; i < n; i++)
            expect(Math.abs(y[i]! - x[i]!)).toBeLessThanOrEqual(Math.abs(x[i]!) * 2 ** -11 + 2 ** -25);
    });

    it("Q8_0 within half a step (amax/254) plus the f16 scale's rounding", () => {
        maxErrorPerBlock(GgmlType.Q8_0, 32, (amax) => amax / 254 + amax * 2 ** -10);
    });

    it("Q4_0 within half a step (amax/16) plus the clamp at +7", () => {
        // The positive end can clamp from 7.5 steps to 7: at most one step of amax/8.
        maxErrorPerBlock(GgmlType.Q4_0, 32, (amax) => amax / 8 + amax * 2 ** -9);
    });

    it("Q4_K RMS error under 4-bit noise (range/15/sqrt(12) with scale rounding)", () => {
        const y = dequantize(GgmlType.Q4_K, quantize(GgmlType.Q4_K, x), n);
        let se = 0;
        for (let i = 0; i < n; i++)
            se += (x[i]! - y[i]!) ** 2;
        const rms = Math.sqrt(se / n);
        const range = 2 * 0.05 * Math.sqrt(3);
        expect(rms).toBeLessThan((range / 15 / Math.sqrt(12)) * 1.5);
        expect(rms).toBeGreaterThan(0);
    });

    it("rejects lengths that are not a multiple of the block size", () => {
        expect(() => quantizeQ8_0(new Float32Array(31))).toThrow(/multiple of 32/);
        expect(() => quantizeQ4_K(new Float32Array(128))).toThrow(/multiple of 256/);
    });
});
