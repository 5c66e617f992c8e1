import type { Clock } from '../core/clock.js';

/**
 * Counts attempts per key (a client IP) in fixed windows: `limit` attempts per `windowMs`.
 * Kept in memory, so each `pledge serve` process counts on its own — with N processes behind
 * a load balancer an address gets up to N × limit attempts per window. The account lockout
 * (in the database) is what bounds guessing against one account across processes; this limit
 * bounds the work (argon2 hashing) one address can make a process do.
 *
 *   const limiter = new AttemptLimiter(clock, 10, 60_000);
 *   const wait = limiter.hit(ip);   // 0: go ahead; otherwise seconds until the window ends
 */
export class AttemptLimiter {
  private readonly windows = new Map<string, { start: number; count: number }>();

  constructor(
    private readonly clock: Clock,
    readonly limit = 10,
    readonly windowMs = 60_000,
    /** Bound on remembered addresses, so a spray of spoofed sources cannot exhaust memory. */
    private readonly maxKeys = 10_000,
  ) {}

  /** Counts one attempt; returns 0 when it is allowed, else the seconds to wait. */
  hit(key: string): number {
    const now = this.clock.now().getTime();
    let window = this.windows.get(key);
    if (!window || now - window.start >= this.windowMs) {
      if (window) this.windows.delete(key);
      window = { start: now, count: 0 };
      this.prune(now);
      this.windows.set(key, window);
    }
    window.count += 1;
    if (window.count <= this.limit) return 0;
    return Math.max(1, Math.ceil((window.start + this.windowMs - now) / 1000));
  }

  reset(): void {
    this.windows.clear();
  }

  private prune(now: number): void {
    if (this.windows.size < this.maxKeys) return;
    for (const [key, window] of this.windows) {
      if (now - window.start >= this.windowMs) this.windows.delete(key);
    }
    // Still full: forget the oldest windows (Map keeps insertion order).
    for (const key of this.windows.keys()) {
      if (this.windows.size < this.maxKeys) break;
      this.windows.delete(key);
    }
  }
}
