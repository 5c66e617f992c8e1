import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PledgeError } from './errors.js';
import { PACKAGE_ROOT } from './package.js';
import { closestMatch } from './suggest.js';

/**
 * The engine's configuration, read once from `PLEDGE_*` environment variables and
 * command-line flags (flags win), validated, and frozen. This is the only module that
 * reads `process.env`; everything else receives a Config.
 */
export interface Config {
  readonly environment: 'development' | 'production';
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  /** Absolute path of the policy file, and whether it is the bundled demo policy. */
  readonly policyPath: string;
  readonly policyIsDemo: boolean;
  /** `sqlite:/abs/path.db` or `postgres://…`. */
  readonly databaseUrl: string;
  /** PostgreSQL: the URL of the listening connection (ChangeListener); false: none; undefined: the database URL. */
  readonly databaseListenUrl: string | false | undefined;
  /**
   * Where subjects' data keys live: its own database, so that erasing a key also defeats
   * backups of the main database. Default: `keys.db` beside a SQLite database; the main
   * database itself on PostgreSQL (with a start-up warning).
   */
  readonly keystoreUrl: string;
  readonly keystoreSharesDatabase: boolean;
  readonly masterKey: string | undefined;
  /** Earlier master keys, still accepted for unwrapping until `pledge keys rotate` has run. */
  readonly previousMasterKeys: readonly string[];
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  readonly publicUrl: string;
  /** Largest request body accepted by the HTTP API, in bytes. */
  readonly bodyLimit: number;
  /** Fastify's trustProxy: which reverse proxies' X-Forwarded-For to believe (client addresses). */
  readonly trustProxy: boolean | number | string;
  /** Header the reverse proxy fills with the client's country code (consent evidence); none by default. */
  readonly countryHeader: string | undefined;
  /** Outgoing mail and the outbox worker (comms). */
  readonly mail: MailConfig;
  /** Minutes between retention sweeps in `pledge serve`; 0: no scheduled sweeps. */
  readonly retentionIntervalMinutes: number;
  /** Hosts (host or host:port) HTTP datastores may be reached at (PLEDGE_DATASET_HOSTS). */
  readonly datasetHosts: readonly string[];
  /** Server processes `pledge serve` runs, sharing the port and the database (1: no supervisor). */
  readonly workers: number;
}

export interface MailConfig {
  /** smtp:// or smtps:// URL; undefined: messages are written as .eml files under `<dataDir>/outbox`. */
  readonly smtpUrl: string | undefined;
  /** The From address (`Name <addr>` or `addr`); undefined: the policy's privacy contact. */
  readonly from: string | undefined;
  readonly pollIntervalMs: number;
  readonly batchSize: number;
  readonly maxAttempts: number;
  /** Delay before the first retry; it doubles with each attempt (with jitter), up to six hours. */
  readonly backoffMs: number;
  /** Connection, greeting and socket timeouts of the SMTP client. */
  readonly smtpTimeoutMs: number;
}

export interface ConfigFlags {
  host?: string;
  port?: string | number;
  dataDir?: string;
  policy?: string;
  databaseUrl?: string;
  logLevel?: string;
  publicUrl?: string;
  workers?: string;
}

export interface LoadedConfig {
  config: Config;
  /** Problems worth telling the operator that do not stop the start. */
  warnings: string[];
}

