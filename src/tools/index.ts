export * from "./types.js";
export { parseAction, toolNameKey } from "./parse.js";
export { createToolLibrary, type ToolLibrary, type ToolLibraryOptions, type ToolRunResult } from "./library.js";
export { Corpus, titleKey, type SearchHit } from "./corpus.js";
export { importCorpus, type ImportCorpusOptions, type ImportCorpusResult, type CorpusFormat } from "./corpus-import.js";
export { evaluateExpression, formatNumber, CalculatorError } from "./calculator.js";
export { runSandboxed, runSandboxedInline, closeSandbox, type SandboxOptions, type SandboxResult } from "./sandbox.js";
export { splitSentences } from "./sentences.js";
