import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { loadConfig } from '../src/core/config.js';
import { createLogger } from '../src/core/logger.js';
import { createEngine } from '../src/engine.js';
import type { ResultRow } from './support.js';

/**
 * Consent over HTTP, in one run beside the bare Fastify route, 50 connections each:
 * (a) "may purpose P be used for subject S?" — GET /v1/subjects/{id}/consent/{purpose};
 * (b) recording a consent event — POST /v1/consent/events (ledger, projection, receipt and
 *     audit entry in one transaction).
 * Server and load generator are separate processes.
 */
const MASTER_KEY = 'ce'.repeat(32);
const DURATION_SECONDS = 10;
const SUBJECTS = 200;

async function waitForLine(child: ChildProcess, pattern: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`no start within 20 s:\n${output}`)), 20_000);
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
      const match = pattern.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    child.once('exit', (code) => reject(new Error(`exited with ${code}:\n${output}`)));
  });
}

interface Load {
  requests: number;
  p99: number;
  errors: number;
}

async function load(options: autocannon.Options): Promise<Load> {
  const result = await autocannon({ connections: 50, duration: DURATION_SECONDS, ...options });
  return { requests: result.requests.average, p99: result.latency.p99, errors: result.errors + result.non2xx };
}

async function prepare(directory: string, databaseUrl: string | undefined): Promise<{ subjects: string[]; key: string; env: NodeJS.ProcessEnv }> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    PLEDGE_MASTER_KEY: MASTER_KEY,
    PLEDGE_LOG_LEVEL: 'warn',
    PLEDGE_POLICY: path.resolve('examples/demo/pledge.yaml'),
    PLEDGE_DATA_DIR: path.join(directory, 'data'),
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
  };
  const { config } = loadConfig(env, {}, directory);
  const engine = await createEngine(config, { logger: createLogger('silent') });
  try {
    const system = { type: 'system' as const, id: 'bench' };
    const created = await engine.subjects.createMany(system, Array.from({ length: SUBJECTS }, () => ({ kinds: ['customer'] })));
    const subjects = created.map((subject) => subject.id);
    for (const id of subjects) await engine.consent.record(system, { holder: id, source: 'import', choices: [{ purpose: 'marketing', action: 'granted' }] });
    const { key } = await engine.staff.createApiKey(system, { name: 'bench', permissions: ['consent:read', 'consent:write'], purposes: 'all' });
    return { subjects, key, env };
  } finally {
    await engine.close();
  }
}

export async function benchConsent(databaseUrl?: string): Promise<ResultRow[]> {
  const label = databaseUrl ? 'PostgreSQL' : 'SQLite';
  const directory = mkdtempSync(path.join(os.tmpdir(), 'pledge-bench-consent-'));
  const children: ChildProcess[] = [];
  try {
    const { subjects, key, env } = await prepare(directory, databaseUrl);
    const bare = spawn(process.execPath, [path.resolve('dist/bench/bare-server.js'), '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(bare);
    const bareUrl = await waitForLine(bare, /listening on (http:\/\/[^\s]+)/);
    const ceiling = await load({ url: `${bareUrl}/health` });
    bare.kill('SIGTERM');

    const server = spawn(process.execPath, [path.resolve('dist/pledge.mjs'), 'serve', '--port', '0'], { cwd: directory, env, stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(server);
    const base = await waitForLine(server, /Pledge is running on (http:\/\/[^\s]+)/);
    const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };

    const check = await fetch(`${base}/v1/subjects/${subjects[0]}/consent/marketing`, { headers });
    const answer = (await check.json()) as { allowed?: boolean };
    if (check.status !== 200 || answer.allowed !== true) throw new Error(`the decision check does not answer allowed: ${check.status} ${JSON.stringify(answer).slice(0, 200)}`);
    // Each request asks about another subject, so no answer is served from one hot row.
    const decisions = await load({ url: base, headers, requests: subjects.map((id) => ({ method: 'GET', path: `/v1/subjects/${id}/consent/marketing` })) });

    const actions = ['granted', 'withdrawn'];
    const writes = await load({
      url: base,
      headers,
      requests: subjects.map((id, index) => ({ method: 'POST', path: '/v1/consent/events', body: JSON.stringify({ holder: id, source: 'banner', bannerVersion: 'bench', choices: [{ purpose: 'marketing', action: actions[index % 2] }] }) })),
    });

    const ratio = decisions.requests / ceiling.requests;
    return [
      {
        benchmark: `"may P be used for S?" over HTTP (GET /v1/subjects/{id}/consent/{purpose}), 50 connections, ${DURATION_SECONDS} s (${label})`,
        measured: `${Math.round(decisions.requests).toLocaleString('en')} req/s, p99 ${decisions.p99} ms${decisions.errors ? `, ${decisions.errors} errors` : ''}`,
        ceiling: `${Math.round(ceiling.requests).toLocaleString('en')} req/s (bare Fastify)`,
        ratio: `${ratio.toFixed(2)}×`,
        target: '≥ 0.6×',
        verdict: ratio >= 0.6 && decisions.errors === 0 ? 'pass' : 'FAIL',
      },
      {
        benchmark: `recording consent events over HTTP (POST /v1/consent/events: event, state, receipt, audit), 50 connections, ${DURATION_SECONDS} s (${label})`,
        measured: `${Math.round(writes.requests).toLocaleString('en')} events/s, p99 ${writes.p99} ms${writes.errors ? `, ${writes.errors} errors` : ''}`,
        ceiling: `${Math.round(ceiling.requests).toLocaleString('en')} req/s (bare Fastify)`,
        ratio: `${(writes.requests / ceiling.requests).toFixed(2)}×`,
        target: '≥ 5,000 events/s',
        verdict: writes.requests >= 5000 && writes.errors === 0 ? 'pass' : 'FAIL',
      },
    ];
  } finally {
    for (const child of children) child.kill('SIGTERM');
    rmSync(directory, { recursive: true, force: true });
  }
}
