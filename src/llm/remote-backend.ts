import fs from "node:fs";
import path from "node:path";
import { InputError, RuntimeFailure, errorMessage } from "../util/errors.js";
import { sha256File } from "../util/fs.js";
import type { RequestBackend } from "./generator.js";
import { adapterWeightsId, isServedNameOf, servedAdapterName } from "./served-adapter.js";
import type { AdapterSpec, GenerationRequest, GenerationResult, StopReason } from "./types.js";

/** Servers the remote backend speaks to (all through the OpenAI-compatible `/v1/completions`). */
export const remoteServerKinds = ["auto", "llama-server", "vllm", "ollama", "openai"] as const;
export type RemoteServerKind = (typeof remoteServerKinds)[number];

export interface RemoteOptions {
    /** Base URLs of OpenAI-compatible servers (`http://host:port`, with or without `/v1`). */
    endpoints: string[];
    /** Requests in flight per endpoint. Defaults to 4. */
    concurrency?: number;
    /** Seconds one request may take before it is retried. Defaults to 300. */
    timeoutS?: number;
    /** Retries of a request after a 429, a 5xx, a connection error, a timeout or a malformed reply. Defaults to 4. */
    retries?: number;
    /** What the servers are; "auto" asks each one (`/props`, `/version`, `/api/version`). Defaults to "auto". */
    server?: RemoteServerKind;
    /** The `model` field of requests; "" = the first model the server lists. Defaults to "". */
    servedName?: string;
    /** First retry delay in ms, doubled each time (tests make it short). Defaults to 500. */
    backoffMs?: number;
    /** Tokens each request's sequence holds; Ollama is told it per request (`num_ctx`; its own default is 2048). */
    contextSize?: number;
}

/** How a prompt (the local formatter's token ids) and the adapters reach one server. */
interface Endpoint {
    url: string;
    kind: Exclude<RemoteServerKind, "auto">;
    /**
     * The model of requests without an adapter: model.served_name, else the one the server lists
     * (vLLM: its base, listed before and beside its LoRA modules). Unset when the server lists
     * several (Ollama lists every model it has) and nothing says which.
     */
    model?: string;
    /** The models the server lists (GET /v1/models). */
    listed: string[];
    /** llama-server: the adapters it loaded (GET /lora-adapters), their ids, paths and task names (read at load time). */
    loras: { id: number; path: string; task_name?: string }[];
    /** How each of the backend's adapters is asked for here, by file: llama-server's id, or a model name. */
    selectors: Map<string, AdapterSelector>;
    /** vLLM: whether it takes `structured_outputs` (0.10.2 on; 0.12 dropped the guided_* fields). */
    structuredOutputs: boolean;
}

/**
 * The remote decode backend: every request goes whole to `/v1/completions` of one endpoint
 * (slot s -> endpoint floor(s / concurrency)), or Ollama's own `/api/generate`, with the
 * local prompt's token ids (llama-server, vLLM) or their exact text (Ollama, other servers),
 * the same sampling values and seed, stop strings, grammar or JSON schema where the server has
 * them, and the sub-agent's adapter (llama-server's per-request `lora`, or the adapter's served
 * name on vLLM and Ollama).
 * Retries with exponential back-off; the last failure is one line naming the endpoint.
 */
export class RemoteBackend implements RequestBackend {
    readonly name = "openai";
    private readonly controller = new AbortController();

    private constructor(
        private readonly endpoints: Endpoint[],
        private readonly concurrency: number,
        private readonly options: Required<Pick<RemoteOptions, "timeoutS" | "retries" | "backoffMs">> & { contextSize?: number },
        private readonly adapters: AdapterSpec[],
        private readonly detokenize: (tokens: number[]) => string,
        private readonly tokenize: (text: string) => number[]
    ) {}

