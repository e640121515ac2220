import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import crypto from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DataLocator } from "../../src/pipeline/data-locator.js";
import { downloadFile } from "../../src/util/download.js";
import { InputError, RuntimeFailure } from "../../src/util/errors.js";

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "autoact-data-"));

describe("data locator", () => {
    it("looks in --data folders, then the config's folders, then the cache", async () => {
        const [first, second, cache] = [tmp(), tmp(), tmp()];
        fs.writeFileSync(path.join(second, "a.jsonl"), "second");
        fs.writeFileSync(path.join(second, "b.jsonl"), "second");
        fs.writeFileSync(path.join(first, "a.jsonl"), "first");
        const locator = new DataLocator({ dataDirs: [first], searchDirs: [second], cacheDir: cache });
        expect(fs.readFileSync(locator.find("a.jsonl")!, "utf8")).toBe("first");
        expect(fs.readFileSync(locator.find("b.jsonl")!, "utf8")).toBe("second");
        expect(locator.find("c.jsonl")).toBeNull();
        await expect(locator.require("c.jsonl")).rejects.toThrow(InputError);
        await expect(locator.require("c.jsonl")).rejects.toThrow(/data file "c\.jsonl" not found in/);
    });

    it("falls back to the seed files the project ships", async () => {
        const locator = new DataLocator({ searchDirs: [tmp()], descriptor: "hotpotqa", cacheDir: tmp() });
        expect(await locator.requireSeeds("seeds.json")).toMatch(/datasets\/seeds\/hotpotqa\.json$/);
        expect(await locator.requireSeeds("")).toMatch(/datasets\/seeds\/hotpotqa\.json$/);
        // a file of another name is the user's own: not there is an error, not the shipped seeds in its place
        await expect(locator.requireSeeds("my-seeds-typo.json")).rejects.toThrow(/^seeds file "my-seeds-typo\.json" not found in/);
    });

    it("knows the official file of a dataset from its descriptor", () => {
        const locator = new DataLocator({ descriptor: "hotpotqa", cacheDir: tmp() });
        expect(locator.descriptorInfo()?.official?.file).toBe("hotpot_dev_distractor_v1.json");
        expect(locator.descriptorInfo()?.splits?.easy).toHaveLength(100);
    });
});

describe("downloads (from a server on loopback)", () => {
    const body = Buffer.from("x".repeat(100_000));
    const digest = crypto.createHash("sha256").update(body).digest("hex");
    let server: http.Server;
    let base = "";
    beforeAll(async () => {
        server = http.createServer((req, res) => {
            if (req.url === "/file") {
                res.writeHead(200, { "content-length": body.length });
                res.end(body);
            } else {
                res.writeHead(404);
                res.end();
            }
        });
        await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
        base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    });
    afterAll(() => server.close());

    it("writes the file when its checksum matches", async () => {
        const file = path.join(tmp(), "sub", "f.bin");
        await downloadFile({ url: `${base}/file`, file, sha256: digest, stream: fs.createWriteStream("/dev/null") });
        expect(fs.readFileSync(file).equals(body)).toBe(true);
    });

    it("leaves nothing behind on a checksum mismatch or an HTTP error", async () => {
        const dir = tmp();
        const file = path.join(dir, "f.bin");
        await expect(downloadFile({ url: `${base}/file`, file, sha256: "0".repeat(64), stream: fs.createWriteStream("/dev/null") }))
            .rejects.toThrow(/checksum mismatch/);
        await expect(downloadFile({ url: `${base}/missing`, file })).rejects.toThrow(RuntimeFailure);
        expect(fs.readdirSync(dir)).toEqual([]);
    });
});
