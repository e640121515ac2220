/**
 * Errors meant for users: one line that says what is wrong and where.
 * The CLI prints `message` (plus `hint` when present) and exits with `exitCode`;
 * anything else is a bug and prints a stack trace under --debug only.
 */
export class UserError extends Error {
    readonly exitCode: number;
    readonly hint?: string;

    constructor(message: string, options: { hint?: string; exitCode?: number; cause?: unknown } = {}) {
        super(message, { cause: options.cause });
        this.name = "UserError";
        this.exitCode = options.exitCode ?? 2;
        this.hint = options.hint;
    }
}

/** Bad input: a missing or malformed file, flag or value (exit code 2). */
export class InputError extends UserError {
    constructor(message: string, options: { hint?: string; cause?: unknown } = {}) {
        super(message, { ...options, exitCode: 2 });
        this.name = "InputError";
    }
}

/** A failure of the environment (a build, a child process, the network): exit code 1. */
export class RuntimeFailure extends UserError {
    constructor(message: string, options: { hint?: string; cause?: unknown } = {}) {
        super(message, { ...options, exitCode: 1 });
        this.name = "RuntimeFailure";
    }
}

export function errorMessage(error: unknown): string {
    return error instanceof Error ? error.message : String(error);
}
