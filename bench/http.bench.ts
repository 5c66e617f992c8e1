import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/core/config.js';
import { createLogger } from '../src/core/logger.js';
import { createEngine } from '../src/engine.js';
import { StaffService } from '../src/staff/staff.service.js';
import { bareCeiling, describeCpu, describePairedCeiling, describePairedWindow, pairedLoad, SERVER_PROCESSES, startPledge, stopChild, type LoadShape } from './servers.js';
import { judgeOnBetterSetUp, type ResultRow } from './support.js';

/**
 * (a) A purpose-checked read of 10 fields of one subject over HTTP, with its audit entry, at 50
 * connections — against a bare Fastify route answering a constant, measured in the same run on
 * the same machine. Server and load generator are separate processes.
 */
const MASTER_KEY = 'cd'.repeat(32);
const DURATION_SECONDS = 10;

/** The demo policy with a purpose that reads ten categories. */
function benchPolicyText(): string {
  return readFileSync('examples/demo/pledge.yaml', 'utf8')
    .replace('categories: [user.name, user.contact.email, user.account.username, user.authorization.credentials]', 'categories: [user.name, user.contact.email, user.account.username, user.account.settings, user.authorization.credentials]')
    .replace('categories: [user.contact.address, user.contact.phone_number, user.behavior.purchase_history]', 'categories: [user.contact.address, user.contact.phone_number, user.contact.url, user.workplace, user.demographic.gender, user.behavior.purchase_history]')
    .replace('categories: [user.name, user.contact, user.behavior.purchase_history, user.payment]', 'categories: [user.name, user.contact, user.account, user.workplace, user.demographic.gender, user.behavior.purchase_history, user.payment]')
    .replace('categories: [user.behavior.purchase_history, user.payment]\n    duration: 3 years', 'categories: [user.behavior.purchase_history, user.payment, user.workplace, user.demographic]\n    duration: 3 years');
}

export async function prepare(directory: string, databaseUrl: string | undefined): Promise<{ subjectId: string; key: string; env: NodeJS.ProcessEnv }> {
  const policy = path.join(directory, 'pledge.yaml');
  writeFileSync(policy, benchPolicyText());
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, PLEDGE_MASTER_KEY: MASTER_KEY, PLEDGE_LOG_LEVEL: 'warn', PLEDGE_POLICY: policy, PLEDGE_DATA_DIR: path.join(directory, 'data'), ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}) };
  const { config } = loadConfig(env, {}, directory);
  const engine = await createEngine(config, { logger: createLogger('silent') });
  try {
    const system = { type: 'system' as const, id: 'bench' };
    const subject = await engine.subjects.create(system, {
      kinds: ['customer'],
      identities: [{ kind: 'email', value: 'bench.person@example.com' }],
      data: {
        purpose: 'order_fulfilment',
        source: 'person',
        fields: {
          'user.name': 'Bench Person',
          'user.contact.email': 'bench.person@example.com',
          'user.contact.phone_number': '+1 555 0100',
          'user.contact.address': { street: '1 Main Street', city: 'Springfield', postcode: '12345' },
          'user.contact.url': 'https://example.com/~bench',
          'user.account.username': 'bench',
          'user.account.settings': { language: 'en' },
          'user.workplace': 'Example Corp',
          'user.demographic.gender': 'unspecified',
          'user.behavior.purchase_history': [{ order: 'o-1', total: 42.5 }],
        },
      },
    });
    const staff = new StaffService(engine.database, engine.audit, engine.clock, engine.keyring);
    const { key } = await staff.createApiKey(system, { name: 'bench', permissions: ['data:read'], purposes: ['order_fulfilment'] });
    return { subjectId: subject.id, key, env };
  } finally {
    await engine.close();
  }
}

export async function benchPurposeRead(databaseUrl?: string): Promise<ResultRow[]> {
  const label = databaseUrl ? 'PostgreSQL' : 'SQLite';
  const directory = mkdtempSync(path.join(os.tmpdir(), 'pledge-bench-http-'));
  const measuredRows: Array<{ row: ResultRow; score: number }> = [];
  try {
    const { subjectId, key, env } = await prepare(directory, databaseUrl);
    const shape: LoadShape = { path: `/v1/subjects/${subjectId}/data?purpose=order_fulfilment`, headers: { authorization: `Bearer ${key}` } };
    // The better bare set-up (1 process or as many as Pledge runs); pairedLoad measures it beside each row.
    const ceiling = await bareCeiling(DURATION_SECONDS, shape);
    // As one process, and as production runs it: one process per CPU (`--workers auto`).
    for (const processes of [...new Set([1, SERVER_PROCESSES])]) {
      const server = await startPledge(directory, env, processes);
      try {
        const check = await fetch(`${server.base}${shape.path}`, { headers: shape.headers! });
        const body = (await check.json()) as { fields?: Record<string, unknown> };
        if (check.status !== 200 || Object.keys(body.fields ?? {}).length !== 10) throw new Error(`the read does not return 10 fields: ${check.status} ${JSON.stringify(body).slice(0, 200)}`);
        const paired = await pairedLoad(server, shape, DURATION_SECONDS, ceiling);
        const { measured, ratio } = paired;
        measuredRows.push({ score: measured.requests, row: {
          benchmark: `purpose-checked read of 10 fields over HTTP, audited, 50 connections, ${describePairedWindow(DURATION_SECONDS)} (${label}, ${processes === 1 ? '1 process' : `${processes} processes`})`,
          measured: `${Math.round(measured.requests).toLocaleString('en')} req/s, p99 ${measured.p99} ms${describeCpu(measured)}${measured.errors ? `, ${measured.errors} errors` : ''}`,
          ceiling: describePairedCeiling(paired),
          ratio: `${ratio.toFixed(2)}×`,
          target: '≥ 0.25×, p99 ≤ 15 ms',
          verdict: ratio >= 0.25 && measured.p99 <= 15 && measured.errors === 0 ? 'pass' : 'FAIL',
        } });
      } finally {
        await stopChild(server.child);
      }
    }
    return judgeOnBetterSetUp(measuredRows);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}
