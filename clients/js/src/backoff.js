// Reconnect delays: exponential backoff with jitter (docs/streams.md, "A client, step by step":
// 0.5 s doubling to 20 s, ±50 %). The jitter spreads the reconnects of many clients after a
// gateway restart so they do not all arrive in the same instant.

/** @typedef {{min?: number, max?: number, factor?: number, jitter?: number}} BackoffOptions */

export const DEFAULT_BACKOFF = Object.freeze({ min: 500, max: 20000, factor: 2, jitter: 0.5 });

export class Backoff {
  /**
   * @param {BackoffOptions} [options] min and max in milliseconds; jitter is a fraction (0.5 = ±50 %)
   * @param {() => number} [random] a source of numbers in [0, 1), for tests
   */
  constructor(options = {}, random = Math.random) {
    const o = { ...DEFAULT_BACKOFF, ...options };
    for (const key of ['min', 'max', 'factor', 'jitter']) {
      if (typeof o[key] !== 'number' || !(o[key] >= 0) || !Number.isFinite(o[key])) {
        throw new TypeError(`backoff.${key} must be a finite number >= 0, got ${String(o[key])}`);
      }
    }
    if (o.max < o.min) throw new TypeError(`backoff.max (${o.max}) must not be below backoff.min (${o.min})`);
    if (o.jitter > 1) throw new TypeError(`backoff.jitter must be at most 1 (a fraction: 0.5 = ±50 %), got ${o.jitter}`);
    if (o.factor < 1) throw new TypeError(`backoff.factor must be at least 1, got ${o.factor}`);
    this.options = o;
    this.random = random;
    /** Failed attempts since the last connection that stayed up. */
    this.attempt = 0;
  }

  /**
   * The delay before the next attempt, in milliseconds, and counts the attempt.
   * It is `min * factor^attempt` capped at `max`, then scaled by a random factor in
   * `[1 - jitter, 1 + jitter]`: with the defaults 250–750 ms first, then up to 10–30 s.
   */
  next() {
    const { min, max, factor, jitter } = this.options;
    const base = Math.min(max, min * Math.pow(factor, this.attempt));
    this.attempt++;
    return Math.max(0, Math.round(base * (1 + jitter * (2 * this.random() - 1))));
  }

  /** Starts over from `min`: called once a connection proved healthy. */
  reset() {
    this.attempt = 0;
  }
}
