import type { ChatWrapper, LlamaModel, Token } from "node-llama-cpp";
import { loadedLlamaLib } from "./llama-lib.js";

/**
 * The one prompt formatter of the project. Training samples and inference prompts both go
 * through it, so the tokens a sub-agent is trained on are exactly the tokens it sees when
 * it is asked at inference time.
 *
 * - A model with a chat template gets one user turn holding the input, then the assistant
 *   prefix; the response ends with the model's end-of-turn token.
 * - A model without one gets the plain AutoAct template: input, a response marker, then the
 *   response and the end-of-sequence token.
 */
export interface PromptFormatter {
    readonly kind: "chat-template" | "plain";
    /** Name of the chat wrapper node-llama-cpp resolved, or "plain". */
    readonly templateName: string;
    /** Token ids of the prompt, ending exactly where the response begins. */
    formatPrompt(input: string): number[];
    /** Token ids that close a response (end of turn / end of sequence). */
    readonly endTokens: readonly number[];
}

export interface TrainingSampleTokens {
    tokens: number[];
    /** 1 where the token is part of the response (its prediction is trained), else 0. */
    mask: number[];
    /** Leading tokens a cut to fit a context leaves in place (the task and question); absent: none but BOS. */
    keep?: number;
}

/** The response marker of the plain template, as in the original AutoAct training files. */
export const plainResponseMarker = "\n\n### Response:\n";

/** Prompt templates: "auto" uses the model's chat template when its GGUF has one, else the plain one. */
export const promptTemplates = ["auto", "chat", "plain"] as const;
export type PromptTemplate = (typeof promptTemplates)[number];

export interface PromptFormatterOptions {
    /** Defaults to "auto". */
    template?: PromptTemplate;
}

export function createPromptFormatter(model: LlamaModel, { template = "auto" }: PromptFormatterOptions = {}): PromptFormatter {
    const hasChatTemplate = typeof model.fileInfo.metadata?.tokenizer?.chat_template === "string";
    if (template === "chat" || (template === "auto" && hasChatTemplate))
        return createChatFormatter(model, loadedLlamaLib().resolveChatWrapper(model, { warningLogs: false, customWrapperSettings: fixedPreamble }));
    return createPlainFormatter(model);
}

/**
 * Llama 3.1 and 3.2 wrappers write today's date into every prompt's preamble (and a tool-use
 * section): a sample tokenized on one day would be asked with other tokens the next. The date
 * is fixed to the one Meta's own template falls back to, and the tool section left out (the
 * agents' tools are in the prompt text).
 */
export const fixedPreamble = {
    "llama3.1": { todayDate: new Date("2024-07-26T12:00:00Z"), noToolInstructions: true },
    "llama3.2-lightweight": { todayDate: new Date("2024-07-26T12:00:00Z"), noToolInstructions: true }
} as const;

function createPlainFormatter(model: LlamaModel): PromptFormatter {
    const bos = model.tokens.shouldPrependBosToken && model.tokens.bos != null ? [model.tokens.bos as number] : [];
    const eos = model.tokens.eos ?? model.tokens.eot;
    return {
        kind: "plain",
        templateName: "plain",
        formatPrompt: (input) => [...bos, ...tokenizeText(model, input + plainResponseMarker)],
        endTokens: eos == null ? [] : [eos as number]
    };
}

function createChatFormatter(model: LlamaModel, wrapper: ChatWrapper): PromptFormatter {
    const end = model.tokens.eot ?? model.tokens.eos;
    return {
        kind: "chat-template",
        templateName: wrapper.wrapperName,
        formatPrompt(input) {
            const { contextText } = wrapper.generateContextState({
                chatHistory: [
                    { type: "user", text: input },
                    { type: "model", response: [] }
                ]
            });
            return contextText.tokenize(model.tokenizer).map(Number);
        },
        endTokens: end == null ? [] : [end as number]
    };
}

/**
 * Tokens of a response: its text (no special-token parsing, no BOS) then the end tokens.
 * Tokenized on its own, as the model generates it after the prompt.
 */
export function formatResponse(model: LlamaModel, formatter: PromptFormatter, output: string): number[] {
    return [...tokenizeText(model, output), ...formatter.endTokens];
}

/**
 * One training sample: prompt tokens (mask 0) then response tokens (mask 1). `keepChars`: the
 * input's leading characters whose tokens a cut to fit a context must leave (`keep`, found as
 * the tokens the prompt shares with the prompt of those characters alone).
 */
export function formatTrainingSample(
    model: LlamaModel,
    formatter: PromptFormatter,
    sample: { input: string; output: string },
    keepChars = 0
): TrainingSampleTokens {
    const prompt = formatter.formatPrompt(sample.input);
    const response = formatResponse(model, formatter, sample.output);
    const tokens = { tokens: [...prompt, ...response], mask: [...prompt.map(() => 0), ...response.map(() => 1)] };
    if (keepChars <= 0 || keepChars >= sample.input.length)
        return tokens;
    const head = formatter.formatPrompt(sample.input.slice(0, keepChars));
    let keep = 0;
    while (keep < head.length && keep < prompt.length && head[keep] === prompt[keep])
        keep++;
    return { ...tokens, keep };
}

function tokenizeText(model: LlamaModel, text: string): number[] {
    return model.tokenize(text, false).map((token: Token) => token as number);
}
