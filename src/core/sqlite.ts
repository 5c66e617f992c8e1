import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';
import { PledgeError } from './errors.js';

/**
 * The embedded SQLite driver. better-sqlite3 comes in two builds: 13.x is a Node-API module
 * with prebuilt binaries for Node 22 and later, and is the only one safe on Node 24.19+
 * (12.x's statements abort the process when garbage-collected there); 12.x is the one that
 * runs on Node 20. Both are optional dependencies; this picks the right one for the running
 * Node and says plainly what to install when neither loads.
 */
const require = createRequire(import.meta.url);

type SqliteConstructor = typeof BetterSqlite3;

let loaded: SqliteConstructor | undefined;

export function sqliteDriverName(): 'better-sqlite3-napi' | 'better-sqlite3' {
  return Number(process.versions.node.split('.')[0]) >= 22 ? 'better-sqlite3-napi' : 'better-sqlite3';
}

export function loadSqlite(): SqliteConstructor {
  if (loaded) return loaded;
  const name = sqliteDriverName();
  try {
    loaded = require(name) as SqliteConstructor;
    return loaded;
  } catch (error) {
    throw new PledgeError(
      'database_unavailable',
      `the SQLite driver (${name}) could not be loaded on Node ${process.versions.node}: ${(error as Error).message.split('\n')[0]}. Run npm ci again with this Node version${name === 'better-sqlite3' ? ' (it builds from source: python3, make and a C++ compiler are needed when no prebuilt binary is available)' : ''}.`,
      { cause: error },
    );
  }
}

/** Where the SQLite driver loadSqlite() picks lives, for a worker thread to load it too. */
export function sqliteModulePath(): string {
  return require.resolve(sqliteDriverName());
}