/** Variables Pledge understands; anything else starting with PLEDGE_ earns a warning. */
export const KNOWN_VARIABLES: Record<string, string> = {
  PLEDGE_ENV: 'development (default) or production',
  PLEDGE_HOST: 'address to listen on (default 127.0.0.1)',
  PLEDGE_PORT: 'port to listen on (default 4400)',
  PLEDGE_DATA_DIR: 'directory for the SQLite database, the development key and mail files (default ./.pledge)',
  PLEDGE_POLICY: 'path of the policy file (default ./pledge.yaml, else the demo policy)',
  PLEDGE_DATABASE_URL: 'postgres://… to run on PostgreSQL (DATABASE_URL is read too)',
  PLEDGE_DATABASE_LISTEN_URL: 'PostgreSQL: where each process LISTENs for consent changes, so it can answer decisions from memory — a direct (session) connection; off to read every decision from the database (default: the database URL)',
  PLEDGE_KEYSTORE_URL: "database of subjects' data keys, backed up apart from the main one (default: keys.db in the data dir, or the main PostgreSQL database)",
  PLEDGE_MASTER_KEY: '32 random bytes as 64 hex characters or base64; required in production',
  PLEDGE_PREVIOUS_MASTER_KEYS: 'comma-separated earlier master keys, during a key rotation',
  PLEDGE_LOG_LEVEL: 'fatal, error, warn, info (default), debug, trace or silent',
  PLEDGE_PUBLIC_URL: 'the address people reach this server at, used in links',
  PLEDGE_STAFF_PASSWORD: '`pledge staff add` only: the new account\'s password (never a flag)',
  PLEDGE_TRUST_PROXY: 'true, a hop count, or addresses of the reverse proxies whose X-Forwarded-For is believed',
  PLEDGE_BODY_LIMIT: 'largest accepted request body in bytes (default 1048576)',
  PLEDGE_COUNTRY_HEADER: 'request header your proxy sets to the client\'s two-letter country code, kept as consent evidence (default: none; the address itself is never stored)',
  PLEDGE_SMTP_URL: 'smtp:// or smtps:// server for outgoing mail (without it, mail is written as .eml files under <data dir>/outbox)',
  PLEDGE_MAIL_FROM: 'sender of outgoing mail, "Name <address>" (default: the policy\'s privacy contact)',
  PLEDGE_OUTBOX_POLL_MS: 'how often an idle outbox worker looks for due messages, in ms (default 1000)',
  PLEDGE_OUTBOX_BATCH: 'messages claimed at once by the outbox worker (default 200)',
  PLEDGE_OUTBOX_MAX_ATTEMPTS: 'delivery attempts before a message is marked failed (default 10)',
  PLEDGE_OUTBOX_BACKOFF_MS: 'delay before the first retry in ms; doubles each attempt, with jitter (default 30000)',
  PLEDGE_SMTP_TIMEOUT_MS: 'SMTP connection, greeting and socket timeout in ms (default 30000)',
  PLEDGE_RETENTION_INTERVAL: 'minutes between retention sweeps in pledge serve (default 60; 0 disables them)',
  PLEDGE_WORKER_ROLE: 'set by pledge serve --workers for its own worker processes; not for operators',
  PLEDGE_WORKERS: 'server processes of pledge serve, sharing the port and the database: a number, or auto for one per CPU (default 1)',
  PLEDGE_TEST_POSTGRES_URL: 'test suite only: run storage tests on this PostgreSQL too',
  PLEDGE_TEST_MYSQL_URL: 'test suite only: run connector tests on this MariaDB/MySQL too',
  PLEDGE_DATASET_HOSTS: 'comma-separated hosts (host or host:port) HTTP datastores of the policy may be reached at',
  PLEDGE_TEST_MARIADB_URL: 'test suite only: run dataset tests on this MariaDB/MySQL too (mysql://root@127.0.0.1:3306/test)',
  PLEDGE_TEST_CHROMIUM: 'test suite only: path of the Chromium for browser tests (default /usr/bin/chromium)',
  PLEDGE_TEST_BROWSER: 'test suite only: "required" makes browser tests fail, not skip, without Chromium',
};

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** The demo policy shipped with the package, used when no policy file is configured or found. */
export const DEMO_POLICY_PATH = path.join(PACKAGE_ROOT, 'examples', 'demo', 'pledge.yaml');

function fail(message: string): never {
  throw new PledgeError('config_invalid', message);
}

function parsePort(raw: string | number, source: string): number {
  const text = String(raw).trim();
  if (!/^\d+$/.test(text)) fail(`${source} must be a port number from 0 to 65535, got "${text}"`);
  const port = Number(text);
  if (port > 65535) fail(`${source} must be a port number from 0 to 65535, got ${port}`);
  return port;
}

function parseDatabaseUrl(raw: string, source: string, dataDir: string, cwd: string): string {
  if (/^postgres(ql)?:\/\//.test(raw)) {
    try {
      new URL(raw);
    } catch {
      fail(`${source} is not a valid postgres:// URL`);
    }
    return raw;
  }
  if (raw.startsWith('sqlite:')) {
    const file = raw.slice('sqlite:'.length);
    if (file === ':memory:') return raw;
    if (file.length === 0) return `sqlite:${path.join(dataDir, 'pledge.db')}`;
    return `sqlite:${path.resolve(cwd, file)}`;
  }
  // Never echo the value: a database URL may carry a password.
  fail(`${source} must start with postgres://, postgresql:// or sqlite:`);
}

