import { randomFillSync } from 'node:crypto';

/**
 * Cryptographically secure random bytes, drawn from a pool refilled 16 KB at a time. Asking
 * the operating system for 10 or 12 bytes at a time (every id, every nonce) costs far more
 * than the bytes: batching the requests keeps the CSPRNG and makes bulk writes much faster.
 * Every call returns a fresh copy; pool memory is never handed out.
 */
const POOL_SIZE = 16 * 1024;
const pool = Buffer.allocUnsafe(POOL_SIZE);
let offset = POOL_SIZE;

export function secureRandomBytes(size: number): Buffer {
  if (size > POOL_SIZE / 4) return randomFillSync(Buffer.allocUnsafe(size));
  if (offset + size > POOL_SIZE) {
    randomFillSync(pool);
    offset = 0;
  }
  const out = Buffer.from(pool.subarray(offset, offset + size));
  // Consumed bytes are overwritten so no copy of them lingers in the pool.
  pool.fill(0, offset, offset + size);
  offset += size;
  return out;
}
