import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/core/config.js';
import { createLogger } from '../src/core/logger.js';
import { createEngine } from '../src/engine.js';
import { bareCeiling, describeCpu, describePairedCeiling, describePairedWindow, describeRepeatedWindow, pairedLoad, repeatedLoad, SERVER_PROCESSES, startPledge, stopChild, type LoadShape } from './servers.js';
import { judgeOnBetterSetUp, type ResultRow } from './support.js';

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
  const decisionRows: Array<{ row: ResultRow; score: number }> = [];
  const eventRows: Array<{ row: ResultRow; score: number }> = [];
  try {
    const { subjects, key, env } = await prepare(directory, databaseUrl);
    const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
    // Each request asks about another subject, so no answer is served from one hot row.
    const decisionLoad: LoadShape = { headers, requests: subjects.map((id) => ({ method: 'GET', path: `/v1/subjects/${id}/consent/marketing` })) };
    const actions = ['granted', 'withdrawn'];
    const writeLoad: LoadShape = {
      headers,
      requests: subjects.map((id, index) => ({ method: 'POST', path: '/v1/consent/events', body: JSON.stringify({ holder: id, source: 'banner', bannerVersion: 'bench', choices: [{ purpose: 'marketing', action: actions[index % 2] }] }) })),
    };
    // The better bare set-up (1 process or as many as Pledge runs); pairedLoad measures it beside each row.
    const ceiling = await bareCeiling(DURATION_SECONDS, decisionLoad);
    // As one process, and as production runs it: one process per CPU (`--workers auto`).
    for (const processes of [...new Set([1, SERVER_PROCESSES])]) {
      const setUp = `${label}, ${processes === 1 ? '1 process' : `${processes} processes`}`;
      const server = await startPledge(directory, env, processes);
      try {
        const base = server.base;
        const check = await fetch(`${base}/v1/subjects/${subjects[0]}/consent/marketing`, { headers });
        const answer = (await check.json()) as { allowed?: boolean };
        if (check.status !== 200 || typeof answer.allowed !== 'boolean') throw new Error(`the decision check does not answer: ${check.status} ${JSON.stringify(answer).slice(0, 200)}`);
        const paired = await pairedLoad(server, decisionLoad, DURATION_SECONDS, ceiling);
        const decisions = paired.measured;
        const writes = await repeatedLoad(server, writeLoad, DURATION_SECONDS);

        decisionRows.push({
          score: decisions.requests,
          row: {
            benchmark: `"may P be used for S?" over HTTP (GET /v1/subjects/{id}/consent/{purpose}), 50 connections, ${describePairedWindow(DURATION_SECONDS)} (${setUp})`,
            measured: `${Math.round(decisions.requests).toLocaleString('en')} req/s, p99 ${decisions.p99} ms${describeCpu(decisions)}${decisions.errors ? `, ${decisions.errors} errors` : ''}`,
            ceiling: describePairedCeiling(paired),
            ratio: `${paired.ratio.toFixed(2)}×`,
            target: '≥ 0.6×',
            verdict: paired.ratio >= 0.6 && decisions.errors === 0 ? 'pass' : 'FAIL',
          },
        });
        eventRows.push({
          score: writes.requests,
          row: {
            benchmark: `recording consent events over HTTP (POST /v1/consent/events: event, state, receipt, audit), 50 connections, ${describeRepeatedWindow(DURATION_SECONDS)} (${setUp})`,
            measured: `${Math.round(writes.requests).toLocaleString('en')} events/s, p99 ${writes.p99} ms${describeCpu(writes)}${writes.errors ? `, ${writes.errors} errors` : ''}`,
            ceiling: describePairedCeiling(paired),
            ratio: `${(writes.requests / paired.ceiling.requests).toFixed(2)}×`,
            target: '≥ 5,000 events/s',
            verdict: writes.requests >= 5000 && writes.errors === 0 ? 'pass' : 'FAIL',
          },
        });
      } finally {
        await stopChild(server.child);
      }
    }
    const decisions = judgeOnBetterSetUp(decisionRows);
    const events = judgeOnBetterSetUp(eventRows);
    // Each set-up's decision row, then its events row, as the table always listed them.
    return decisions.flatMap((row, index) => [row, events[index]!]);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}
