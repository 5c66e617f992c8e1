/**
 * A small bounded cache whose entries expire: least recently used entries leave first when it
 * is full, and an entry older than `ttlMs` is never returned. Hot read paths use it for values
 * that are costly to fetch and safe to hold briefly (a verified API key, an unwrapped data key).
 *
 *   const keys = new TtlCache<string, Buffer>({ max: 10_000, ttlMs: 60_000 });
 *   const key = keys.get(id) ?? keys.set(id, await fetchKey(id));
 */
export class TtlCache<K, V> {
  private readonly entries = new Map<K, { value: V; expiresAt: number }>();
  private readonly max: number;
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(options: { max: number; ttlMs: number; now?: () => number }) {
    this.max = options.max;
    this.ttlMs = options.ttlMs;
    this.now = options.now ?? Date.now;
  }

  get(key: K): V | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    // Map keeps insertion order: re-inserting marks the entry as the most recently used.
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry.value;
  }

  set(key: K, value: V): V {
    if (this.ttlMs <= 0 || this.max <= 0) return value;
    this.entries.delete(key);
    if (this.entries.size >= this.max) this.entries.delete(this.entries.keys().next().value as K);
    this.entries.set(key, { value, expiresAt: this.now() + this.ttlMs });
    return value;
  }

  delete(key: K): void {
    this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }
}
