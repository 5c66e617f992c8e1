/**
 * A small bounded cache whose entries expire: least recently used entries leave first when it
 * is full, and an entry older than `ttlMs` is never returned. Hot read paths use it for values
 * that are costly to fetch and safe to hold briefly (a verified API key, an unwrapped data key).
 *
 *   const keys = new TtlCache<string, Buffer>({ max: 10_000, ttlMs: 60_000 });
 *   const key = keys.get(id) ?? keys.set(id, await fetchKey(id));
 *
 * Recency is a doubly linked list beside the Map: a hit only moves two pointers. Keeping the
 * order in the Map itself (delete and re-insert on every hit) made V8 shrink and regrow a small
 * Map's table on each call — a measurable part of every API call, which looks up its key here.
 */
interface Entry<K, V> {
  key: K;
  value: V;
  expiresAt: number;
  /** Towards the least recently used end. */
  older: Entry<K, V> | undefined;
  /** Towards the most recently used end. */
  newer: Entry<K, V> | undefined;
}

export class TtlCache<K, V> {
  private readonly entries = new Map<K, Entry<K, V>>();
  private oldest: Entry<K, V> | undefined;
  private newest: Entry<K, V> | undefined;
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
      this.remove(entry);
      return undefined;
    }
    if (entry !== this.newest) {
      this.unlink(entry);
      this.append(entry);
    }
    return entry.value;
  }

  set(key: K, value: V): V {
    if (this.ttlMs <= 0 || this.max <= 0) return value;
    const existing = this.entries.get(key);
    if (existing) this.remove(existing);
    else if (this.entries.size >= this.max && this.oldest) this.remove(this.oldest);
    const entry: Entry<K, V> = { key, value, expiresAt: this.now() + this.ttlMs, older: undefined, newer: undefined };
    this.entries.set(key, entry);
    this.append(entry);
    return value;
  }

  delete(key: K): void {
    const entry = this.entries.get(key);
    if (entry) this.remove(entry);
  }

  clear(): void {
    this.entries.clear();
    this.oldest = undefined;
    this.newest = undefined;
  }

  get size(): number {
    return this.entries.size;
  }

  private remove(entry: Entry<K, V>): void {
    this.entries.delete(entry.key);
    this.unlink(entry);
  }

  private unlink(entry: Entry<K, V>): void {
    if (entry.older) entry.older.newer = entry.newer;
    else this.oldest = entry.newer;
    if (entry.newer) entry.newer.older = entry.older;
    else this.newest = entry.older;
    entry.older = undefined;
    entry.newer = undefined;
  }

  private append(entry: Entry<K, V>): void {
    entry.older = this.newest;
    if (this.newest) this.newest.newer = entry;
    else this.oldest = entry;
    this.newest = entry;
  }
}