    /** Connects to every endpoint (kind, model name, adapters), retrying as requests do. */
    static async connect(options: RemoteOptions & { adapters?: AdapterSpec[]; detokenize: (tokens: number[]) => string; tokenize: (text: string) => number[] }): Promise<RemoteBackend> {
        const settings = checkRemoteOptions(options);
        const endpoints: Endpoint[] = [];
        for (const url of settings.endpoints)
            endpoints.push(await describeEndpoint(url, settings));
        const adapters = options.adapters ?? [];
        for (const endpoint of endpoints) {
            // both fail now, not mid-run: a server without the adapter, or without a clear base model
            for (const adapter of adapters)
                endpoint.selectors.set(adapter.filePath, await adapterSelector(endpoint, adapter));
            if (adapters.length === 0 && endpoint.model == null) {
                const some = endpoint.listed.slice(0, 5).join(", ") + (endpoint.listed.length > 5 ? ", ..." : "");
                throw new InputError(`remote model: ${endpoint.url} (${endpoint.kind}) serves ${endpoint.listed.length} models (${some}): set model.served_name to the one to use`);
            }
        }
        return new RemoteBackend(endpoints, settings.concurrency, settings, adapters, options.detokenize, options.tokenize);
    }

    /** Slots: `concurrency` per endpoint. */
    get slots(): number {
        return this.endpoints.length * this.concurrency;
    }

    async run(request: GenerationRequest, prompt: number[], slot: number): Promise<GenerationResult> {
        const endpoint = this.endpoints[Math.floor(slot / this.concurrency) % this.endpoints.length]!;
        const started = performance.now();
        const ollama = endpoint.kind === "ollama";
        const route = ollama ? "/api/generate" : "/v1/completions";
        const body = ollama ? this.ollamaBody(endpoint, request, prompt) : this.body(endpoint, request, prompt);
        const reply = await withRetries(endpoint.url, `POST ${route}`, this.options, this.controller.signal, async (signal) => {
            const json = await postJson(`${endpoint.url}${route}`, body, signal);
            return ollama ? parseOllamaGeneration(json) : parseCompletion(json);
        });
        return {
            text: reply.text,
            // The server's tokens are not returned by every server: the text's tokens, for counts.
            tokens: this.tokenize(reply.text),
            stopReason: reply.stopReason,
            promptTokens: reply.promptTokens ?? prompt.length,
            generatedTokens: reply.generatedTokens ?? this.tokenize(reply.text).length,
            timeMs: performance.now() - started
        };
    }

    release(): void {
        this.controller.abort();
    }

    /** The request body: the local path's prompt and sampling, in the server's dialect. */
    private body(endpoint: Endpoint, request: GenerationRequest, prompt: number[]): Record<string, unknown> {
        const tokensIn = endpoint.kind === "llama-server" || endpoint.kind === "vllm";
        const body: Record<string, unknown> = {
            model: endpoint.model,
            prompt: tokensIn ? prompt : this.detokenize(prompt),
            max_tokens: request.maxTokens ?? 256,
            temperature: request.temperature ?? 0,
            top_p: request.topP ?? 1,
            stream: false
        };
        if (request.seed != null)
            body.seed = request.seed;
        if (request.stop != null && request.stop.length > 0)
            body.stop = request.stop;
        if (endpoint.kind === "llama-server" || endpoint.kind === "vllm") {
            body.top_k = request.topK != null && request.topK > 0 ? request.topK : (endpoint.kind === "vllm" ? -1 : 0);
            if (request.ignoreEos === true)
                body.ignore_eos = true;
        }
        if (endpoint.kind === "llama-server") {
            // llama-server's own defaults add min-p 0.05 and top-k 40: off, as in the local path
            body.min_p = 0;
            body.cache_prompt = true;
        }
        if (request.grammar != null)
            Object.assign(body, grammarFields(endpoint, request.grammar));
        Object.assign(body, this.adapters.length === 0 && endpoint.kind !== "llama-server" ? {} : adapterFields(endpoint, this.adapters));
        return body;
    }

