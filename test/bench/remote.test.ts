import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { benchRemote, postCompletion, remoteBenchDefaults, type RemoteBenchResult } from "../../src/bench/remote.js";
import { ensureNativeBuild, type NativeBuild } from "../../src/train/native-build.js";
import { InputError } from "../../src/util/errors.js";
import { hasStories, stories260K as model } from "../train/helpers.js";
import { tempDir } from "./helpers.js";
import { runCliProcess } from "../helpers/cli.js";
import { useCacheDir } from "../helpers/env.js";
import { listProcesses } from "../helpers/processes.js";

/**
 * `autoact bench remote` against a real llama-server (the project's native build) serving
 * stories260K: a trained model, since random weights write bytes that llama-server refuses.
 * Its bad command lines are in the bad-input table (test/reliability/bad-input.test.ts).
 */
let dir: string;
let build: NativeBuild;
let restoreCache: () => void;

beforeAll(async () => {
    dir = tempDir("remote");
    restoreCache = useCacheDir(path.join(dir, "cache"));
    build = await ensureNativeBuild({ jobs: 2 });
});

afterAll(() => {
    restoreCache();
    fs.rmSync(dir, { recursive: true, force: true });
});

/** The llama-server processes this test process has started and not reaped. */
const llamaServerChildren = () => listProcesses().filter((p) => p.ppid === process.pid && p.comm.includes("llama-server"));

const small = { parallel: 2, prompt: 8, tg: 8, reps: 2, threads: 1 };

describe.skipIf(!hasStories)("bench remote", () => {
    it("measures the remote generator and plain /completion on one llama-server, round by round, and stops the server", async () => {
        const progress: string[] = [];
        const result: RemoteBenchResult = await benchRemote({ ...small, model, llamaServer: build.llamaServer, command: "test", onProgress: (m) => progress.push(m) });
        expect(result.kind).toBe("remote");
        expect(result.command).toBe("test");
        expect(result.settings).toEqual(small);
        for (const rounds of [result.autoact, result.completion]) {
            expect(rounds).toHaveLength(small.reps);
            for (const tokensPerSecond of rounds)
                expect(tokensPerSecond).toBeGreaterThan(0);
        }
        const medianOfTwo = (xs: number[]) => (xs[0]! + xs[1]!) / 2;
        expect(result.ratio).toBeCloseTo(medianOfTwo(result.autoact) / medianOfTwo(result.completion), 9);
        expect(progress).toEqual(["starting llama-server (2 slots, 1 threads)", "warm-up", "round 1/2", "round 2/2"]);
        expect(llamaServerChildren()).toEqual([]);
    }, 120_000);

    it("says which model file is missing, and refuses random weights", async () => {
        await expect(benchRemote({ ...small, model: path.join(dir, "missing.gguf"), llamaServer: build.llamaServer })).rejects.toThrow(/^model not found: .*missing\.gguf/);
        await expect(benchRemote({ ...small, model: "synth:tiny" })).rejects.toThrow(/^--model synth:tiny: bench remote needs a trained model/);
    });

    it("refuses a size that is not a positive integer before it starts a server", async () => {
        await expect(benchRemote({ ...small, model, parallel: 0 })).rejects.toThrow(InputError);
        await expect(benchRemote({ ...small, model, tg: 1.5 })).rejects.toThrow(/^--tg must be a positive integer, got 1.5$/);
        expect(llamaServerChildren()).toEqual([]);
    });
});

describe("llama-server's own /completion, as the bench sends it", () => {
    /** A server that answers every request with `status` and `body`. */
    const withServer = async (status: number, body: string, use: (url: string) => Promise<void>) => {
        const server = http.createServer((_, res) => res.writeHead(status, { "content-type": "application/json" }).end(body));
        await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
        try {
            await use(`http://127.0.0.1:${(server.address() as { port: number }).port}`);
        } finally {
            await new Promise((resolve) => server.close(resolve));
        }
    };
    const request = { prompt: [1, 2, 3], maxTokens: 4, temperature: 0.9, seed: 1 };

    it("counts the tokens llama-server predicted", async () => {
        await withServer(200, JSON.stringify({ tokens_predicted: 4 }), async (url) => expect(await postCompletion(url, request)).toBe(4));
    });

    it("fails with one line on an HTTP error or an answer without tokens, instead of a NaN ratio", async () => {
        await withServer(500, JSON.stringify({ error: { code: 500, message: "does not match the expected Content-only format" } }), async (url) =>
            await expect(postCompletion(url, request)).rejects.toThrow(/^llama-server POST \/completion answered HTTP 500: .*Content-only format/));
        await withServer(200, "{}", async (url) =>
            await expect(postCompletion(url, request)).rejects.toThrow(/^llama-server POST \/completion answered without tokens_predicted: \{\}$/));
    });
});

describe.skipIf(!hasStories)("autoact bench remote (CLI)", () => {
    it("runs end to end, prints the result and writes it to --out", async () => {
        const out = path.join(dir, "cli", "remote.json");
        const result = await runCliProcess(["bench", "remote", "--model", model, "--parallel", "2", "--tg", "4", "--reps", "1", "--threads", "1", "--llama-server", build.llamaServer, "--out", out],
            { env: { AUTOACT_CACHE: path.join(dir, "cache") } });
        expect(result.code).toBe(0);
        expect(result.stderr).toContain("bench: round 1/1");
        const written = JSON.parse(fs.readFileSync(out, "utf8")) as RemoteBenchResult;
        expect(JSON.parse(result.stdout)).toEqual(written);
        expect(written.settings).toEqual({ ...remoteBenchDefaults, parallel: 2, tg: 4, reps: 1, threads: 1 });
        expect(written.command).toMatch(/^autoact bench remote --model .* --out /);
    }, 120_000);
});
