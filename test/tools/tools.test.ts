import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { packageRoot } from "../../src/util/package.js";
import { afterAll, describe, expect, it } from "vitest";
import { parseAction } from "../../src/tools/parse.js";
import { CalculatorError, evaluateExpression, formatNumber } from "../../src/tools/calculator.js";
import { createToolLibrary } from "../../src/tools/library.js";
import { closeSandbox, runSandboxed, runSandboxedInline } from "../../src/tools/sandbox.js";
import { ToolSession } from "../../src/tools/types.js";

describe("parseAction", () => {
    it.each([
        ["Search[Barack Obama]", "Search", "Barack Obama", true],
        ["  Search [ Barack Obama ]  ", "Search", "Barack Obama", true],
        ["Action: Lookup[born] and then I will read it", "Lookup", "born", true],
        ["Action 3: Finish[yes]", "Finish", "yes", true],
        ["Calculator[(2 + [3]) * 4]", "Calculator", "(2 + [3]) * 4", true],
        ["Code[const a = [1, [2, 3]]; a.flat()] trailing]", "Code", "const a = [1, [2, 3]]; a.flat()", true],
        ["Finish[Badr Hari", "Finish", "Badr Hari", false],
        ["Retrieve[Ann [x]", "Retrieve", "Ann [x]", false],
        ["**Retrieve**[Paris]", "Retrieve", "Paris", true],
        ["I think I should use Retrieve[Paris].", "Retrieve", "Paris", true],
        ["Finish: yes", "Finish", "yes", false],
        ["Reflect", "Reflect", "", false],
        ["Search[]", "Search", "", true],
        // Code's string literals may hold brackets; elsewhere an apostrophe is just a letter
        ['Code[console.log("a]b".split("]").length)] done', "Code", 'console.log("a]b".split("]").length)', true],
        ["Code[console.log('[' + 1)]", "Code", "console.log('[' + 1)", true],
        ["Code[const s = 'it\\'s]'; s.length]", "Code", "const s = 'it\\'s]'; s.length", true],
        ["Code[console.log(\"unclosed)]", "Code", "console.log(\"unclosed)", true],
        ["Search[Ender's Game] I'm sure", "Search", "Ender's Game", true]
    ])("%j", (text, name, argument, complete) => {
        expect(parseAction(text)).toEqual({ name, argument, complete });
    });

    it("returns null when there is no action name", () => {
        expect(parseAction("")).toBeNull();
        expect(parseAction("   ")).toBeNull();
        expect(parseAction("[x]")).toBeNull();
        expect(parseAction("123 go")).toBeNull();
    });
});

describe("tool library", () => {
    const library = createToolLibrary();

    it("lists every tool with a signature, description and example, and matches names loosely", () => {
        expect(library.tools.map((t) => t.name)).toEqual(["Retrieve", "Lookup", "Search", "Image2Text", "Calculator", "Code", "Finish", "Reflect"]);
        for (const tool of library.tools) {
            expect(tool.description.length).toBeGreaterThan(20);
            expect(tool.example.startsWith(`${tool.name}[`)).toBe(true);
            expect(tool.signature.startsWith(`${tool.name}[`)).toBe(true);
        }
        expect(library.get("image2text")?.name).toBe("Image2Text");
        expect(library.get("IMAGE_2_TEXT")?.name).toBe("Image2Text");
        expect(library.get(" calculator ")?.name).toBe("Calculator");
        expect(library.get("Image to Text")).toBeUndefined();
        expect(library.select(["retrieve", "LOOKUP"]).map((t) => t.name)).toEqual(["Retrieve", "Lookup"]);
        expect(() => library.select(["BingSearch"])).toThrow(/unknown tool "BingSearch"/);
        expect(library.get("finish")?.kind).toBe("protocol");
    });

    it("answers unknown tools, protocol actions and empty arguments with an observation", async () => {
        const session = new ToolSession();
        expect(await library.execute("Fly[away]", session)).toMatchObject({ ok: false, observation: expect.stringMatching(/^Invalid action: there is no tool named "Fly"/) });
        expect(await library.execute("Finish[x]", session)).toMatchObject({ ok: false, tool: "Finish" });
        expect(await library.execute("Calculator[ ]", session)).toMatchObject({ ok: false, observation: expect.stringMatching(/^Invalid argument: the expression is empty/) });
        expect(await library.execute("???", session)).toMatchObject({ ok: false, observation: "Invalid action: write it as Name[argument]." });
        expect(library.get("Reflect")!.validate("maybe")).toMatch(/right or wrong/);
        expect(library.get("Reflect")!.validate("Right")).toBeNull();
    });

    it("Image2Text gives the task's caption and OCR, or says there is no image", async () => {
        const withImage = new ToolSession({ image: { caption: "A map of the United States.", ocr: "Oklahoma West Virginia" } });
        expect((await library.execute("Image2Text[image]", withImage)).observation).toBe("Caption: A map of the United States.\nText in the image: Oklahoma West Virginia");
        const captionOnly = new ToolSession({ image: { caption: "A cat.", ocr: "" } });
        expect((await library.execute("Image2Text[]", captionOnly)).observation).toBe("Caption: A cat.\nText in the image: none");
        expect((await library.execute("Image2Text[image]", new ToolSession())).observation).toBe("No image is attached to this task.");
    });

    it("Calculator runs through the library", async () => {
        expect((await library.execute("Calculator[(1927 - 1889) * 2.5]", new ToolSession())).observation).toBe("95");
        expect((await library.execute("Calculator[1/0]", new ToolSession())).observation).toBe("Calculator error: division by zero.");
        expect((await library.execute('Calculator["2 + 3"]', new ToolSession())).observation).toBe("5");
        expect((await library.execute("Calculator[`2 * 3 =`]", new ToolSession())).observation).toBe("6");
    });
});