    /**
     * Ollama's own route: its OpenAI-compatible `/v1/completions` puts every prompt through the
     * model's chat template (no `raw`), ignores `response_format`, and takes neither top-k nor
     * the context size, so a stock model would see autoact's formatted prompt wrapped a second
     * time, sampled with Ollama's defaults and cut at 2048 tokens. `/api/generate` takes all four.
     */
    private ollamaBody(endpoint: Endpoint, request: GenerationRequest, prompt: number[]): Record<string, unknown> {
        const options: Record<string, unknown> = {
            num_predict: request.maxTokens ?? 256,
            temperature: request.temperature ?? 0,
            top_p: request.topP ?? 1,
            top_k: request.topK != null && request.topK > 0 ? request.topK : 0,
            // every value set: Ollama's own defaults (top-k 40, top-p 0.9, a repeat penalty in older versions) are not the local path's
            min_p: 0,
            repeat_penalty: 1
        };
        if (this.options.contextSize != null)
            options.num_ctx = this.options.contextSize;
        if (request.seed != null)
            options.seed = request.seed;
        if (request.stop != null && request.stop.length > 0)
            options.stop = request.stop;
        const body: Record<string, unknown> = { model: endpoint.model, prompt: this.detokenize(prompt), raw: true, stream: false, options };
        if (request.grammar != null)
            Object.assign(body, grammarFields(endpoint, request.grammar));
        if (this.adapters.length > 0)
            Object.assign(body, adapterFields(endpoint, this.adapters));
        return body;
    }
}

function checkRemoteOptions(options: RemoteOptions): Required<Omit<RemoteOptions, "server" | "servedName" | "contextSize">> & { server: RemoteServerKind; servedName: string; contextSize?: number } {
    if (!Array.isArray(options.endpoints) || options.endpoints.length === 0)
        throw new InputError("model.endpoints: a remote backend needs at least one server URL, e.g. [http://127.0.0.1:8080]");
    const endpoints = options.endpoints.map((url) => {
        let parsed: URL;
        try {
            parsed = new URL(url);
        } catch {
            throw new InputError(`model.endpoints: not a URL: ${JSON.stringify(url)}`);
        }
        if (parsed.protocol !== "http:" && parsed.protocol !== "https:")
            throw new InputError(`model.endpoints: ${url}: only http and https URLs are supported`);
        return parsed.toString().replace(/\/+$/, "").replace(/\/v1$/, "");
    });
    const concurrency = options.concurrency ?? 4;
    const timeoutS = options.timeoutS ?? 300;
    const retries = options.retries ?? 4;
    const server = options.server ?? "auto";
    if (!Number.isInteger(concurrency) || concurrency < 1)
        throw new InputError(`remote concurrency must be a positive integer, got ${concurrency}`);
    if (!(timeoutS > 0))
        throw new InputError(`model.timeout_s must be positive, got ${timeoutS}`);
    if (!Number.isInteger(retries) || retries < 0)
        throw new InputError(`model.retries must be a whole number, got ${retries}`);
    if (!(remoteServerKinds as readonly string[]).includes(server))
        throw new InputError(`model.server: unknown server kind "${server}" (expected ${remoteServerKinds.join(", ")})`);
    if (options.contextSize != null && !(Number.isInteger(options.contextSize) && options.contextSize > 0))
        throw new InputError(`remote context size must be a positive integer, got ${options.contextSize}`);
    return { endpoints, concurrency, timeoutS, retries, server, servedName: options.servedName ?? "", backoffMs: options.backoffMs ?? 500, contextSize: options.contextSize };
}

/** Kind (asked when "auto"), model name and (llama-server) adapter ids of one server. */
async function describeEndpoint(url: string, settings: ReturnType<typeof checkRemoteOptions>): Promise<Endpoint> {
    const get = (route: string) => withRetries(url, `GET ${route}`, settings, undefined, (signal) => getJson(`${url}${route}`, signal));
    // A route the server lacks (404, or a page that is not JSON) says it is another kind.
    const probe = async (route: string) => await getJson(`${url}${route}`, AbortSignal.timeout(settings.timeoutS * 1000)).catch(() => undefined);
    const vllmVersion = async () => (await probe("/version") as { version?: unknown } | undefined)?.version;
    let kind = settings.server;
    let version: unknown;
    // The first call also tells whether the server is up at all (retried like requests).
    const models = await get("/v1/models") as { data?: { id?: unknown; parent?: unknown }[] };
    if (kind === "auto") {
        const props = await probe("/props") as { default_generation_settings?: unknown } | undefined;
        if (props?.default_generation_settings != null)
            kind = "llama-server";
        else if ((await probe("/api/version") as { version?: string } | undefined)?.version != null)
            kind = "ollama";
        else if ((version = await vllmVersion()) != null)
            kind = "vllm";
        else
            kind = "openai";
    } else if (kind === "vllm") {
        version = await vllmVersion();
    }
    const listed = (Array.isArray(models.data) ? models.data : []).filter((m) => typeof m.id === "string");
    if (listed.length === 0 && settings.servedName === "")
        throw new RuntimeFailure(`remote model: ${url} lists no model (GET /v1/models); set model.served_name`);
    // vLLM lists its LoRA modules beside the base, each with the base as its parent
    const bases = kind === "vllm" ? listed.filter((m) => m.parent == null) : listed;
    const model = settings.servedName || (kind === "llama-server" || bases.length === 1 ? String(bases[0]!.id) : undefined);
    const loras: Endpoint["loras"] = [];
    if (kind === "llama-server") {
        const list = await get("/lora-adapters") as Endpoint["loras"];
        loras.push(...(Array.isArray(list) ? list : []));
    }
    return {
        url, kind: kind as Endpoint["kind"], model, listed: listed.map((m) => String(m.id)), loras, selectors: new Map(),
        structuredOutputs: kind === "vllm" && takesStructuredOutputs(version)
    };
}

