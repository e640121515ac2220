import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createEngine, type Engine, type LoadedModel } from "../../src/llm/engine.js";
import { createPromptFormatter, fixedPreamble, formatResponse, formatTrainingSample, plainResponseMarker } from "../../src/llm/prompt-format.js";
import { taskAndQuestionLength } from "../../src/agents/react-format.js";
import type { Llama3_1ChatWrapper } from "node-llama-cpp";
import { writeSyntheticModel } from "../../src/gguf/synth.js";
import { tokenizeWithFormatter } from "../../src/train/index.js";
import { tempDir } from "./helpers.js";

/**
 * The one formatter builds training samples and inference prompts: the prompt part of a
 * training sample must be exactly the tokens inference evaluates, and the loss mask must
 * cover exactly the response (and its end token).
 */
describe("prompt formatter", () => {
    let engine: Engine;
    let plainModel: LoadedModel;
    let chatModel: LoadedModel;
    let chatPath: string;
    beforeAll(async () => {
        const dir = tempDir("format");
        const common = { nEmbd: 64, layers: 2, heads: 4, kvHeads: 2, ff: 128, ctx: 512, vocab: 320, type: "f32" as const, seed: 5 };
        const plain = await writeSyntheticModel({ ...common, arch: "llama", out: path.join(dir, "plain.gguf") });
        const chat = await writeSyntheticModel({ ...common, arch: "qwen2", chatTemplate: "chatml", out: path.join(dir, "chat.gguf") });
        chatPath = chat.path;
        engine = await createEngine({ gpu: "cpu", threads: 2 });
        plainModel = await engine.loadModel(plain.path);
        chatModel = await engine.loadModel(chat.path);
    });
    afterAll(async () => {
        await plainModel?.dispose();
        await chatModel?.dispose();
        await engine?.dispose();
    });

    const sample = { input: "Question: What is 2+2?\nThought:", output: " It is 4, so Finish[4]." };

    it("uses the plain AutoAct template for a model without a chat template", () => {
        const formatter = createPromptFormatter(plainModel.model);
        expect(formatter.kind).toBe("plain");
        const prompt = formatter.formatPrompt(sample.input);
        expect(plainModel.detokenize(prompt)).toContain(sample.input + plainResponseMarker);
        expect(formatter.endTokens).toEqual([plainModel.eosToken]);
    });

    it("applies the model's chat template when it has one", () => {
        const formatter = createPromptFormatter(chatModel.model);
        expect(formatter.kind).toBe("chat-template");
        const text = chatModel.model.detokenize(formatter.formatPrompt(sample.input) as never, true);
        expect(text).toContain("<|im_start|>user");
        expect(text).toContain(sample.input);
        expect(text.trimEnd().endsWith("<|im_start|>assistant")).toBe(true);
        expect(createPromptFormatter(chatModel.model, { template: "plain" }).kind).toBe("plain");
    });

    for (const which of ["plain", "chat"] as const) {
        it(`${which}: the mask covers exactly the response tokens and the prompt round-trips`, () => {
            const model = which === "plain" ? plainModel : chatModel;
            const formatter = createPromptFormatter(model.model);
            const prompt = formatter.formatPrompt(sample.input);
            const response = formatResponse(model.model, formatter, sample.output);
            const { tokens, mask } = formatTrainingSample(model.model, formatter, sample);
            expect(tokens).toHaveLength(mask.length);
            expect(tokens.slice(0, prompt.length)).toEqual(prompt);
            expect(tokens.slice(prompt.length)).toEqual(response);
            expect(mask.slice(0, prompt.length).every((m) => m === 0)).toBe(true);
            expect(mask.slice(prompt.length).every((m) => m === 1)).toBe(true);
            expect(response.at(-1)).toBe(formatter.endTokens[0]);
            expect(model.detokenize(response.slice(0, -1))).toBe(sample.output);
        });

        it(`${which}: keep covers the task and question, not the steps after them`, () => {
            const model = which === "plain" ? plainModel : chatModel;
            const formatter = createPromptFormatter(model.model);
            // a multiple-choice question: its options are part of it
            const input = "You solve tasks.\nQuestion: Which is a mammal?\nOptions: (A) trout (B) whale\nThought: Look it up.\nAction: Search[whale]\nObservation: A mammal.\nThought:";
            const { tokens, keep } = formatTrainingSample(model.model, formatter, { input, output: " B." }, taskAndQuestionLength(input));
            const kept = model.model.detokenize(tokens.slice(0, keep!) as never, true);
            expect(kept).toContain("You solve tasks.\nQuestion: Which is a mammal?\nOptions: (A) trout (B) whale");
            expect(kept).not.toContain("Look it up");
            // and no more than a seam short of it (these models' tokens are about bytes)
            expect(model.model.detokenize(tokens.slice(0, keep! + 12) as never, true)).toContain("(B) whale\nThought");
            // no question, or no step after it: nothing to keep
            expect(taskAndQuestionLength("Once upon a time.\nThought:")).toBe(0);
            expect(taskAndQuestionLength("Header\nQuestion: Who?\n")).toBe(0);
        });
    }

    it("prompts as text read back as the same tokens (servers that take text): BOS left to the server only where the model adds it", () => {
        for (const model of [plainModel, chatModel]) {
            const prompt = createPromptFormatter(model.model).formatPrompt("Question: Where is the park?\nThought:");
            expect(model.promptTokens(model.promptText(prompt))).toEqual(prompt);
        }
        // the ChatML prompt's BOS is one its model does not add: it stays in the text
        expect(chatModel.promptText(createPromptFormatter(chatModel.model).formatPrompt("x")).startsWith(chatModel.detokenize([chatModel.bosToken!], { special: true }))).toBe(true);
    });

    it("standalone training formats its samples with the template it is given (a run's model.template)", async () => {
        const rows = [{ input: "Question: Where is the park?\nThought:", output: "I should look.", agent: "plan" }];
        for (const template of ["plain", "chat"] as const) {
            const { samples } = await tokenizeWithFormatter(chatPath, rows, 1, template);
            const prompt = createPromptFormatter(chatModel.model, { template }).formatPrompt(rows[0]!.input);
            expect(samples[0]!.tokens.slice(0, prompt.length), template).toEqual(prompt);
        }
    });
});