describe("Calculator", () => {
    it.each([
        ["1 + 2 * 3", 7],
        ["(1 + 2) * 3", 9],
        ["2 ^ 3 ^ 2", 512],
        ["2 ** 10", 1024],
        ["-2 ^ 2", -4],
        ["(-2) ^ 2", 4],
        ["2 ^ -1", 0.5],
        ["--3", 3],
        ["10 - 4 - 3", 3],
        ["100 / 10 / 5", 2],
        ["17 % 5", 2],
        ["7.5 * .2", 1.5],
        ["1e3 + 1", 1001],
        ["1,234,567 + 1", 1234568],
        ["max(1, 234)", 234],
        ["sqrt(16) + abs(-3)", 7],
        ["round(3.14159, 2)", 3.14],
        ["log(1000)", 3],
        ["ln(e)", 1],
        ["min(4, 2, 8) * pi", 2 * Math.PI],
        ["3 × 4 ÷ 2", 6],
        ["2 * (3 + (4 - 1)) / 3", 4],
        ["15% * 200", 30],
        ["200 * 15%", 30],
        ["10%", 0.1],
        ["(50 + 50)% - 2", -1],
        ["max(1, 2,3)", 3],
        ["round(3.14159,2)", 3.14],
        ["max(1200, 950)", 1200]
    ])("%s = %d", (expression, expected) => {
        expect(evaluateExpression(expression)).toBeCloseTo(expected, 12);
    });

    it.each([
        ["1 / 0", "division by zero"],
        ["5 % 0", "modulo by zero"],
        ["2 +", "unexpected end of expression at position 4"],
        ["(1 + 2", 'missing ")" at position 7'],
        ["1 + 2)", 'unexpected ")" at position 6'],
        ["foo(2)", 'unknown function "foo" at position 1'],
        ["x + 1", 'unknown name "x" at position 1'],
        ["sqrt(1, 2)", "sqrt takes 1 argument, got 2"],
        ["2 $ 3", 'unexpected character "$" at position 3'],
        ["sqrt(-1)", "the result is not a number"],
        ["10 ^ 400", "the result is infinite"],
        ["process.exit(1)", 'unexpected character "." at position 8'],
        ["eval('1')", 'unexpected character "\'" at position 6'],
        // one number or two arguments? a guess would be a confident wrong number
        ["max(1,200, 950)", '"1,200" at position 5 is one number or 2 arguments: write 1200, or put a space after each comma between arguments'],
        ["round(1,234.5)", '"1,234" at position 7 is one number or 2 arguments']
    ])("%s fails: %s", (expression, message) => {
        expect(() => evaluateExpression(expression)).toThrow(message);
    });

    it("refuses nesting deep enough to overflow the stack with its own error (a degenerate generation)", () => {
        for (const expression of ["(".repeat(5000) + "1" + ")".repeat(5000), "-".repeat(20000) + "1"])
            expect(() => evaluateExpression(expression)).toThrow(new CalculatorError("the expression is nested more than 200 levels deep"));
        expect(evaluateExpression("(".repeat(150) + "1" + ")".repeat(150))).toBe(1);
    });

    it("formats results compactly", () => {
        expect(formatNumber(0.1 + 0.2)).toBe("0.3");
        expect(formatNumber(2 / 3)).toBe("0.666666666667");
        expect(formatNumber(1e25)).toBe("1e+25");
        expect(formatNumber(-42)).toBe("-42");
    });
});

