import { describe, expect, it } from "vitest";
import { StopMatcher, cutAtStop, cutOffText } from "../../src/llm/stop-matcher.js";

/** A byte-level "tokenizer": token i is byte i; an incomplete UTF-8 sequence decodes to U+FFFD. */
const bytes = (text: string) => [...Buffer.from(text, "utf8")];
const detokenize = (tokens: number[]) => Buffer.from(tokens).toString("utf8");

describe("StopMatcher", () => {
    it("finds a stop string spread over several tokens, each token decoded once", () => {
        let calls = 0;
        const matcher = new StopMatcher(["\nObservation:"], (tokens) => {
            calls++;
            return detokenize(tokens);
        });
        const tokens = bytes("Thought: look it up\nObservation: found");
        let found: string | undefined;
        let at = -1;
        for (const [i, token] of tokens.entries()) {
            found = matcher.push(token);
            if (found != null) {
                at = i;
                break;
            }
        }
        expect(found).toBe("\nObservation:");
        expect(at).toBe("Thought: look it up\nObservation:".length - 1);
        expect(calls).toBe(at + 1);
    });

    it("waits for the token that completes a multi-byte character, and reports the earliest stop", () => {
        const matcher = new StopMatcher(["é!", "!"], (tokens) => detokenize(tokens));
        const results = bytes("caf\u00e9!").map((t) => matcher.push(t));
        expect(results.slice(0, -1).every((r) => r == null)).toBe(true);
        expect(results.at(-1)).toBe("é!");
        expect(new StopMatcher([], detokenize).push(1)).toBeUndefined();
    });

    it("cutAtStop cuts at the earliest stop", () => {
        expect(cutAtStop("a, b. c", [".", ","])).toEqual({ text: "a", stop: "," });
        expect(cutAtStop("abc", ["x"])).toEqual({ text: "abc" });
    });

    it("cutOffText drops an unfinished character and an ending that begins a stop string", () => {
        expect(cutOffText(detokenize(bytes("Hé said 日本").slice(0, -2)), [])).toBe("Hé said 日");
        expect(cutOffText("Search[Lily]\nO", ["\nObservation"])).toBe("Search[Lily]");
        expect(cutOffText("Search[Lily]\n", ["x", "\nObservation"])).toBe("Search[Lily]");
        expect(cutOffText("Search[Lily]\nOx", ["\nObservation"])).toBe("Search[Lily]\nOx");
        // the longest such ending of any stop
        expect(cutOffText("a\nObs", ["s", "\nObservation"])).toBe("a");
        // the whole stop would have been cut by the matcher: not an ending to drop here
        expect(cutOffText("abc", ["abc"])).toBe("abc");
    });
});