/**
 * vLLM moved its grammar fields into `structured_outputs` in 0.10.2 and dropped guided_* in
 * 0.12, where they are ignored without an error (the output comes back unconstrained). An
 * unknown version is taken as a recent one.
 */
function takesStructuredOutputs(version: unknown): boolean {
    const match = typeof version === "string" ? /^v?(\d+)\.(\d+)\.(\d+)/.exec(version) : null;
    if (match == null)
        return true;
    const [major, minor, patch] = match.slice(1).map(Number) as [number, number, number];
    return major > 0 || minor > 10 || (minor === 10 && patch >= 2);
}

type AdapterSelector = { id: number } | { model: string };

/**
 * How one endpoint is asked for an adapter. llama-server: the loaded adapter named by content as
 * `autoact deploy` writes it (plan-<sha256[:12]>.gguf: only these very weights), else the one of
 * the same file name and, where that file is on this machine, the same file (every run's is
 * plan.gguf, ...), loaded with the weights it holds now (the weights' id the trainer writes as
 * the task name, which the server read at load time). vLLM and Ollama: the model they list under
 * the adapter's served name.
 */
async function adapterSelector(endpoint: Endpoint, adapter: AdapterSpec): Promise<AdapterSelector> {
    const file = path.basename(adapter.filePath);
    if (endpoint.kind === "llama-server") {
        if (fs.existsSync(adapter.filePath)) {
            const served = `${await servedAdapterName(adapter.filePath)}.gguf`;
            const byContent = endpoint.loras.find((lora) => path.basename(lora.path) === served);
            if (byContent != null)
                return { id: byContent.id };
            // a server of deploy's with other content names serves other weights (a retrain since it started)
            const stale = endpoint.loras.find((lora) => isServedNameOf(lora.path, adapter.filePath));
            if (stale != null)
                throw new InputError(`remote model: ${endpoint.url} serves ${path.basename(stale.path)}, not ${served} (the weights of ${adapter.filePath} now): restart it with this run's deploy script (autoact deploy)`);
        }
        const named = endpoint.loras.filter((lora) => path.basename(lora.path) === file);
        if (named.length === 0)
            throw new InputError(`remote model: ${endpoint.url} has no adapter ${file} loaded (start llama-server with --lora ${adapter.filePath}, see autoact deploy)`);
        const ours = await sha256File(adapter.filePath);
        // the weights' id the server read when it loaded the file; another than the file's now is a
        // retrain since (the same path, other weights)
        const weights = await adapterWeightsId(adapter.filePath);
        const loadedOther = (lora: Endpoint["loras"][number]) => weights != null && lora.task_name != null && lora.task_name !== "" && lora.task_name !== weights;
        const elsewhere = named.find((lora) => !path.isAbsolute(lora.path) || !fs.existsSync(lora.path));
        for (const lora of named)
            if (lora !== elsewhere && await sha256File(lora.path) === ours) {
                if (loadedOther(lora))
                    throw new InputError(`remote model: ${endpoint.url} loaded ${lora.path} before it was rewritten (it serves "${lora.task_name}", the file holds "${weights}" now): restart llama-server`);
                return { id: lora.id };
            }
        if (elsewhere != null) {
            // a file on the server's machine: its name and weights' id are all there is to go by
            if (loadedOther(elsewhere))
                throw new InputError(`remote model: ${endpoint.url} serves other weights as ${elsewhere.path} ("${elsewhere.task_name}", ${adapter.filePath} holds "${weights}"): start llama-server with this run's adapters (autoact deploy)`);
            return { id: elsewhere.id };
        }
        throw new InputError(`remote model: ${endpoint.url} serves ${named[0]!.path}, not ${adapter.filePath} (another run's ${file}): start llama-server with this run's adapters (autoact deploy)`);
    }
    if (endpoint.kind === "vllm" || endpoint.kind === "ollama") {
        const model = await servedAdapterName(adapter.filePath);
        // Ollama lists its models with their tag
        if (!endpoint.listed.some((id) => id === model || id === `${model}:latest`))
            throw new InputError(`remote model: ${endpoint.url} (${endpoint.kind}) serves no model ${model}, the name of ${adapter.filePath} (its hash): serve it as autoact deploy writes`);
        return { model };
    }
    throw new InputError(`remote model: ${endpoint.url} (${endpoint.kind}) cannot select LoRA adapters per request; use llama-server, vLLM or Ollama`);
}

