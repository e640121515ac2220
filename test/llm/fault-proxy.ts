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
 * or delay, as `plan` says. The server behind it stays real.
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
                const completion = req.method === "POST" && req.url === "/v1/completions";
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
