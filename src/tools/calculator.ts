/** A failure to parse or evaluate an expression; the message says what and where. */
export class CalculatorError extends Error {
    constructor(message: string) {
        super(message);
        this.name = "CalculatorError";
    }
}

type Token =
    | { type: "number"; value: number; at: number }
    | { type: "name"; value: string; at: number }
    | { type: "op"; value: string; at: number }
    | { type: "end"; at: number };

const FUNCTIONS: Record<string, { arity: [number, number]; fn: (...args: number[]) => number }> = {
    sqrt: { arity: [1, 1], fn: Math.sqrt },
    cbrt: { arity: [1, 1], fn: Math.cbrt },
    abs: { arity: [1, 1], fn: Math.abs },
    round: { arity: [1, 2], fn: (x, digits = 0) => { const f = 10 ** digits; return Math.round(x * f) / f; } },
    floor: { arity: [1, 1], fn: Math.floor },
    ceil: { arity: [1, 1], fn: Math.ceil },
    exp: { arity: [1, 1], fn: Math.exp },
    ln: { arity: [1, 1], fn: Math.log },
    log: { arity: [1, 2], fn: (x, base?: number) => base === undefined ? Math.log10(x) : Math.log(x) / Math.log(base) },
    log10: { arity: [1, 1], fn: Math.log10 },
    log2: { arity: [1, 1], fn: Math.log2 },
    sin: { arity: [1, 1], fn: Math.sin },
    cos: { arity: [1, 1], fn: Math.cos },
    tan: { arity: [1, 1], fn: Math.tan },
    min: { arity: [1, Infinity], fn: Math.min },
    max: { arity: [1, Infinity], fn: Math.max },
    pow: { arity: [2, 2], fn: Math.pow }
};

const CONSTANTS: Record<string, number> = { pi: Math.PI, e: Math.E };

/**
 * Evaluates an arithmetic expression with a recursive-descent parser (never `eval`):
 * numbers (decimals, exponents like 1e3, thousands separators like 1,000; inside a function
 * call `1,200` could be either, and is refused), + - * / % (modulo between two numbers,
 * percent after one: 15% * 200 = 30) ^ or ** (power, right-associative, binds tighter than
 * unary minus: -2^2 = -4), parentheses, pi, e, and the functions sqrt cbrt abs round floor
 * ceil exp ln log log10 log2 sin cos tan min max pow.
 */
export function evaluateExpression(expression: string): number {
    const parser = new Parser(tokenize(expression));
    const value = parser.parseExpression();
    parser.expectEnd();
    if (Number.isNaN(value))
        throw new CalculatorError("the result is not a number");
    if (!Number.isFinite(value))
        throw new CalculatorError("the result is infinite");
    return value;
}

/** Formats a result compactly: integers as such, others with up to 12 significant digits. */
export function formatNumber(value: number): string {
    if (Number.isInteger(value) && Math.abs(value) < 1e21)
        return String(value);
    const text = value.toPrecision(12);
    return text.includes("e") ? text.replace(/\.?0+e/, "e") : text.replace(/\.?0+$/, "");
}