export function loadConfig(
  env: NodeJS.ProcessEnv = process.env,
  flags: ConfigFlags = {},
  cwd: string = process.cwd(),
): LoadedConfig {
  const warnings: string[] = [];

  for (const name of Object.keys(env)) {
    if (name.startsWith('PLEDGE_') && !(name in KNOWN_VARIABLES)) {
      const guess = closestMatch(name, Object.keys(KNOWN_VARIABLES));
      warnings.push(`unknown environment variable ${name} is ignored${guess ? ` — did you mean ${guess}?` : ''}`);
    }
  }

  const environmentRaw = env.PLEDGE_ENV ?? (env.NODE_ENV === 'production' ? 'production' : 'development');
  if (environmentRaw !== 'development' && environmentRaw !== 'production') {
    fail(`PLEDGE_ENV must be development or production, got "${environmentRaw}"`);
  }

  const dataDir = path.resolve(cwd, flags.dataDir ?? env.PLEDGE_DATA_DIR ?? '.pledge');
  const host = flags.host ?? env.PLEDGE_HOST ?? '127.0.0.1';
  const port =
    flags.port !== undefined
      ? parsePort(flags.port, '--port')
      : env.PLEDGE_PORT !== undefined
        ? parsePort(env.PLEDGE_PORT, 'PLEDGE_PORT')
        : 4400;

  let policyPath: string;
  let policyIsDemo = false;
  const explicitPolicy = flags.policy ?? env.PLEDGE_POLICY;
  if (explicitPolicy !== undefined) {
    policyPath = path.resolve(cwd, explicitPolicy);
  } else if (existsSync(path.join(cwd, 'pledge.yaml'))) {
    policyPath = path.join(cwd, 'pledge.yaml');
  } else {
    policyPath = DEMO_POLICY_PATH;
    policyIsDemo = true;
  }

  const databaseSource = flags.databaseUrl
    ? '--database-url'
    : env.PLEDGE_DATABASE_URL
      ? 'PLEDGE_DATABASE_URL'
      : env.DATABASE_URL
        ? 'DATABASE_URL'
        : undefined;
  const databaseRaw = flags.databaseUrl ?? env.PLEDGE_DATABASE_URL ?? env.DATABASE_URL;
  const databaseUrl =
    databaseRaw === undefined || databaseSource === undefined
      ? `sqlite:${path.join(dataDir, 'pledge.db')}`
      : parseDatabaseUrl(databaseRaw, databaseSource, dataDir, cwd);

  let keystoreUrl: string;
  if (env.PLEDGE_KEYSTORE_URL) keystoreUrl = parseDatabaseUrl(env.PLEDGE_KEYSTORE_URL, 'PLEDGE_KEYSTORE_URL', dataDir, cwd);
  else if (databaseUrl === 'sqlite::memory:') keystoreUrl = 'sqlite::memory:';
  else if (databaseUrl.startsWith('sqlite:')) keystoreUrl = `sqlite:${path.join(path.dirname(databaseUrl.slice('sqlite:'.length)), 'keys.db')}`;
  else keystoreUrl = databaseUrl;
  const keystoreSharesDatabase = keystoreUrl === databaseUrl;
  if (keystoreSharesDatabase && environmentRaw === 'production') {
    warnings.push('the key store shares the main database (set PLEDGE_KEYSTORE_URL): an erasure then does not reach backups of that database until they expire');
  }

  const logLevelRaw = flags.logLevel ?? env.PLEDGE_LOG_LEVEL ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(logLevelRaw)) {
    fail(`PLEDGE_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got "${logLevelRaw}"`);
  }

  const publicUrlRaw = flags.publicUrl ?? env.PLEDGE_PUBLIC_URL;
  let publicUrl = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  if (publicUrlRaw !== undefined) {
    try {
      const url = new URL(publicUrlRaw);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('protocol');
      publicUrl = url.href.replace(/\/$/, '');
    } catch {
      fail(`PLEDGE_PUBLIC_URL must be an http:// or https:// URL, got "${publicUrlRaw}"`);
    }
  }

  let bodyLimit = 1_048_576;
  if (env.PLEDGE_BODY_LIMIT !== undefined) {
    if (!/^\d+$/.test(env.PLEDGE_BODY_LIMIT) || Number(env.PLEDGE_BODY_LIMIT) < 1024) {
      fail(`PLEDGE_BODY_LIMIT must be a whole number of bytes, at least 1024, got "${env.PLEDGE_BODY_LIMIT}"`);
    }
    bodyLimit = Number(env.PLEDGE_BODY_LIMIT);
  }

  let trustProxy: boolean | number | string = false;
  const trustRaw = env.PLEDGE_TRUST_PROXY?.trim();
  if (trustRaw) {
    if (trustRaw === 'true' || trustRaw === 'false') trustProxy = trustRaw === 'true';
    else if (/^\d{1,2}$/.test(trustRaw)) trustProxy = Number(trustRaw);
    else if (/^[0-9a-fA-F:.,/ ]+$/.test(trustRaw)) trustProxy = trustRaw;
    else fail(`PLEDGE_TRUST_PROXY must be true, false, a hop count or proxy addresses, got "${trustRaw}"`);
  }

  const countryHeader = env.PLEDGE_COUNTRY_HEADER?.trim() || undefined;
  if (countryHeader !== undefined && !/^[A-Za-z0-9-]{1,64}$/.test(countryHeader)) {
    fail(`PLEDGE_COUNTRY_HEADER must be a header name (letters, digits and -), got "${countryHeader}"`);
  }
  const mail = loadMailConfig(env);
  let retentionIntervalMinutes = 60;
  if (env.PLEDGE_RETENTION_INTERVAL !== undefined) {
    const raw = env.PLEDGE_RETENTION_INTERVAL.trim();
    if (!/^\d{1,6}$/.test(raw) || Number(raw) > 525_600) fail(`PLEDGE_RETENTION_INTERVAL must be a whole number of minutes from 0 (no sweeps) to 525600, got "${raw}"`);
    retentionIntervalMinutes = Number(raw);
  }

  const workersRaw = (flags.workers ?? env.PLEDGE_WORKERS ?? '1').trim();
  let workers = 1;
  if (workersRaw === 'auto') workers = os.availableParallelism();
  else if (/^\d{1,3}$/.test(workersRaw) && Number(workersRaw) >= 1 && Number(workersRaw) <= 256) workers = Number(workersRaw);
  else fail(`PLEDGE_WORKERS (--workers) must be a number from 1 to 256 or auto, got "${workersRaw}"`);

  // A transaction-mode pooler hands each statement to any server connection: a LISTEN there is
  // heard by no one, and a fence proves nothing. The listening connection must be a session.
  const listenRaw = env.PLEDGE_DATABASE_LISTEN_URL?.trim() || undefined;
  let databaseListenUrl: string | false | undefined;
  if (listenRaw === 'off') databaseListenUrl = false;
  else if (listenRaw !== undefined) {
    if (!/^postgres(ql)?:\/\//.test(listenRaw)) fail('PLEDGE_DATABASE_LISTEN_URL must be a postgres:// URL or off');
    if (!/^postgres(ql)?:\/\//.test(databaseUrl)) fail('PLEDGE_DATABASE_LISTEN_URL is for PostgreSQL: set it only with a postgres:// database URL');
    databaseListenUrl = listenRaw;
  }

  const masterKey = env.PLEDGE_MASTER_KEY?.trim() || undefined;
  const previousMasterKeys = (env.PLEDGE_PREVIOUS_MASTER_KEYS ?? '').split(',').map((key) => key.trim()).filter(Boolean);

  const datasetHosts = (env.PLEDGE_DATASET_HOSTS ?? '').split(',').map((host) => host.trim().toLowerCase()).filter(Boolean);
  for (const host of datasetHosts) {
    if (!/^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:\d{1,5})?$/.test(host)) fail(`PLEDGE_DATASET_HOSTS must list host names (optionally with :port), got "${host}"`);
  }

  const config: Config = Object.freeze({
    environment: environmentRaw,
    host,
    port,
    dataDir,
    policyPath,
    policyIsDemo,
    databaseUrl,
    databaseListenUrl,
    keystoreUrl,
    keystoreSharesDatabase,
    masterKey,
    previousMasterKeys: Object.freeze(previousMasterKeys),
    logLevel: logLevelRaw as Config['logLevel'],
    publicUrl,
    bodyLimit,
    trustProxy,
    countryHeader,
    mail,
    retentionIntervalMinutes,
    datasetHosts: Object.freeze(datasetHosts),
    workers,
  });
  return { config, warnings };
}

