import type { ParsedAction } from "./types.js";

// The first `Name[` in the text; the name may be wrapped in markdown (`**Search**[x]`).
const NAME_BRACKET = /([A-Za-z][A-Za-z0-9_]*)[*`\s]*\[/;
// Fallbacks without a bracket: `Name: argument`, `Name argument` or a bare `Name`.
const NAME_ONLY = /^[*`\s]*([A-Za-z][A-Za-z0-9_]*)[*`]*\s*(?::\s*|\s+|$)([\s\S]*)$/;
const PREFIX = /^\s*(?:action\s*\d*\s*:)\s*/i;

/** The tool whose argument is program text: a `]` inside one of its string literals does not end it. */
export const CODE_TOOL = "Code";

/**
 * Parses a model-written action such as `Search[Barack Obama]`. Tolerates an "Action:"
 * prefix, spaces around the name and inside the brackets, text after the closing bracket,
 * nested brackets (the argument ends at the matching bracket; in Code's, brackets inside
 * string literals do not count) and a missing closing bracket (the argument is the rest of
 * the text, and `complete` is false). Returns null when no action name can be found.
 */
export function parseAction(text: string): ParsedAction | null {
    const body = text.replace(PREFIX, "");
    const match = NAME_BRACKET.exec(body);
    if (match != null) {
        const open = match.index + match[0].length;
        const close = closingBracket(body, open, match[1]!);
        return close < 0
            ? { name: match[1]!, argument: body.slice(open).trim(), complete: false }
            : { name: match[1]!, argument: body.slice(open, close).trim(), complete: true };
    }
    const firstLine = body.trim();
    const bare = NAME_ONLY.exec(firstLine);
    if (bare == null)
        return null;
    return { name: bare[1]!, argument: (bare[2] ?? "").trim(), complete: false };
}

/** An argument written after `Name[` (the tool agent's continuation): up to its closing bracket. */
export function closeArgument(text: string, name: string): string {
    const close = closingBracket(text, 0, name);
    return (close < 0 ? text : text.slice(0, close)).trim();
}

/**
 * Where the bracket opened just before `from` closes, or -1. In Code's argument a `]` inside a
 * string literal does not close it; where the literals do not end (a stray quote), brackets
 * are counted as in any other argument.
 */
function closingBracket(text: string, from: number, name: string): number {
    if (toolNameKey(name) === toolNameKey(CODE_TOOL)) {
        const close = scanBrackets(text, from, true);
        if (close >= 0)
            return close;
    }
    return scanBrackets(text, from, false);
}

function scanBrackets(text: string, from: number, skipStrings: boolean): number {
    let depth = 1;
    let quote: string | null = null;
    for (let i = from; i < text.length; i++) {
        const ch = text[i]!;
        if (quote != null) {
            if (ch === "\\")
                i++;
            else if (ch === quote)
                quote = null;
        } else if (skipStrings && (ch === '"' || ch === "'" || ch === "`")) {
            quote = ch;
        } else if (ch === "[") {
            depth++;
        } else if (ch === "]" && --depth === 0) {
            return i;
        }
    }
    return -1;
}

/** The key tool names are compared by: case, spaces, underscores and dashes ignored. */
export function toolNameKey(name: string): string {
    return name.toLowerCase().replace(/[^a-z0-9]/g, "");
}