describe("Llama 3.1 and 3.2 preambles", () => {
    afterAll(() => vi.useRealTimers());

    it("are the same tokens on every day: the date fixed, no tool section", async () => {
        const { Llama3_1ChatWrapper, Llama3_2LightweightChatWrapper } = await import("node-llama-cpp");
        const render = (wrapper: { generateContextState: Llama3_1ChatWrapper["generateContextState"] }, day: string) => {
            vi.useFakeTimers({ toFake: ["Date"] });
            vi.setSystemTime(new Date(day));
            const { contextText } = wrapper.generateContextState({ chatHistory: [{ type: "user", text: "Question: x" }, { type: "model", response: [] }] });
            vi.useRealTimers();
            return contextText.toString();
        };
        for (const [Wrapper, settings] of [[Llama3_1ChatWrapper, fixedPreamble["llama3.1"]], [Llama3_2LightweightChatWrapper, fixedPreamble["llama3.2-lightweight"]]] as const) {
            // the library's default writes the day into the prompt
            expect(render(new Wrapper(), "2026-11-30T10:00:00Z")).not.toBe(render(new Wrapper(), "2026-12-01T10:00:00Z"));
            const fixed = new Wrapper(settings);
            const today = render(fixed, "2026-11-30T10:00:00Z");
            expect(render(fixed, "2027-03-01T10:00:00Z")).toBe(today);
            expect(today).toContain("Today Date: 26 Jul 2024");
            expect(today).not.toContain("Tool Instructions");
        }
    });
});
