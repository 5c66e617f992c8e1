import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createTestDatabase, temporaryDirectory, testDialects, type TestDatabase } from '../../test/support/databases.js';
import { createApp, type App } from '../app.js';
import { loadConfig } from '../core/config.js';
import { createLogger } from '../core/logger.js';
import { RecordingNotifier } from './requests.test-support.js';

const system = { type: 'system' as const, id: 'test' };

for (const dialect of testDialects()) {
  describe(`requests over HTTP on ${dialect}`, () => {
    let app: App;
    let database: TestDatabase;
    let directory: { path: string; remove(): void };
    let key: string;
    let readKey: string;
    const notifier = new RecordingNotifier();

    before(async () => {
      database = await createTestDatabase(dialect);
      directory = temporaryDirectory('pledge-requests-http-');
      const { config } = loadConfig({}, { dataDir: path.join(directory.path, 'data'), databaseUrl: database.url, policy: 'examples/demo/pledge.yaml', publicUrl: 'https://privacy.example.com' });
      app = await createApp(config, { logger: createLogger('silent'), requestNotifier: notifier });
      key = (await app.staff.createApiKey(system, { name: 'officer', permissions: ['requests:read', 'requests:manage', 'requests:decide', 'subjects:write', 'data:write'], purposes: 'all' })).key;
      readKey = (await app.staff.createApiKey(system, { name: 'reader', permissions: ['requests:read'], purposes: 'all' })).key;
    });
    after(async () => {
      await app.close();
      await database.cleanup();
      directory.remove();
    });

    const call = (method: 'GET' | 'POST', url: string, body?: unknown, bearer = key) =>
      app.http.inject({ method, url, headers: { authorization: `Bearer ${bearer}` }, ...(body !== undefined ? { payload: body as object } : {}) });

    test('log, verify, approve, run and download an access package through a public signed link', async () => {
      await call('POST', '/v1/subjects', { kinds: ['customer'], identities: [{ kind: 'email', value: 'ada@example.com' }], data: { purpose: 'order_fulfilment', source: 'person', fields: { 'user.name': 'Ada Lovelace' } } });
      const created = await call('POST', '/v1/requests', { type: 'access', identities: [{ kind: 'email', value: 'ada@example.com' }], channel: 'email', receivedAt: '2026-01-05T10:00:00Z' });
      assert.equal(created.statusCode, 201, created.body);
      const request = created.json();
      assert.equal(request.status, 'identity_unverified');
      assert.equal(request.receivedAt, '2026-01-05T10:00:00.000Z');
      const code = notifier.lastCode(request.id)!;
      assert.ok(!created.body.includes(code) && !created.body.includes('ada@'), 'neither the code nor the identity is in the answer');

      const wrong = await call('POST', `/v1/requests/${request.id}/verify`, { code: code === '111111' ? '222222' : '111111' });
      assert.equal(wrong.statusCode, 422);
      assert.equal(wrong.json().code, 'verification_code_invalid');
      assert.equal(wrong.json().attemptsLeft, 4);
      assert.ok(!wrong.body.includes(code));
      assert.equal((await call('POST', `/v1/requests/${request.id}/verify`, { code })).json().status, 'pending');
      const invalid = await call('POST', `/v1/requests/${request.id}/run`);
      assert.equal(invalid.statusCode, 409);
      assert.equal(invalid.json().code, 'invalid_request_transition');
      assert.equal((await call('POST', `/v1/requests/${request.id}/approve`)).json().status, 'approved');
      assert.equal((await call('POST', `/v1/requests/${request.id}/run`)).statusCode, 202);
      await app.jobs.runDue();
      const shown = await call('GET', `/v1/requests/${request.id}`, undefined, readKey);
      assert.equal(shown.json().status, 'completed');
      assert.equal(shown.json().overdue, false);

      const links = (await call('POST', `/v1/requests/${request.id}/package-links`)).json().links;
      const url = new URL(links.html);
      const page = await app.http.inject({ method: 'GET', url: url.pathname });
      assert.equal(page.statusCode, 200);
      assert.match(String(page.headers['content-type']), /^text\/html/);
      assert.match(String(page.headers['content-disposition']), /^attachment/);
      assert.ok(page.body.includes('Ada Lovelace'));
      const forged = await app.http.inject({ method: 'GET', url: `${url.pathname.slice(0, -2)}xx` });
      assert.equal(forged.statusCode, 404);
      assert.equal(forged.json().code, 'package_not_available');
    });

    test('list with filters, overdue included; an unknown identity is answered like a known one', async () => {
      const a = await call('POST', '/v1/requests', { type: 'erasure', identities: [{ kind: 'email', value: 'ada@example.com' }] });
      const b = await call('POST', '/v1/requests', { type: 'erasure', identities: [{ kind: 'email', value: 'nobody-at-all@example.com' }] });
      assert.equal(a.statusCode, b.statusCode);
      assert.deepEqual(Object.keys(a.json()), Object.keys(b.json()));
      assert.equal(a.json().status, b.json().status);
      const listed = await call('GET', '/v1/requests?type=erasure&status=identity_unverified', undefined, readKey);
      assert.equal(listed.statusCode, 200);
      assert.deepEqual(listed.json().requests.map((item: { id: string }) => item.id).sort(), [a.json().id, b.json().id].sort());
      const overdue = await call('GET', '/v1/requests?overdue=true', undefined, readKey);
      // The first request was received on January 5: 30 days later it is overdue unless completed.
      assert.ok(overdue.json().requests.every((item: { overdue: boolean }) => item.overdue));
      const denied = await call('POST', `/v1/requests/${a.json().id}/approve`, undefined, readKey);
      assert.equal(denied.statusCode, 403);
    });
  });
}
