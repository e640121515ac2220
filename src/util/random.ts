/** A small seeded PRNG (mulberry32): repeatable choices for rounds, shuffles and seeds. */
export class SeededRandom {
    private state: number;

    constructor(seed: number) {
        this.state = seed >>> 0;
    }

    /** Uniform in [0, 1). */
    next(): number {
        let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    }

    /** Uniform in [low, high]. */
    uniform(low: number, high: number): number {
        return low + (high - low) * this.next();
    }

    integer(maxExclusive: number): number {
        return Math.floor(this.next() * maxExclusive);
    }

    /** k distinct items, in random order. */
    sample<T>(items: readonly T[], k: number): T[] {
        const copy = [...items];
        for (let i = copy.length - 1; i > 0; i--) {
            const j = this.integer(i + 1);
            [copy[i], copy[j]] = [copy[j]!, copy[i]!];
        }
        return copy.slice(0, Math.min(k, copy.length));
    }
}

/** A repeatable 32-bit seed from a base seed and a string (a task id, a stage name). */
export function deriveSeed(base: number, key: string): number {
    let hash = (base ^ 0x811c9dc5) >>> 0;
    for (let i = 0; i < key.length; i++)
        hash = Math.imul(hash ^ key.charCodeAt(i), 0x01000193) >>> 0;
    return hash;
}
