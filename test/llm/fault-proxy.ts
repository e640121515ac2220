import http from "node:http";
import type net from "node:net";

/** What the proxy does with one completion request. */
export type Fault = "forward" | "500" | "429" | "malformed" | "close" | "rejected-output" | { delayMs: number };

export interface FaultProxy {
    url: string;
    /** Bodies of the completion requests it received, in order. */
    requests: Record<string, unknown>[];
    /** Decides each completion request's fate (n: its index in `requests`); other routes are forwarded. */
    plan: (n: number) => Fault;
    /** GET routes the proxy answers itself with this JSON (another server's routes, e.g. vLLM's /version). */
    answers: Record<string, unknown>;
    close(): Promise<void>;
}

/**
 * A tiny HTTP proxy on 127.0.0.1 in front of a real llama-server: it forwards every request
 * and, for POST /v1/completions, can answer 500 or 429, malformed JSON, close the connection,
 * or delay, as `plan` says. The server behind it stays real. Ollama's POST /api/generate (no
 * Ollama here to test against) is carried to llama-server's /completion and answered as
 * Ollama's documentation says, its fields checked on the way.
 */
export async function startFaultProxy(target: string): Promise<FaultProxy> {
    const sockets = new Set<net.Socket>();
    const proxy: FaultProxy = { url: "", requests: [], plan: () => "forward", answers: {}, close: async () => {} };
    const server = http.createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on("data", (c: Buffer) => chunks.push(c));
        req.on("end", () => {
            void (async () => {
                const body = Buffer.concat(chunks);
                if (req.method === "GET" && req.url != null && req.url in proxy.answers) {
                    res.writeHead(200, { "content-type": "application/json" });
                    res.end(JSON.stringify(proxy.answers[req.url]));
                    return;
                }
                const ollama = req.method === "POST" && req.url === "/api/generate";
                const completion = ollama || (req.method === "POST" && req.url === "/v1/completions");
                let fault: Fault = "forward";
                if (completion) {
                    proxy.requests.push(JSON.parse(body.toString()) as Record<string, unknown>);
                    fault = proxy.plan(proxy.requests.length - 1);
                }
                if (fault === "500" || fault === "429") {
                    res.writeHead(Number(fault), { "content-type": "application/json" });
                    res.end(JSON.stringify({ error: { message: `injected ${fault}` } }));
                    return;
                }
                if (fault === "rejected-output") {
                    // llama-server's answer to a generation that is not valid UTF-8
                    res.writeHead(500, { "content-type": "application/json" });
                    res.end(JSON.stringify({ error: { code: 500, message: "The model produced output that does not match the expected Content-only format", type: "server_error" } }));
                    return;
                }
                if (fault === "malformed") {
                    res.writeHead(200, { "content-type": "application/json" });
                    res.end('{"choices": [{"text": "unterminated');
                    return;
                }
                if (fault === "close") {
                    req.socket.destroy();
                    return;
                }
                if (typeof fault === "object")
                    await new Promise((resolve) => setTimeout(resolve, fault.delayMs));
                if (res.destroyed)
                    return;
                if (ollama) {
                    const answer = await ollamaGenerate(target, proxy.requests.at(-1)!).catch((error: Error) => ({ status: 400, json: { error: error.message } }));
                    res.writeHead(answer.status, { "content-type": "application/json" });
                    res.end(JSON.stringify(answer.json));
                    return;
                }
                try {
                    const reply = await fetch(`${target}${req.url}`, {
                        method: req.method, headers: { "content-type": "application/json" }, body: req.method === "POST" ? body : undefined
                    });
                    const text = await reply.text();
                    res.writeHead(reply.status, { "content-type": reply.headers.get("content-type") ?? "application/json" });
                    res.end(text);
                } catch {
                    req.socket.destroy(); // the server behind is down: so is the proxy's answer
                }
            })();
        });
    });
    server.on("connection", (socket) => {
        sockets.add(socket);
        socket.on("close", () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    proxy.url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    proxy.close = async () => {
        for (const socket of sockets)
            socket.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
    };
    return proxy;
}

/** The request fields of Ollama's /api/generate and its options (docs.ollama.com/api), those autoact may send. */
const ollamaFields = new Set(["model", "prompt", "raw", "stream", "options", "format"]);
const ollamaOptions = new Set(["num_predict", "temperature", "top_p", "top_k", "min_p", "repeat_penalty", "num_ctx", "seed", "stop"]);

/** One /api/generate request (stream: false) done by llama-server's /completion, answered in Ollama's reply shape. */
async function ollamaGenerate(target: string, body: Record<string, unknown>): Promise<{ status: number; json: unknown }> {
    const unknown = [...Object.keys(body).filter((k) => !ollamaFields.has(k)), ...Object.keys(body.options ?? {}).filter((k) => !ollamaOptions.has(k)).map((k) => `options.${k}`)];
    if (unknown.length > 0)
        throw new Error(`not an Ollama /api/generate field: ${unknown.join(", ")}`);
    if (body.stream !== false || typeof body.prompt !== "string")
        throw new Error("the test proxy answers only stream: false with a text prompt");
    const o = (body.options ?? {}) as Record<string, unknown>;
    // the base model: every adapter the server loaded at scale 0 (an Ollama model per adapter is not modelled here)
    const loaded = await (await fetch(`${target}/lora-adapters`)).json() as { id: number }[];
    const reply = await fetch(`${target}/completion`, {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({
            prompt: body.prompt, n_predict: o.num_predict, temperature: o.temperature, top_p: o.top_p, top_k: o.top_k, min_p: o.min_p,
            repeat_penalty: o.repeat_penalty, seed: o.seed, stop: o.stop, json_schema: body.format, cache_prompt: true,
            lora: loaded.map(({ id }) => ({ id, scale: 0 }))
        })
    });
    const done = await reply.json() as { content?: string; stop_type?: string; tokens_predicted?: number; tokens_evaluated?: number; error?: { message?: string } };
    if (!reply.ok)
        return { status: reply.status, json: { error: done.error?.message ?? "llama-server failed" } };
    return {
        status: 200,
        json: { model: body.model, response: done.content, done: true, done_reason: done.stop_type === "limit" ? "length" : "stop", prompt_eval_count: done.tokens_evaluated, eval_count: done.tokens_predicted }
    };
}