/** llama-server: every loaded adapter with scale 1 (the chosen ones) or 0; vLLM/Ollama: the adapter's served name. */
function adapterFields(endpoint: Endpoint, adapters: AdapterSpec[]): Record<string, unknown> {
    const selector = (adapter: AdapterSpec) => endpoint.selectors.get(adapter.filePath)!;
    if (endpoint.kind === "llama-server") {
        const chosen = new Map(adapters.map((a) => [(selector(a) as { id: number }).id, a.scale ?? 1]));
        return { lora: endpoint.loras.map((l) => l.id).sort((a, b) => a - b).map((id) => ({ id, scale: chosen.get(id) ?? 0 })) };
    }
    if (adapters.length > 1)
        throw new InputError(`remote model: ${endpoint.url} (${endpoint.kind}) serves one adapter per model name, got ${adapters.length}`);
    return { model: (selector(adapters[0]!) as { model: string }).model };
}

function grammarFields(endpoint: Endpoint, grammar: NonNullable<GenerationRequest["grammar"]>): Record<string, unknown> {
    const gbnf = "gbnf" in grammar;
    switch (endpoint.kind) {
        case "llama-server":
            return gbnf ? { grammar: grammar.gbnf } : { json_schema: grammar.jsonSchema };
        case "vllm":
            if (endpoint.structuredOutputs)
                return { structured_outputs: gbnf ? { grammar: grammar.gbnf } : { json: grammar.jsonSchema } };
            return gbnf ? { guided_grammar: grammar.gbnf } : { guided_json: grammar.jsonSchema };
        case "ollama":
            if (gbnf)
                throw new InputError(`remote model: ${endpoint.url} (ollama) takes no GBNF grammar; use llama-server or vLLM`);
            return { format: grammar.jsonSchema };
        default:
            if (gbnf)
                throw new InputError(`remote model: ${endpoint.url} (${endpoint.kind}) takes no GBNF grammar; use llama-server or vLLM`);
            return { response_format: { type: "json_schema", json_schema: { name: "output", schema: grammar.jsonSchema } } };
    }
}

interface Completion {
    text: string;
    stopReason: StopReason;
    promptTokens?: number;
    generatedTokens?: number;
}

function parseCompletion(json: unknown): Completion {
    const reply = json as { choices?: { text?: unknown; finish_reason?: unknown; stop_reason?: unknown }[]; usage?: { prompt_tokens?: number; completion_tokens?: number } };
    const choice = reply?.choices?.[0];
    if (choice == null || typeof choice.text !== "string")
        throw new MalformedReply("no choices[0].text in the reply");
    const finish = choice.finish_reason;
    const stopReason: StopReason = finish === "length" ? "maxTokens" : typeof choice.stop_reason === "string" ? "stop" : "eos";
    return { text: choice.text, stopReason, promptTokens: reply.usage?.prompt_tokens, generatedTokens: reply.usage?.completion_tokens };
}

/** Ollama's `/api/generate` reply (`stream: false`): its prompt count leaves out cached tokens, so the prompt's own length stands. */
function parseOllamaGeneration(json: unknown): Completion {
    const reply = json as { response?: unknown; done_reason?: unknown; eval_count?: number };
    if (typeof reply?.response !== "string")
        throw new MalformedReply("no response in the reply");
    return { text: reply.response, stopReason: reply.done_reason === "length" ? "maxTokens" : "eos", generatedTokens: reply.eval_count };
}