function loadMailConfig(env: NodeJS.ProcessEnv): MailConfig {
  const whole = (name: string, fallback: number, minimum: number): number => {
    const raw = env[name]?.trim();
    if (raw === undefined || raw === '') return fallback;
    if (!/^\d+$/.test(raw) || Number(raw) < minimum) fail(`${name} must be a whole number, at least ${minimum}, got "${raw}"`);
    return Number(raw);
  };
  const smtpRaw = env.PLEDGE_SMTP_URL?.trim() || undefined;
  if (smtpRaw !== undefined) {
    let valid = false;
    try {
      valid = ['smtp:', 'smtps:'].includes(new URL(smtpRaw).protocol);
    } catch {
      valid = false;
    }
    // Never echo the value: it may carry the SMTP password.
    if (!valid) fail('PLEDGE_SMTP_URL must be an smtp:// or smtps:// URL');
  }
  const from = env.PLEDGE_MAIL_FROM?.trim() || undefined;
  if (from !== undefined && (/[\r\n]/.test(from) || !/@/.test(from))) fail('PLEDGE_MAIL_FROM must be an address, optionally written "Name <address>", on one line');
  return Object.freeze({
    smtpUrl: smtpRaw,
    from,
    pollIntervalMs: whole('PLEDGE_OUTBOX_POLL_MS', 1000, 10),
    batchSize: whole('PLEDGE_OUTBOX_BATCH', 200, 1),
    maxAttempts: whole('PLEDGE_OUTBOX_MAX_ATTEMPTS', 10, 1),
    backoffMs: whole('PLEDGE_OUTBOX_BACKOFF_MS', 30_000, 1),
    smtpTimeoutMs: whole('PLEDGE_SMTP_TIMEOUT_MS', 30_000, 100),
  });
}

