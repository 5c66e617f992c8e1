import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createTestApp, type TestApp } from '../../test/support/app.js';
import { testDialects } from '../../test/support/databases.js';
import { authorisationCases } from '../http/auth.testing.js';

const system = { type: 'system' as const, id: 'test' };

for (const dialect of testDialects()) {
  describe(`the audit log over HTTP on ${dialect}`, () => {
    let testApp: TestApp;
    let auditorKey: string;
    let auditorKeyId: string;
    let readerKey: string;
    before(async () => {
      testApp = await createTestApp(dialect);
      const auditor = await testApp.app.staff.createApiKey(system, { name: 'auditor', permissions: ['audit:read', 'audit:verify'], purposes: 'all' });
      auditorKey = auditor.key;
      auditorKeyId = auditor.apiKey.id;
      readerKey = (await testApp.app.staff.createApiKey(system, { name: 'log reader', permissions: ['audit:read'], purposes: 'all' })).key;
      for (let index = 0; index < 5; index++) {
        await testApp.app.audit.record([{ actor: system, action: 'data.read', target: { type: 'subject', id: `sub_${String(index).padStart(26, '0')}` }, purpose: 'support' }]);
      }
    });
    after(() => testApp.cleanup());

    const call = (method: 'GET' | 'POST', url: string, options: { key?: string; body?: unknown } = {}) =>
      testApp.app.http.inject({ method, url, headers: { authorization: `Bearer ${options.key ?? auditorKey}` }, ...(options.body !== undefined ? { payload: options.body as object } : {}) });

    test('entries page in chain order, filter by record and action, and each read is itself recorded', async () => {
      const first = await call('GET', '/v1/audit/entries?limit=2');
      assert.equal(first.statusCode, 200, first.body);
      const page = first.json();
      assert.deepEqual(page.entries.map((entry: { seq: number }) => entry.seq), [1, 2]);
      assert.equal(page.nextSeq, 3);
      const next = (await call('GET', `/v1/audit/entries?limit=2&fromSeq=${page.nextSeq}`)).json();
      assert.deepEqual(next.entries.map((entry: { seq: number }) => entry.seq), [3, 4]);

      const target = `sub_${'3'.padStart(26, '0')}`;
      const about = (await call('GET', `/v1/audit/entries?targetId=${target}`)).json();
      assert.deepEqual(about.entries.map((entry: { action: string; target: { id: string } }) => [entry.action, entry.target.id]), [['data.read', target]]);
      assert.equal(about.nextSeq, null);

      const reads = (await call('GET', '/v1/audit/entries?action=audit.read&limit=500')).json().entries;
      assert.equal(reads.length, 3, 'the three reads before this one, not this one');
      assert.deepEqual(reads[0].actor, { type: 'api_key', id: auditorKeyId });
      assert.deepEqual(reads[0].details, { filterAction: null, fromSeq: 1, returned: 2, targetId: null, what: 'entries' });
      assert.equal(reads[2].details.targetId, target);
    });

    test('invalid filters are refused with validation_failed: an email is not a record id', async () => {
      for (const query of ['limit=0', 'limit=501', 'fromSeq=0', 'targetId=jane%40example.com', 'action=DROP%20TABLE', 'other=1']) {
        const response = await call('GET', `/v1/audit/entries?${query}`);
        assert.equal(response.statusCode, 400, query);
        assert.equal(response.json().code, 'validation_failed', query);
        assert.ok(!response.body.includes('jane@example.com'), 'the value is not echoed');
      }
    });

    test('checkpoints come with the key that signs them', async () => {
      await testApp.app.audit.checkpoint();
      const response = await call('GET', '/v1/audit/checkpoints');
      assert.equal(response.statusCode, 200, response.body);
      const body = response.json();
      assert.ok(body.checkpoints.length >= 1);
      assert.equal(body.keyId, testApp.app.audit.keyId);
      assert.match(body.publicKey, /^-----BEGIN PUBLIC KEY-----/);
      assert.equal(body.checkpoints[0].keyId, body.keyId);
    });

    test('verify answers the result (a broken or cut chain is a result, not an error), and is recorded', async () => {
      const intact = await call('POST', '/v1/audit/verify', { body: {} });
      assert.equal(intact.statusCode, 200, intact.body);
      const result = intact.json();
      assert.equal(result.ok, true);
      assert.equal(result.complete, undefined);
      assert.equal(result.keyId, testApp.app.audit.keyId);
      assert.equal(result.head.seq, result.entries);

      const wrong = await call('POST', '/v1/audit/verify', { body: { expect: { seq: result.head.seq, hash: 'A'.repeat(43) } } });
      assert.equal(wrong.statusCode, 200);
      assert.equal(wrong.json().ok, false);
      assert.equal(wrong.json().firstProblem.problem, 'expected_mismatch');

      assert.equal((await call('POST', '/v1/audit/verify', { body: { fromSeq: 0 } })).json().code, 'validation_failed');
      const forbidden = await call('POST', '/v1/audit/verify', { key: readerKey, body: {} });
      assert.equal(forbidden.statusCode, 403);
      assert.equal(forbidden.json().code, 'forbidden');

      const verifications = (await call('GET', '/v1/audit/entries?action=audit.verified')).json().entries;
      assert.deepEqual(
        verifications.map((entry: { details: { ok: boolean; problem: string | null } }) => [entry.details.ok, entry.details.problem]),
        [[true, null], [false, 'expected_mismatch']],
      );
    });

    test('a verification with its time budget spent says where to go on from', async () => {
      const partial = await testApp.app.audit.verify({ batchSize: 3, budgetMs: 0 });
      assert.deepEqual({ ok: partial.ok, entries: partial.entries, complete: partial.complete, nextSeq: partial.nextSeq }, { ok: true, entries: 3, complete: false, nextSeq: 4 });
      const rest = await testApp.app.audit.verify({ fromSeq: partial.nextSeq! });
      assert.equal(rest.ok, true);
      assert.equal(rest.complete, undefined);
    });

    test('the route table covers the audit routes: 401 without credentials, 403 without the permission', async () => {
      const cases = await authorisationCases(testApp.app.http, testApp.app.staff);
      for (const [method, url, permission] of [['GET', '/v1/audit/entries', 'audit:read'], ['GET', '/v1/audit/checkpoints', 'audit:read'], ['POST', '/v1/audit/verify', 'audit:verify']] as const) {
        const covered = cases.filter((item) => item.method === method && item.url === url);
        assert.ok(covered.some((item) => item.expected === 'unauthenticated' && item.status === 401), `${method} ${url}: 401`);
        assert.ok(covered.some((item) => item.who === 'support' && item.expected === 'forbidden' && item.status === 403), `${method} ${url}: 403 for support`);
        assert.ok(covered.every((item) => item.requires === permission), `${method} ${url} requires ${permission}`);
      }
      const document = testApp.app.http.swagger() as { paths: Record<string, Record<string, { tags?: string[] }>> };
      assert.deepEqual(document.paths['/v1/audit/entries']?.get?.tags, ['audit']);
      assert.deepEqual(document.paths['/v1/audit/verify']?.post?.tags, ['audit']);
      assert.ok(document.paths['/v1/audit/checkpoints']?.get);
    });
  });
}