class HttpError extends Error {
    constructor(readonly status: number, readonly detail: string) {
        super(`HTTP ${status}${detail ? `: ${detail}` : ""}`);
    }
}

class MalformedReply extends Error {}

async function getJson(url: string, signal: AbortSignal): Promise<unknown> {
    const response = await fetch(url, { signal });
    return await readJson(response);
}

async function postJson(url: string, body: unknown, signal: AbortSignal): Promise<unknown> {
    const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), signal });
    return await readJson(response);
}

async function readJson(response: Response): Promise<unknown> {
    const text = await response.text();
    if (!response.ok) {
        let detail = text.slice(0, 200);
        try {
            const parsed = JSON.parse(text) as { error?: { message?: string } | string };
            detail = (typeof parsed.error === "string" ? parsed.error : parsed.error?.message) ?? detail;
        } catch {
            // not JSON: the start of the body says enough
        }
        throw new HttpError(response.status, detail.replace(/\s+/g, " ").trim());
    }
    try {
        return JSON.parse(text) as unknown;
    } catch {
        throw new MalformedReply(`malformed JSON in the reply: ${JSON.stringify(text.slice(0, 60))}`);
    }
}

/** Whether a failure may pass on a second try: rate limits, server errors, lost connections, timeouts, bad replies. */
function retryable(error: unknown): boolean {
    if (error instanceof HttpError)
        return (error.status === 429 || error.status >= 500) && !rejectedOutput(error);
    return !(error instanceof InputError);
}

/**
 * llama-server parses every completion with its chat-output parser and answers 500 when the
 * text is not valid UTF-8 (a model that writes stray byte tokens): the same request fails the
 * same way again, so it is not retried.
 */
function rejectedOutput(error: HttpError): boolean {
    return error.status === 500 && /does not match the expected .* format/.test(error.detail);
}

function describeFailure(error: unknown): string {
    if (error instanceof HttpError && rejectedOutput(error))
        return `${error.message} (llama-server rejects a generation that is not valid UTF-8; a seeded request does so again)`;
    if (error instanceof HttpError || error instanceof MalformedReply)
        return error.message;
    const name = (error as { name?: string })?.name;
    if (name === "TimeoutError")
        return "no reply within the timeout";
    const cause = (error as { cause?: { code?: string; message?: string } })?.cause;
    if (cause?.code === "ECONNREFUSED")
        return "connection refused (is the server running?)";
    if (cause?.code != null)
        return `connection failed (${cause.code})`;
    // fetch's own refusals (a port it blocks, a malformed address) say why in the cause only
    if (cause?.message != null && cause.message !== "")
        return `${errorMessage(error).split("\n")[0]!} (${cause.message})`;
    return errorMessage(error).split("\n")[0]!;
}

/**
 * Runs `attempt` with a fresh timeout each try; retries what `retryable` allows with delays of
 * backoffMs x 2^k (plus jitter); the final error is one line: endpoint, call, cause, tries.
 */
async function withRetries<T>(
    url: string, call: string, options: { timeoutS: number; retries: number; backoffMs: number }, stop: AbortSignal | undefined,
    attempt: (signal: AbortSignal) => Promise<T>
): Promise<T> {
    for (let tryIndex = 0; ; tryIndex++) {
        const signals = [AbortSignal.timeout(options.timeoutS * 1000), ...(stop == null ? [] : [stop])];
        try {
            return await attempt(AbortSignal.any(signals));
        } catch (error) {
            if (stop?.aborted === true)
                throw new RuntimeFailure(`remote model: ${url}: request cancelled (the generator was disposed)`);
            if (!retryable(error) || tryIndex >= options.retries) {
                const tries = tryIndex + 1;
                throw new RuntimeFailure(`remote model: ${url} ${call}: ${describeFailure(error)}${retryable(error) ? ` (gave up after ${tries} ${tries === 1 ? "try" : "tries"})` : ""}`);
            }
            const delay = options.backoffMs * 2 ** tryIndex * (1 + Math.random() * 0.25);
            await new Promise((resolve) => setTimeout(resolve, delay));
        }
    }
}
