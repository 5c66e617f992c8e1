import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PledgeError } from './errors.js';

/**
 * The master key: 32 random bytes from which every other key is derived (data-key wrapping,
 * blind indexes, token signing). Production supplies it (PLEDGE_MASTER_KEY, from a secret
 * manager); a development install gets one generated into its data directory.
 */
export const MASTER_KEY_FILE = 'master.key';

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
