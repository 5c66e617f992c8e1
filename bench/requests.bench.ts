import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { systemClock } from '../src/core/clock.js';
import { loadConfig } from '../src/core/config.js';
import { createLogger } from '../src/core/logger.js';
import { createEngine } from '../src/engine.js';
import { loadPolicyFile, requirePolicy } from '../src/policy/policy.load.js';
import { RecordingNotifier } from '../src/requests/requests.test-support.js';
import type { Actor } from '../src/staff/permissions.js';
import { createTestDatabase, temporaryDirectory } from '../test/support/databases.js';
import type { ResultRow } from './support.js';

const actor: Actor = { type: 'system', id: 'bench' };

/**
 * Durable jobs and request execution on SQLite, on the real clock:
 * - empty jobs enqueued then claimed, run and completed one by one (the runner's own cost);
 * - access requests for people with three fields each, run end to end (vault task, package in
 *   three formats, sealed, completion) — requests per second through the job runner.
 */
export async function benchRequests(jobs = 2000, requests = 200): Promise<ResultRow[]> {
  const main = await createTestDatabase('sqlite');
  const keys = await createTestDatabase('sqlite');
  const directory = temporaryDirectory('pledge-bench-requests-');
  const { config } = loadConfig({ PLEDGE_MASTER_KEY: randomBytes(32).toString('hex'), PLEDGE_KEYSTORE_URL: keys.url }, { dataDir: directory.path, databaseUrl: main.url });
  const engine = await createEngine(config, { policy: requirePolicy(loadPolicyFile(path.resolve('examples/demo/pledge.yaml'))), clock: systemClock, logger: createLogger('silent'), requestNotifier: new RecordingNotifier() });
  try {
    engine.jobs.register('bench.noop', { run: async () => {} });
    for (let n = 0; n < jobs; n++) await engine.jobs.enqueue(engine.database.db, { kind: 'bench.noop', payload: { n } });
    let started = performance.now();
    const ran = await engine.jobs.runDue();
    const jobSeconds = (performance.now() - started) / 1000;

    for (let n = 0; n < requests; n++) {
      const email = `person${n}@example.com`;
      await engine.subjects.create(actor, { kinds: ['customer'], identities: [{ kind: 'email', value: email }], data: { purpose: 'order_fulfilment', source: 'person', fields: { 'user.name': `Person ${n}`, 'user.contact.address': { city: 'Springfield' }, 'user.contact.phone_number': '+1 555 0100' } } });
      const request = await engine.requests.create(actor, { type: 'access', identities: [{ kind: 'email', value: email }] });
      await engine.requests.overrideVerification(actor, request.id, 'bench');
      await engine.requests.approve(actor, request.id);
      await engine.requests.run(actor, request.id);
    }
    started = performance.now();
    await engine.jobs.runDue();
    const requestSeconds = (performance.now() - started) / 1000;
    const completed = (await engine.requests.list({ status: 'completed', limit: 200 })).requests.length;
    return [
      { benchmark: `durable jobs, SQLite: ${ran} empty jobs claimed, run, completed`, measured: `${Math.round(ran / jobSeconds)} jobs/s`, ceiling: '—', ratio: '—', target: '—', verdict: 'info' },
      { benchmark: `access requests end to end, SQLite: ${completed} of ${requests} (vault task + 3-format package)`, measured: `${(requests / requestSeconds).toFixed(1)} requests/s`, ceiling: '—', ratio: '—', target: '—', verdict: completed === requests ? 'info' : 'FAIL' },
    ];
  } finally {
    await engine.close();
    await main.cleanup();
    await keys.cleanup();
    directory.remove();
  }
}
