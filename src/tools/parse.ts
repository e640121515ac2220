import type { ParsedAction } from "./types.js";

// The first `Name[` in the text; the name may be wrapped in markdown (`**Search**[x]`).
const NAME_BRACKET = /([A-Za-z][A-Za-z0-9_]*)[*`\s]*\[/;
// Fallbacks without a bracket: `Name: argument`, `Name argument` or a bare `Name`.
const NAME_ONLY = /^[*`\s]*([A-Za-z][A-Za-z0-9_]*)[*`]*\s*(?::\s*|\s+|$)([\s\S]*)$/;
const PREFIX = /^\s*(?:action\s*\d*\s*:)\s*/i;

/**
 * Parses a model-written action such as `Search[Barack Obama]`. Tolerates an "Action:"
 * prefix, spaces around the name and inside the brackets, text after the closing bracket,
 * nested brackets (the argument ends at the matching bracket) and a missing closing
 * bracket (the argument is the rest of the text, and `complete` is false).
 * Returns null when no action name can be found.
 */
export function parseAction(text: string): ParsedAction | null {
    const body = text.replace(PREFIX, "");
    const match = NAME_BRACKET.exec(body);
    if (match != null) {
        const open = match.index + match[0].length;
        let depth = 1;
        for (let i = open; i < body.length; i++) {
            const ch = body[i];
            if (ch === "[")
                depth++;
            else if (ch === "]" && --depth === 0)
                return { name: match[1]!, argument: body.slice(open, i).trim(), complete: true };
        }
        return { name: match[1]!, argument: body.slice(open).trim(), complete: false };
    }
    const firstLine = body.trim();
    const bare = NAME_ONLY.exec(firstLine);
    if (bare == null)
        return null;
    return { name: bare[1]!, argument: (bare[2] ?? "").trim(), complete: false };
}

/** The key tool names are compared by: case, spaces, underscores and dashes ignored. */
export function toolNameKey(name: string): string {
    return name.toLowerCase().replace(/[^a-z0-9]/g, "");
}
