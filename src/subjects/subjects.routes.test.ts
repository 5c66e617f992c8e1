import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createTestApp, type TestApp } from '../../test/support/app.js';
import { testDialects } from '../../test/support/databases.js';
import { authorisationCases } from '../http/auth.testing.js';

const system = { type: 'system' as const, id: 'test' };

for (const dialect of testDialects()) {
  describe(`the vault over HTTP on ${dialect}`, () => {
    let testApp: TestApp;
    let shopKey: string;
    let readOnlyKey: string;
    before(async () => {
      testApp = await createTestApp(dialect);
      shopKey = (await testApp.app.staff.createApiKey(system, { name: 'shop', permissions: ['subjects:read', 'subjects:write', 'subjects:erase', 'data:read', 'data:write'], purposes: ['order_fulfilment', 'account', 'legal_compliance'] })).key;
      readOnlyKey = (await testApp.app.staff.createApiKey(system, { name: 'reader', permissions: ['subjects:read', 'data:read'], purposes: 'all' })).key;
    });
    after(() => testApp.cleanup());

    const call = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, options: { key?: string; body?: unknown; headers?: Record<string, string>; payload?: string } = {}) =>
      testApp.app.http.inject({
        method,
        url,
        headers: { authorization: `Bearer ${options.key ?? shopKey}`, ...(options.payload !== undefined ? { 'content-type': 'application/json' } : {}), ...options.headers },
        ...(options.body !== undefined ? { payload: options.body as object } : {}),
        ...(options.payload !== undefined ? { payload: options.payload } : {}),
      });

    const customer = (email: string) => ({
      kinds: ['customer'],
      identities: [{ kind: 'email', value: email }],
      data: { purpose: 'order_fulfilment', source: 'person', fields: { 'user.name': 'Ada Lovelace', 'user.contact.address': '12 St James Square, London' } },
    });

    test('create, look up by identity, read for a purpose, write, erase', async () => {
      const created = await call('POST', '/v1/subjects', { body: customer('ada@example.com') });
      assert.equal(created.statusCode, 201, created.body);
      const { id } = created.json();
      assert.match(id, /^sub_/);
      assert.ok(!created.body.includes('Ada'), 'creation answers with metadata, not data');

      const found = await call('POST', '/v1/subjects/lookup', { body: { kind: 'email', value: ' ADA@example.com' } });
      assert.equal(found.json().id, id);

      const read = await call('GET', `/v1/subjects/${id}/data?purpose=order_fulfilment`);
      assert.equal(read.statusCode, 200, read.body);
      assert.equal(read.headers['cache-control'], 'no-store');
      assert.equal(read.json().fields['user.name'].value, 'Ada Lovelace');

      const written = await call('PATCH', `/v1/subjects/${id}/data`, { body: { purpose: 'order_fulfilment', source: 'person', fields: { 'user.contact.phone_number': '+44 20 7946 0000' } } });
      assert.equal(written.statusCode, 200, written.body);
      assert.deepEqual(written.json().categories, ['user.contact.phone_number']);

      const erased = await call('DELETE', `/v1/subjects/${id}`);
      assert.equal(erased.statusCode, 200);
      assert.equal(erased.json().status, 'erased');
      const gone = await call('GET', `/v1/subjects/${id}/data?purpose=order_fulfilment`);
      assert.equal(gone.statusCode, 410);
      assert.equal(gone.json().code, 'subject_erased');
    });

    test('refusals are precise problems, and nothing is stored', async () => {
      const { id } = (await call('POST', '/v1/subjects', { body: customer('refusals@example.com') })).json();
      const notCollected = await call('PATCH', `/v1/subjects/${id}/data`, { body: { purpose: 'order_fulfilment', source: 'person', fields: { 'user.health': 'x' } } });
      assert.equal(notCollected.statusCode, 422);
      assert.equal(notCollected.headers['content-type'], 'application/problem+json; charset=utf-8');
      assert.equal(notCollected.json().code, 'category_not_collected');
      const visitor = (await call('POST', '/v1/subjects', { body: { kinds: ['visitor'] } })).json();
      const notFromVisitors = await call('PATCH', `/v1/subjects/${visitor.id}/data`, { body: { purpose: 'order_fulfilment', source: 'person', fields: { 'user.name': 'Val' } } });
      assert.equal(notFromVisitors.statusCode, 422, notFromVisitors.body);
      assert.equal(notFromVisitors.json().code, 'category_not_collected');
      assert.match(notFromVisitors.json().detail, /"user.name" about subjects of kind visitor/);
      const partnerIgnored = await call('PATCH', `/v1/subjects/${id}/data`, { body: { purpose: 'order_fulfilment', source: 'person', partner: 'payment_gateway', fields: { 'user.name': 'Ada' } } });
      assert.equal(partnerIgnored.statusCode, 422, partnerIgnored.body);
      assert.equal(partnerIgnored.json().code, 'unexpected_partner');
      assert.equal(partnerIgnored.json().field, 'partner');
      const notAnEmail = await call('PATCH', `/v1/subjects/${id}/data`, { body: { purpose: 'account', source: 'person', fields: { 'user.contact.email': 'not an email at all' } } });
      assert.equal(notAnEmail.statusCode, 422, notAnEmail.body);
      assert.equal(notAnEmail.json().code, 'invalid_field_value');
      assert.ok(!notAnEmail.body.includes('at all'), 'the value is not echoed');
      const marketing = await call('GET', `/v1/subjects/${id}/data?purpose=marketing`, { key: readOnlyKey });
      assert.equal(marketing.statusCode, 403);
      assert.equal(marketing.json().code, 'purpose_not_permitted');
      assert.equal(marketing.json().reason, 'consent');
      const outOfScope = await call('GET', `/v1/subjects/${id}/data?purpose=analytics`);
      assert.equal(outOfScope.json().reason, 'api_key_scope');
      const unknownPurpose = await call('GET', `/v1/subjects/${id}/data?purpose=nonsense`);
      assert.equal(unknownPurpose.json().code, 'unknown_purpose');
      const taken = await call('POST', '/v1/subjects', { body: customer('refusals@example.com') });
      assert.equal(taken.statusCode, 409);
      assert.equal(taken.json().code, 'identity_taken');
      assert.ok(!taken.body.includes('refusals@'), 'the identity is not echoed');
      const noWrite = await call('POST', '/v1/subjects', { key: readOnlyKey, body: customer('nowrite@example.com') });
      assert.equal(noWrite.statusCode, 403);
    });

    test('a key scoped to other purposes cannot create with data for marketing, alone or in a batch', async () => {
      const marketing = (email: string) => ({ ...customer(email), data: { purpose: 'marketing', source: 'person', fields: { 'user.name': 'Ada Lovelace' } } });
      const single = await call('POST', '/v1/subjects', { body: marketing('scope-single@example.com') });
      assert.equal(single.statusCode, 403, single.body);
      assert.equal(single.json().code, 'purpose_not_permitted');
      assert.equal(single.json().reason, 'api_key_scope');
      const batch = await call('POST', '/v1/subjects/batch', { body: { subjects: [customer('scope-batch-0@example.com'), marketing('scope-batch-1@example.com')] } });
      assert.equal(batch.statusCode, 403, batch.body);
      assert.equal(batch.json().reason, 'api_key_scope');
      for (const email of ['scope-single@example.com', 'scope-batch-0@example.com', 'scope-batch-1@example.com']) {
        assert.equal((await call('POST', '/v1/subjects/lookup', { body: { kind: 'email', value: email } })).statusCode, 404, 'nothing was stored');
      }
    });

    test('malformed, unknown and oversized input is refused at the edge', async () => {
      const malformed = await call('POST', '/v1/subjects', { payload: '{"kinds": [' });
      assert.equal(malformed.statusCode, 400);
      assert.equal(malformed.json().code, 'malformed_body');
      const unknownField = await call('POST', '/v1/subjects', { body: { kinds: ['customer'], nickname: 'x' } });
      assert.equal(unknownField.statusCode, 400);
      assert.equal(unknownField.json().code, 'validation_failed');
      const wrongType = await call('POST', '/v1/subjects', { body: { kinds: 'customer' } });
      assert.equal(wrongType.json().code, 'validation_failed');
      const invalidEmail = await call('POST', '/v1/subjects', { body: { kinds: ['customer'], identities: [{ kind: 'email', value: 'jane.doe-at-example' }] } });
      assert.equal(invalidEmail.statusCode, 422);
      assert.equal(invalidEmail.json().code, 'invalid_identity');
      assert.ok(!invalidEmail.body.includes('jane.doe'), 'the value is not echoed');
      const huge = await call('POST', '/v1/subjects', { payload: JSON.stringify({ kinds: ['customer'], pad: 'x'.repeat(2 * 1024 * 1024) }) });
      assert.equal(huge.statusCode, 413);
      assert.equal(huge.json().code, 'payload_too_large');
      const { id } = (await call('POST', '/v1/subjects', { body: { kinds: ['customer'] } })).json();
      const deep = await call('PATCH', `/v1/subjects/${id}/data`, { payload: `{"purpose":"order_fulfilment","source":"person","fields":{"user.contact.address":${'['.repeat(20_000)}${']'.repeat(20_000)}}}` });
      assert.equal(deep.statusCode, 422, deep.body);
      assert.equal(deep.json().code, 'invalid_field_value');
      const badId = await call('GET', '/v1/subjects/not-an-id/data?purpose=order_fulfilment');
      assert.equal(badId.statusCode, 400);
    });

    test('a batch is all or nothing over HTTP too', async () => {
      const items = [0, 1, 2].map((index) => ({ kinds: ['customer'], identities: [{ kind: 'email', value: `http-batch-${index}@example.com` }] }));
      const rejected = await call('POST', '/v1/subjects/batch', { body: { subjects: [...items, { kinds: ['martian'] }] } });
      assert.equal(rejected.statusCode, 422);
      assert.deepEqual(rejected.json().errors.map((error: { index: number; code: string }) => [error.index, error.code]), [[3, 'unknown_subject_kind']]);
      const lookup = await call('POST', '/v1/subjects/lookup', { body: { kind: 'email', value: 'http-batch-0@example.com' } });
      assert.equal(lookup.statusCode, 404, 'nothing of the rejected batch was written');
      const accepted = await call('POST', '/v1/subjects/batch', { body: { subjects: items } });
      assert.equal(accepted.statusCode, 201, accepted.body);
      assert.equal(accepted.json().subjects.length, 3);
      const tooMany = await call('POST', '/v1/subjects/batch', { body: { subjects: Array.from({ length: 1001 }, () => ({ kinds: ['customer'] })) } });
      assert.equal(tooMany.statusCode, 400);
    });

    test('a rejected batch names every failing item in one answer, a taken identity included', async () => {
      assert.equal((await call('POST', '/v1/subjects', { body: customer('jane-batch@example.com') })).statusCode, 201);
      const rejected = await call('POST', '/v1/subjects/batch', { body: { subjects: [{ kinds: ['customer'], identities: [{ kind: 'email', value: 'jane-batch@example.com' }] }, { kinds: ['alien'] }] } });
      assert.equal(rejected.statusCode, 422, rejected.body);
      assert.equal(rejected.json().code, 'batch_rejected');
      assert.deepEqual(rejected.json().errors.map((error: { index: number; code: string }) => [error.index, error.code]), [[0, 'identity_taken'], [1, 'unknown_subject_kind']]);
      assert.ok(!rejected.body.includes('jane-batch'), 'the identity is not echoed');
    });

    test('a batch update changes kinds, adds identities and writes data for many subjects at once, all or nothing', async () => {
      const created = await call('POST', '/v1/subjects/batch', { body: { subjects: [customer('upd-a@example.com'), customer('upd-b@example.com'), { kinds: ['subscriber'], identities: [{ kind: 'email', value: 'upd-c@example.com' }] }] } });
      assert.equal(created.statusCode, 201, created.body);
      const [a, b, c] = created.json().subjects.map((item: { id: string }) => item.id) as [string, string, string];
      const taken = (await call('POST', '/v1/subjects', { body: customer('upd-taken@example.com') })).json().id as string;
      const erased = (await call('POST', '/v1/subjects', { body: customer('upd-erased@example.com') })).json().id as string;
      assert.equal((await call('DELETE', `/v1/subjects/${erased}`)).statusCode, 200);
      const read = async (id: string) => (await call('GET', `/v1/subjects/${id}/data?purpose=order_fulfilment`)).json().fields as Record<string, { value: unknown }>;

      // Every failing item in one answer, and nothing of the good ones written.
      const rejected = await call('PATCH', '/v1/subjects/batch', {
        body: {
          subjects: [
            { id: a, data: { purpose: 'order_fulfilment', source: 'person', fields: { 'user.name': 'Ada Byron' } } },
            { id: b, addIdentities: [{ kind: 'email', value: 'upd-taken@example.com' }] },
            { id: c, data: { purpose: 'order_fulfilment', source: 'person', fields: { 'user.contact.address': '1 Subscriber Lane' } } },
            { id: erased, kinds: ['customer'] },
            { id: 'sub_00000000000000000000000000', kinds: ['customer'] },
            { id: a, kinds: ['customer', 'subscriber'] },
          ],
        },
      });
      assert.equal(rejected.statusCode, 422, rejected.body);
      assert.deepEqual(rejected.json().errors.map((error: { index: number; code: string }) => [error.index, error.code]), [
        [1, 'identity_taken'],
        [2, 'category_not_collected'],
        [3, 'subject_erased'],
        [4, 'subject_not_found'],
        [5, 'validation_failed'],
      ]);
      assert.ok(!rejected.body.includes('upd-taken'), 'the identity is not echoed');
      assert.equal((await read(a))['user.name']!.value, 'Ada Lovelace', 'nothing of the rejected batch was written');

      // The same batch without its bad items: one transaction, audited per subject.
      const accepted = await call('PATCH', '/v1/subjects/batch', {
        body: {
          subjects: [
            { id: a, kinds: ['customer', 'subscriber'], data: { purpose: 'order_fulfilment', source: 'person', fields: { 'user.name': 'Ada Byron' } } },
            { id: b, addIdentities: [{ kind: 'email', value: 'upd-b2@example.com' }] },
            { id: c, kinds: ['customer'], data: { purpose: 'order_fulfilment', source: 'person', fields: { 'user.contact.address': '1 Former Subscriber Lane' } } },
          ],
        },
      });
      assert.equal(accepted.statusCode, 200, accepted.body);
      assert.deepEqual(accepted.json().subjects, [{ index: 0, id: a }, { index: 1, id: b }, { index: 2, id: c }]);
      assert.equal((await read(a))['user.name']!.value, 'Ada Byron');
      assert.deepEqual((await call('GET', `/v1/subjects/${a}`)).json().kinds, ['customer', 'subscriber']);
      assert.equal((await call('POST', '/v1/subjects/lookup', { body: { kind: 'email', value: 'upd-b2@example.com' } })).json().id, b);
      assert.equal((await read(c))['user.contact.address']!.value, '1 Former Subscriber Lane', 'the kinds an item ends with decide what it may collect');
      const { entries } = await testApp.app.audit.list({ targetId: c });
      assert.deepEqual(entries.map((entry) => entry.action).filter((action) => action !== 'data.read').slice(-2), ['subject.updated', 'data.written']);

      // Data needs data:write, and a purpose inside the key's scope.
      const noData = (await testApp.app.staff.createApiKey(system, { name: 'kinds only', permissions: ['subjects:write'], purposes: 'all' })).key;
      assert.equal((await call('PATCH', '/v1/subjects/batch', { key: noData, body: { subjects: [{ id: a, data: { purpose: 'order_fulfilment', source: 'person', fields: { 'user.name': 'X' } } }] } })).statusCode, 403);
      const outOfScope = await call('PATCH', '/v1/subjects/batch', { body: { subjects: [{ id: a, data: { purpose: 'marketing', source: 'person', fields: { 'user.name': 'X' } } }] } });
      assert.equal(outOfScope.statusCode, 403);
      assert.equal(outOfScope.json().reason ?? outOfScope.json().details?.reason, 'api_key_scope');
    });

    test('a tampered ciphertext answers a 500 problem that leaks nothing', async () => {
      const { id } = (await call('POST', '/v1/subjects', { body: customer('tampered@example.com') })).json();
      const row = await testApp.app.database.db.selectFrom('subject_fields').select('value').where('subject_id', '=', id).where('category', '=', 'user.name').executeTakeFirstOrThrow();
      await testApp.app.database.db.updateTable('subject_fields').set({ value: `${row.value.slice(0, -4)}AAAA` }).where('subject_id', '=', id).where('category', '=', 'user.name').execute();
      const response = await call('GET', `/v1/subjects/${id}/data?purpose=order_fulfilment`);
      assert.equal(response.statusCode, 500);
      assert.equal(response.json().code, 'data_integrity_failed');
      assert.ok(!response.body.includes('Ada') && !response.body.includes('London'));
    });

    test('a revoked API key is refused', async () => {
      const created = await testApp.app.staff.createApiKey(system, { name: 'temporary', permissions: ['subjects:read'], purposes: 'all' });
      await testApp.app.staff.revokeApiKey(system, created.apiKey.id);
      const response = await call('POST', '/v1/subjects/lookup', { key: created.key, body: { kind: 'email', value: 'x@example.com' } });
      assert.equal(response.statusCode, 401);
      assert.equal(response.json().code, 'api_key_revoked');
    });

    test('every route of the whole app enforces its access rule, for every role', async () => {
      const cases = await authorisationCases(testApp.app.http, testApp.app.staff);
      assert.ok(cases.some((item) => item.url === '/v1/subjects/:id/data'), 'the vault routes are covered');
      assert.ok(cases.some((item) => item.url === '/v1/api-keys'), 'the staff routes are covered');
    });

    test('the audit chain of a working server verifies', async () => {
      const report = await testApp.app.audit.verify();
      assert.equal(report.ok, true, JSON.stringify(report.firstProblem));
      assert.ok(report.entries > 10);
    });
  });
}