/** Test-suite settings; read here because this module alone touches process.env. */
export function testDatabaseUrls(env: NodeJS.ProcessEnv = process.env): { postgres?: string; mysql?: string; mariadb?: string } {
  const out: { postgres?: string; mysql?: string; mariadb?: string } = {};
  if (env.PLEDGE_TEST_POSTGRES_URL) out.postgres = env.PLEDGE_TEST_POSTGRES_URL;
  if (env.PLEDGE_TEST_MYSQL_URL) out.mysql = env.PLEDGE_TEST_MYSQL_URL;
  if (env.PLEDGE_TEST_MARIADB_URL || env.PLEDGE_TEST_MYSQL_URL) out.mariadb = env.PLEDGE_TEST_MARIADB_URL || env.PLEDGE_TEST_MYSQL_URL;
  return out;
}

/** Test-suite browser settings: which Chromium to drive, and whether its absence is a failure. */
export function testBrowserSettings(env: NodeJS.ProcessEnv = process.env): { executable: string; required: boolean } {
  return { executable: env.PLEDGE_TEST_CHROMIUM || '/usr/bin/chromium', required: env.PLEDGE_TEST_BROWSER === 'required' };
}

/** Secrets a command may take from its environment (never from flags). */
export function commandSecrets(env: NodeJS.ProcessEnv = process.env): Record<string, string | undefined> {
  return { PLEDGE_STAFF_PASSWORD: env.PLEDGE_STAFF_PASSWORD };
}

/**
 * The variables a policy's datasets name (connection URLs and HTTP signing secrets), read
 * here because this module alone touches process.env. Only the names asked for are read.
 *
 *   new DatasetsService({ policy, env: datasetEnv(datasetVariableNames(policy.document)), … })
 */
export function datasetEnv(names: Iterable<string>, env: NodeJS.ProcessEnv = process.env): Readonly<Record<string, string | undefined>> {
  const out: Record<string, string | undefined> = {};
  for (const name of names) out[name] = env[name];
  return Object.freeze(out);
}
