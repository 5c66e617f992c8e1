import { createCipheriv, createDecipheriv, createHash, createHmac, hash, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PledgeError } from './errors.js';
import { secureRandomBytes } from './random.js';

/**
 * The master key: 32 random bytes from which every other key is derived (data-key wrapping,
 * blind indexes, token signing). Production supplies it (PLEDGE_MASTER_KEY, from a secret
 * manager); a development install gets one generated into its data directory.
 */
export const MASTER_KEY_FILE = 'master.key';
/**
 * Development only: the key a `pledge keys rotate` in progress re-wraps under. Written before
 * anything is re-wrapped and renamed over master.key once everything is, so an interrupted
 * rotation never leaves keys wrapped under a key that exists nowhere.
 */
export const NEXT_MASTER_KEY_FILE = 'master.key.next';

/** Development: the master keys found in the data directory now (the key file, and a rotation's next key). */
export function readMasterKeyFiles(dataDir: string): Buffer[] {
  const keys: Buffer[] = [];
  for (const name of [MASTER_KEY_FILE, NEXT_MASTER_KEY_FILE]) {
    const file = path.join(dataDir, name);
    try {
      keys.push(parseMasterKey(readFileSync(file, 'utf8'), file));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  return keys;
}

export function parseMasterKey(text: string, source: string): Buffer {
  const value = text.trim();
  let key: Buffer | undefined;
  if (/^[0-9a-fA-F]{64}$/.test(value)) key = Buffer.from(value, 'hex');
  else if (/^[A-Za-z0-9+/_-]{42,44}={0,2}$/.test(value)) key = Buffer.from(value.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  // Never echo the value: it is the secret.
  if (!key || key.length !== 32) {
    throw new PledgeError('master_key_invalid', `${source} must be 32 random bytes written as 64 hex characters or base64 (generate one with: openssl rand -hex 32)`);
  }
  return key;
}

export interface MasterKeyResult {
  key: Buffer;
  source: 'environment' | 'file' | 'generated';
  warnings: string[];
}

export function loadMasterKey(options: { masterKey: string | undefined; dataDir: string; environment: 'development' | 'production' }): MasterKeyResult {
  if (options.masterKey) {
    return { key: parseMasterKey(options.masterKey, 'PLEDGE_MASTER_KEY'), source: 'environment', warnings: [] };
  }
  if (options.environment === 'production') {
    throw new PledgeError('master_key_invalid', 'PLEDGE_MASTER_KEY is required in production; a generated development key is never used there');
  }
  const file = path.join(options.dataDir, MASTER_KEY_FILE);
  const warnings: string[] = [];
  try {
    const mode = statSync(file).mode & 0o777;
    if (mode & 0o077) {
      chmodSync(file, 0o600);
      warnings.push(`${file} was readable by other users (mode ${mode.toString(8)}); its mode is now 600`);
    }
    return { key: parseMasterKey(readFileSync(file, 'utf8'), file), source: 'file', warnings };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  const key = randomBytes(32);
  // 'wx' fails if another process created the file meanwhile; then use that one.
  try {
    writeFileSync(file, `${key.toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return loadMasterKey(options);
    throw error;
  }
  warnings.push(
    `generated a development master key in ${file}. Production must supply its own in PLEDGE_MASTER_KEY (openssl rand -hex 32) and keep it out of the data directory and its backups.`,
  );
  return { key, source: 'generated', warnings };
}

// --- primitives ---------------------------------------------------------------------------------

/** base64url without padding: the text form of every binary value Pledge stores. */
export function toBase64Url(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64url');
}

export function fromBase64Url(text: string): Buffer {
  return Buffer.from(text, 'base64url');
}

/**
 * Derives a purpose-bound 32-byte key from the master key (HKDF-SHA-256). Each label yields an
 * independent key, so one leaked derived key reveals nothing about the others.
 */
export function deriveKey(masterKey: Buffer, label: string): Buffer {
  return Buffer.from(hkdfSync('sha256', masterKey, Buffer.from('pledge'), Buffer.from(label), 32));
}

/** A short public name for a key (never the key): first 12 hex digits of its SHA-256. */
export function keyId(key: Buffer): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 12);
}

const SEAL_VERSION = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/**
 * AES-256-GCM with a random nonce. `context` is bound as associated data: a ciphertext only
 * opens under the same context (e.g. `subject:sub_…/field:user.contact.email`), so a
 * ciphertext copied into another row fails to decrypt instead of leaking into the wrong place.
 * Layout: version (1 byte) ‖ nonce (12) ‖ ciphertext ‖ tag (16), base64url.
 */
export function seal(key: Buffer, plaintext: Uint8Array, context: string): string {
  const nonce = secureRandomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(Buffer.from(context));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return toBase64Url(Buffer.concat([Buffer.of(SEAL_VERSION), nonce, body, cipher.getAuthTag()]));
}

/** Opens what `seal` produced; a wrong key, context or any changed byte is an integrity error. */
export function open(key: Buffer, sealed: string, context: string): Buffer {
  const bytes = fromBase64Url(sealed);
  if (bytes.length < 1 + NONCE_BYTES + TAG_BYTES || bytes[0] !== SEAL_VERSION) {
    throw new PledgeError('data_integrity_failed', 'a stored ciphertext is malformed');
  }
  const nonce = bytes.subarray(1, 1 + NONCE_BYTES);
  const tag = bytes.subarray(bytes.length - TAG_BYTES);
  const body = bytes.subarray(1 + NONCE_BYTES, bytes.length - TAG_BYTES);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, nonce);
    decipher.setAAD(Buffer.from(context));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(body), decipher.final()]);
  } catch (error) {
    throw new PledgeError('data_integrity_failed', 'a stored ciphertext failed its integrity check (wrong key, moved or altered)', { cause: error });
  }
}

/** Keyed hash for look-ups by value without storing the value (a blind index). */
export function blindIndex(key: Buffer, kind: string, normalizedValue: string): string {
  return createHmac('sha256', key).update(kind).update('\u0000').update(normalizedValue).digest('base64url');
}

/** SHA-256 of a high-entropy token (API keys, session ids): fast, and enough for random secrets. */
export function hashToken(token: string): string {
  // One-shot: no Hash object per call (it runs for every API call, to find its key).
  return hash('sha256', token, 'base64url');
}

export function randomToken(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

/**
 * Whether two texts are equal, in a time that depends on their length only, not on where they
 * first differ — for a secret compared on every request, where safeEqual's two buffers would
 * cost as much as hashing it. (Lengths are not secret here: a token's format fixes its length.)
 */
export function sameTextInConstantTime(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let index = 0; index < a.length; index++) difference |= a.charCodeAt(index) ^ b.charCodeAt(index);
  return difference === 0;
}

/** Constant-time comparison of two strings of any length. */
export function safeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}
