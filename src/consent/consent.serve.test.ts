import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cleanEnv, startServer, type RunningServer } from '../../test/support/cli.js';
import { createTestDatabase, temporaryDirectory, testDialects, type TestDatabase } from '../../test/support/databases.js';
import { loadConfig } from '../core/config.js';
import { createLogger } from '../core/logger.js';
import { createEngine } from '../engine.js';

/**
 * Two `pledge serve` processes on one database: a choice made through one is the answer of the
 * other on the very next request. The state lives in the database, not in either process.
 */
for (const dialect of testDialects()) {
  describe(`consent across two pledge serve processes on ${dialect}`, () => {
    let database: TestDatabase;
    let directory: { path: string; remove(): void };
    let servers: RunningServer[] = [];
    let subjectId: string;
    let key: string;

    before(async () => {
      database = await createTestDatabase(dialect);
      directory = temporaryDirectory('pledge-consent-serve-');
      const env = {
        PLEDGE_MASTER_KEY: randomBytes(32).toString('hex'),
        PLEDGE_DATA_DIR: path.join(directory.path, 'data'),
        PLEDGE_POLICY: path.resolve('examples/demo/pledge.yaml'),
        PLEDGE_DATABASE_URL: database.url,
      };
      const engine = await createEngine(loadConfig(env).config, { logger: createLogger('silent') });
      try {
        const system = { type: 'system' as const, id: 'test' };
        const subject = await engine.subjects.create(system, { kinds: ['customer'], data: { purpose: 'account', source: 'person', fields: { 'user.name': 'Two Servers' } } });
        subjectId = subject.id;
        key = (await engine.staff.createApiKey(system, { name: 'both', permissions: ['consent:read', 'consent:write', 'data:read'], purposes: 'all' })).key;
      } finally {
        await engine.close();
      }
      servers = await Promise.all([startServer([], { env: cleanEnv(env) }), startServer([], { env: cleanEnv(env) })]);
    });
    after(async () => {
      for (const server of servers) await server.stop();
      await database.cleanup();
      directory.remove();
    });

    const request = async (server: RunningServer, method: string, url: string, options: { body?: unknown; headers?: Record<string, string> } = {}) => {
      const response = await fetch(`${server.url}${url}`, {
        method,
        headers: { authorization: `Bearer ${key}`, ...(options.body ? { 'content-type': 'application/json' } : {}), ...options.headers },
        ...(options.body ? { body: JSON.stringify(options.body) } : {}),
      });
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };
    const allowed = async (server: RunningServer, headers: Record<string, string> = {}) => {
      const response = await request(server, 'GET', `/v1/subjects/${subjectId}/consent/marketing`, { headers });
      assert.equal(response.status, 200, JSON.stringify(response.body));
      return response.body.allowed;
    };
    const choose = async (server: RunningServer, action: string) => {
      const response = await request(server, 'POST', '/v1/consent/events', { body: { holder: subjectId, choices: [{ purpose: 'marketing', action }] } });
      assert.equal(response.status, 201, JSON.stringify(response.body));
    };

    test('a grant, a GPC opt-out and a withdrawal made through one are seen by the other at once', async () => {
      const [one, two] = servers as [RunningServer, RunningServer];
      assert.notEqual(one.pid, two.pid);
      assert.equal(await allowed(two), false);
      await choose(one, 'granted');
      assert.equal(await allowed(two), true);
      assert.equal((await request(two, 'GET', `/v1/subjects/${subjectId}/data?purpose=marketing`)).status, 200);

      assert.equal(await allowed(one, { 'sec-gpc': '1' }), false, 'the signal opts out');
      assert.equal(await allowed(two), false, 'and the other process sees it on its next request');
      const read = await request(two, 'GET', `/v1/subjects/${subjectId}/data?purpose=marketing`);
      assert.equal(read.status, 403);

      await choose(two, 'granted');
      assert.equal(await allowed(one, { 'sec-gpc': '1' }), true, 'the signal is not applied twice, even by the other process');
      await choose(one, 'withdrawn');
      assert.equal(await allowed(two), false);

      const history = await request(two, 'GET', `/v1/consent/events?holder=${subjectId}`);
      const marketing = (history.body.events as Array<{ target: string; action: string }>).filter((event) => event.target === 'marketing');
      assert.deepEqual(marketing.map((event) => event.action), ['granted', 'opted_out_by_signal', 'granted', 'withdrawn']);
    });
  });
}