describe("Code sandbox", () => {
    afterAll(() => closeSandbox());

    it("returns printed output and the last value", async () => {
        expect(await runSandboxed("console.log('a', 1, {b: 2}); [1, 2, 3].map((x) => x * 2)")).toEqual({ ok: true, output: 'a 1 {"b":2}\n[2,4,6]' });
        expect(await runSandboxed("Promise.resolve(6).then((v) => v * 7)")).toEqual({ ok: true, output: "42" });
    });

    it("has no file system, modules or network", async () => {
        const read = await runSandboxed("require('fs').readFileSync('/etc/passwd', 'utf8')");
        expect(read).toMatchObject({ ok: false, failure: "error", error: expect.stringMatching(/ReferenceError: 'require' is not defined/) });
        const dynamicImport = await runSandboxed("import('fs').then((fs) => fs.readFileSync('/etc/passwd'))");
        expect(dynamicImport).toMatchObject({ ok: false, error: expect.stringMatching(/could not load module 'fs'/) });
        const network = await runSandboxed("[typeof fetch, typeof XMLHttpRequest, typeof WebSocket, typeof process, typeof std, typeof os].join(',')");
        expect(network).toEqual({ ok: true, output: "undefined,undefined,undefined,undefined,undefined,undefined" });
        const call = await runSandboxed("fetch('http://example.com')");
        expect(call).toMatchObject({ ok: false, error: expect.stringMatching(/ReferenceError: 'fetch' is not defined/) });
    });

    it("stops an infinite loop within the time limit", async () => {
        const started = Date.now();
        const result = await runSandboxed("while (true) {}", { timeoutMs: 300 });
        const elapsed = Date.now() - started;
        expect(result).toMatchObject({ ok: false, failure: "timeout", error: "time limit of 300 ms exceeded" });
        expect(elapsed).toBeLessThan(1500);
    });

    it("stops huge allocations at the memory limit", async () => {
        const big = await runSandboxed("'x'.repeat(1e9).length", { memoryBytes: 16 * 1024 * 1024 });
        expect(big).toMatchObject({ ok: false, failure: "memory", error: expect.stringMatching(/^memory limit of 16 MiB exceeded/) });
        expect(await runSandboxed("new ArrayBuffer(1e9)", { memoryBytes: 16 * 1024 * 1024 })).toMatchObject({ ok: false, failure: "memory" });
        expect(await runSandboxed("new Array(1e8).fill(0)", { memoryBytes: 16 * 1024 * 1024 })).toMatchObject({ ok: false, failure: "memory" });
        const growing = await runSandboxed("const a = []; while (true) a.push({ n: a.length });", { memoryBytes: 16 * 1024 * 1024, timeoutMs: 5000 });
        expect(growing).toMatchObject({ ok: false, failure: "memory" });
        const recursion = await runSandboxed("function f(n) { return f(n + 1) + 1; } f(0)");
        expect(recursion).toMatchObject({ ok: false, failure: "stack" });
    });

    it("holds the 32 MiB default memory limit for many mid-sized arrays; the process peak stays small (measured in a child)", { timeout: 60_000 }, async () => {
        // The audit's case: 100 arrays of 1e6 numbers returned ok at an 851 MB peak.
        const script = `import(${JSON.stringify(path.join(packageRoot, "dist/src/tools/sandbox.js"))}).then(async ({ runSandboxed, closeSandbox }) => {
            const result = await runSandboxed("const a = []; for (let i = 0; i < 100; i++) a.push(new Array(1e6).fill(1)); a.length", { timeoutMs: 20000 });
            await closeSandbox();
            console.log(JSON.stringify({ result, peakBytes: process.resourceUsage().maxRSS * 1024 }));
        });`;
        // A file, not --eval: the sandbox's worker thread would inherit --input-type.
        const scriptFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "autoact-sandbox-")), "peak.mjs");
        fs.writeFileSync(scriptFile, script);
        const child = spawnSync(process.execPath, [scriptFile], { encoding: "utf8" });
        expect(child.status, child.stderr).toBe(0);
        const { result, peakBytes } = JSON.parse(child.stdout.trim()) as { result: { ok: boolean; failure?: string }; peakBytes: number };
        expect(result).toMatchObject({ ok: false, failure: "memory" });
        console.log(`sandbox peak RSS for 100 x new Array(1e6): ${(peakBytes / 1048576).toFixed(0)} MiB`);
        expect(peakBytes).toBeLessThan(300 * 1024 * 1024);
        // And the sandbox still runs ordinary code afterwards.
        expect(await runSandboxed("const b = new Array(1e5).fill(2); b.length")).toEqual({ ok: true, output: "100000" });
    });

    it("keeps working after hostile code, and reports it through the library", async () => {
        const library = createToolLibrary({ code: { timeoutMs: 200 } });
        expect((await library.execute("Code[for (;;) {}]", new ToolSession())).observation).toBe("Code error: time limit of 200 ms exceeded");
        expect((await library.execute("Code[```js\nconsole.log(6 * 7)\n```]", new ToolSession())).observation).toBe("42");
        expect((await library.execute("Code[let x = 1]", new ToolSession())).observation).toBe("The code ran and printed nothing.");
        expect((await library.execute("Code[throw new TypeError('nope')]", new ToolSession())).observation).toBe("Code error: TypeError: nope");
        const partial = await library.execute("Code[console.log('before'); null.x]", new ToolSession());
        expect(partial.observation).toMatch(/^Code error: TypeError: .*\nOutput before the error:\nbefore$/);
    });

    it("kills a run stuck in native built-ins at the hard deadline, without blocking the event loop", async () => {
        const started = Date.now();
        let ticked = 0;
        const ticker = setInterval(() => ticked++, 20);
        // one call into a native built-in that QuickJS's interrupt never reaches (its regex engine checks it, indexOf does not)
        const result = await runSandboxed("'a'.repeat(4e6).indexOf('a'.repeat(2e6) + 'b')", { timeoutMs: 300, memoryBytes: 256 * 1024 * 1024 });
        clearInterval(ticker);
        expect(result).toMatchObject({ ok: false, failure: "timeout" });
        expect(Date.now() - started).toBeLessThan(1500);
        expect(ticked).toBeGreaterThan(10);
        // A fresh worker takes over.
        expect(await runSandboxed("6 * 7")).toEqual({ ok: true, output: "42" });
    });

    it("runs queued code one run at a time: a run killed at its deadline takes no other with it", async () => {
        const hang = "'a'.repeat(4e6).indexOf('a'.repeat(2e6) + 'b')"; // one native call QuickJS cannot interrupt
        const results = await Promise.all([hang, "1 + 1", "2 + 2", hang, "3 + 3"].map((code) => runSandboxed(code, { timeoutMs: 300, memoryBytes: 256 * 1024 * 1024 })));
        expect(results.map((r) => r.ok ? r.output : r.failure)).toEqual(["timeout", "2", "4", "timeout", "6"]);
    });

    it("shows the values JSON would turn into null or refuse", async () => {
        expect(await runSandboxed("Math.sqrt(-1)")).toEqual({ ok: true, output: "NaN" });
        expect(await runSandboxed("console.log(0 / 0, 1 / 0); -1 / 0")).toEqual({ ok: true, output: "NaN Infinity\n-Infinity" });
        expect(await runSandboxed("({ avg: 0 / 0, n: 2n ** 64n })")).toEqual({ ok: true, output: '{"avg":"NaN","n":"18446744073709551616"}' });
        expect(await runSandboxed("let f = 1n; for (let i = 1n; i <= 30n; i++) f *= i; f")).toEqual({ ok: true, output: "265252859812191058636308480000000" });
        expect(await runSandboxed("[new Map([['a', 1]]), new Set([1, 2])]")).toEqual({ ok: true, output: '[{"a":1},[1,2]]' });
    });

    it("a run past its deadline is a timeout even where the code caught the interrupt", async () => {
        const caught = await runSandboxed("try { while (true) {} } catch (e) {} 'done'", { timeoutMs: 200 });
        expect(caught).toMatchObject({ ok: false, failure: "timeout" });
        const inPrint = await runSandboxed("__print({ toString() { while (true); } }); 1", { timeoutMs: 200 }); // the host reads the string
        expect(inPrint).toMatchObject({ ok: false, failure: "timeout" });
    });

    it("also runs on the calling thread", async () => {
        expect(await runSandboxedInline("console.log('inline')")).toEqual({ ok: true, output: "inline" });
        expect(await runSandboxedInline("for (;;) {}", { timeoutMs: 100 })).toMatchObject({ ok: false, failure: "timeout" });
    });

    it("cuts long output", async () => {
        const result = await runSandboxed("for (let i = 0; i < 1000; i++) console.log('line ' + i)", { maxOutputChars: 100 });
        expect(result.ok).toBe(true);
        expect(result.output.length).toBeLessThan(160);
        expect(result.output).toMatch(/\[output cut at 100 characters\]$/);
    });
});