function tokenize(text: string): Token[] {
    const tokens: Token[] = [];
    const source = text.replace(/[×⋅·]/g, "*").replace(/÷/g, "/").replace(/[−–]/g, "-");
    let i = 0;
    let parenDepth = 0;
    const functionDepths: number[] = [];
    while (i < source.length) {
        const ch = source[i]!;
        if (/\s/.test(ch)) {
            i++;
            continue;
        }
        // Thousands separators only where a comma cannot separate function arguments; inside a
        // call, "1,200" reads as either, and a silent guess would be a confident wrong number.
        const thousands = /^\d{1,3}(?:,\d{3})+(?!\d)/.exec(source.slice(i));
        if (thousands != null && functionDepths.length > 0)
            throw new CalculatorError(`"${thousands[0]}" at position ${i + 1} is one number or ${thousands[0].split(",").length} arguments: write ${thousands[0].replace(/,/g, "")}, or put a space after each comma between arguments`);
        const number = (functionDepths.length === 0 ? /^(\d{1,3}(?:,\d{3})+(?!\d)(?:\.\d*)?|\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?/ :
            /^(\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?/).exec(source.slice(i));
        if (number != null) {
            tokens.push({ type: "number", value: Number(number[0].replace(/,/g, "")), at: i });
            i += number[0].length;
            continue;
        }
        const name = /^[A-Za-z_][A-Za-z0-9_]*/.exec(source.slice(i));
        if (name != null) {
            tokens.push({ type: "name", value: name[0].toLowerCase(), at: i });
            i += name[0].length;
            continue;
        }
        if (source.startsWith("**", i)) {
            tokens.push({ type: "op", value: "^", at: i });
            i += 2;
            continue;
        }
        if ("+-*/%^(),".includes(ch)) {
            if (ch === "(") {
                parenDepth++;
                if (tokens.at(-1)?.type === "name")
                    functionDepths.push(parenDepth);
            } else if (ch === ")") {
                if (functionDepths.at(-1) === parenDepth)
                    functionDepths.pop();
                parenDepth--;
            }
            tokens.push({ type: "op", value: ch, at: i });
            i++;
            continue;
        }
        throw new CalculatorError(`unexpected character "${ch}" at position ${i + 1}`);
    }
    tokens.push({ type: "end", at: source.length });
    return tokens;
}

/** Nesting deeper than this is refused (the parser recurses once a level). */
const MAX_DEPTH = 200;

class Parser {
    private index = 0;
    private depth = 0;

    constructor(private readonly tokens: Token[]) {}

    private peek(): Token {
        return this.tokens[this.index]!;
    }

    private isOp(value: string): boolean {
        const token = this.peek();
        return token.type === "op" && token.value === value;
    }

    private take(): Token {
        return this.tokens[this.index++]!;
    }

    expectEnd(): void {
        const token = this.peek();
        if (token.type !== "end")
            throw new CalculatorError(`unexpected ${describe(token)} at position ${token.at + 1}`);
    }

    // expression := term (("+" | "-") term)*
    parseExpression(): number {
        let value = this.parseTerm();
        while (this.isOp("+") || this.isOp("-")) {
            const op = this.take();
            const right = this.parseTerm();
            value = op.type === "op" && op.value === "+" ? value + right : value - right;
        }
        return value;
    }

    // term := unary (("*" | "/" | "%") unary)*
    private parseTerm(): number {
        let value = this.parseUnary();
        while (this.isOp("*") || this.isOp("/") || this.isOp("%")) {
            const op = this.take() as { value: string };
            const right = this.parseUnary();
            if ((op.value === "/" || op.value === "%") && right === 0)
                throw new CalculatorError(op.value === "/" ? "division by zero" : "modulo by zero");
            value = op.value === "*" ? value * right : op.value === "/" ? value / right : value % right;
        }
        return value;
    }

    // unary := ("-" | "+") unary | power
    private parseUnary(): number {
        if (++this.depth > MAX_DEPTH)
            throw new CalculatorError(`the expression is nested more than ${MAX_DEPTH} levels deep`);
        try {
            return this.parseSigned();
        } finally {
            this.depth--;
        }
    }

    private parseSigned(): number {
        if (this.isOp("-")) {
            this.take();
            return -this.parseUnary();
        }
        if (this.isOp("+")) {
            this.take();
            return this.parseUnary();
        }
        return this.parsePower();
    }

    // power := percent ("^" unary)?   (right-associative; the exponent may be negative)
    private parsePower(): number {
        const base = this.parsePercent();
        if (this.isOp("^")) {
            this.take();
            return base ** this.parseUnary();
        }
        return base;
    }

    // percent := primary "%"*   where no operand follows the "%" (then it is modulo: 17 % 5)
    private parsePercent(): number {
        let value = this.parsePrimary();
        while (this.isOp("%") && !startsOperand(this.tokens[this.index + 1]!)) {
            this.take();
            value /= 100;
        }
        return value;
    }

    // primary := number | constant | name "(" args ")" | "(" expression ")"
    private parsePrimary(): number {
        const token = this.take();
        if (token.type === "number")
            return token.value;
        if (token.type === "name") {
            if (this.isOp("("))
                return this.parseCall(token.value, token.at);
            const constant = CONSTANTS[token.value];
            if (constant === undefined)
                throw new CalculatorError(`unknown name "${token.value}" at position ${token.at + 1}`);
            return constant;
        }
        if (token.type === "op" && token.value === "(") {
            const value = this.parseExpression();
            if (!this.isOp(")"))
                throw new CalculatorError(`missing ")" at position ${this.peek().at + 1}`);
            this.take();
            return value;
        }
        throw new CalculatorError(`unexpected ${describe(token)} at position ${token.at + 1}`);
    }

    private parseCall(name: string, at: number): number {
        const fn = FUNCTIONS[name];
        if (fn === undefined)
            throw new CalculatorError(`unknown function "${name}" at position ${at + 1}`);
        this.take(); // "("
        const args: number[] = [];
        if (!this.isOp(")")) {
            args.push(this.parseExpression());
            while (this.isOp(",")) {
                this.take();
                args.push(this.parseExpression());
            }
        }
        if (!this.isOp(")"))
            throw new CalculatorError(`missing ")" after the arguments of ${name} at position ${this.peek().at + 1}`);
        this.take();
        const [least, most] = fn.arity;
        if (args.length < least || args.length > most)
            throw new CalculatorError(`${name} takes ${least === most ? least : most === Infinity ? `at least ${least}` : `${least} or ${most}`} argument${most === 1 ? "" : "s"}, got ${args.length}`);
        return fn.fn(...args);
    }
}

function startsOperand(token: Token): boolean {
    return token.type === "number" || token.type === "name" || (token.type === "op" && token.value === "(");
}

function describe(token: Token): string {
    if (token.type === "end")
        return "end of expression";
    return `"${token.value}"`;
}
