import { describe, expect, it } from "vitest";
import { cutWhere, fitSamplesToContext } from "../../src/train/dataset.js";

const sample = (prompt: number, response: number) => ({
    tokens: Array.from({ length: prompt + response }, (_, i) => i),
    mask: [...Array(prompt).fill(0), ...Array(response).fill(1)]
});

describe("fitting training samples into the context", () => {
    it("cuts prompt tokens on the left, keeps the response whole and the BOS in front", () => {
        const fitted = fitSamplesToContext([sample(10, 4), sample(3, 2)], 8, 0); // token 0 is the BOS
        expect(fitted.truncated).toBe(1);
        expect(fitted.leftCut).toBe(1);
        expect(fitted.dropped).toBe(0);
        expect(fitted.samples[0]).toEqual({ tokens: [0, 7, 8, 9, 10, 11, 12, 13], mask: [0, 0, 0, 0, 1, 1, 1, 1] });
        expect(fitted.samples[1]).toEqual(sample(3, 2));
    });

    it("without a head, keeps the last prompt tokens", () => {
        expect(fitSamplesToContext([sample(10, 4)], 6).samples[0]).toEqual({ tokens: [8, 9, 10, 11, 12, 13], mask: [0, 0, 1, 1, 1, 1] });
        // a model's BOS that does not start the sample is no head either
        expect(fitSamplesToContext([sample(10, 4)], 6, 5).samples[0]).toEqual({ tokens: [8, 9, 10, 11, 12, 13], mask: [0, 0, 1, 1, 1, 1] });
    });

    it("leaves out (and counts) a sample whose response alone does not fit", () => {
        const fitted = fitSamplesToContext([sample(5, 8), sample(2, 2)], 8, 0);
        expect(fitted).toEqual({ samples: [sample(2, 2)], truncated: 0, dropped: 1, leftCut: 0 });
        // Exactly one prompt token left besides nothing else: fits.
        expect(fitSamplesToContext([sample(5, 7)], 8).samples[0]!.tokens).toEqual([4, 5, 6, 7, 8, 9, 10, 11]);
    });

    it("keeps the task and question (keep) and cuts the oldest steps after them; on the left where the rest cannot make room", () => {
        // BOS 0, task and question 1-3, steps 4-9, response 10-13
        const withTask = { ...sample(10, 4), keep: 4 };
        const fitted = fitSamplesToContext([withTask], 10, 0);
        expect(fitted).toMatchObject({ truncated: 1, leftCut: 0, dropped: 0 });
        expect(fitted.samples[0]).toEqual({ tokens: [0, 1, 2, 3, 8, 9, 10, 11, 12, 13], mask: [0, 0, 0, 0, 0, 0, 1, 1, 1, 1], keep: 4 });
        // 6 tokens: the task and the response alone leave no room, so the left goes (and is counted)
        const tight = fitSamplesToContext([withTask], 6, 0);
        expect(tight).toMatchObject({ truncated: 1, leftCut: 1 });
        expect(tight.samples[0]!.tokens).toEqual([0, 9, 10, 11, 12, 13]);
        expect([cutWhere(fitted), cutWhere(tight), cutWhere({ truncated: 3, leftCut: 1 }), cutWhere({ truncated: 0, leftCut: 0 })])
            .toEqual(["their oldest steps after the question", "on the left of the prompt", "2 after the question, 1 on the left of the prompt", "none cut"]);
    });
});
