import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createTestApp, type TestApp } from '../../test/support/app.js';
import { testDialects } from '../../test/support/databases.js';
import { ROLES } from '../staff/permissions.js';

const system = { type: 'system' as const, id: 'test' };
const PASSWORD = 'a long enough passphrase';

/** How requests that do not fit their route are answered: each says precisely what is wrong, without echoing values. */
for (const dialect of testDialects()) {
  describe(`request errors on ${dialect}`, () => {
    let testApp: TestApp;
    let key: string;
    before(async () => {
      testApp = await createTestApp(dialect);
      key = (await testApp.app.staff.createApiKey(system, { name: 'requests', permissions: ['staff:manage', 'keys:manage', 'subjects:write', 'subjects:erase', 'consent:write'], purposes: 'all' })).key;
    });
    after(() => testApp.cleanup());
    const send = (method: string, url: string, options: { payload?: unknown; headers?: Record<string, string> } = {}) =>
      testApp.app.http.inject({ method: method as 'POST', url, headers: { authorization: `Bearer ${key}`, ...options.headers }, ...(options.payload === undefined ? {} : { payload: options.payload as string }) });

    test('an unknown body property is named in the error path, its value is not echoed', async () => {
      const response = await send('POST', '/v1/staff', { payload: { email: 'ana@example.com', name: 'Ana', role: 'support', password: PASSWORD, nickname: 'jane-secret-value' } });
      assert.equal(response.statusCode, 400);
      const body = response.json();
      assert.equal(body.code, 'validation_failed');
      assert.deepEqual(body.errors, [{ location: 'body/nickname', message: 'is not a property this route accepts' }]);
      assert.ok(!response.body.includes('jane-secret-value'));
    });

    test('a value outside an enum is told the allowed values', async () => {
      const response = await send('POST', '/v1/staff', { payload: { email: 'ana@example.com', name: 'Ana', role: 'boss', password: PASSWORD } });
      assert.equal(response.statusCode, 400);
      assert.deepEqual(response.json().errors, [{ location: 'body/role', message: `must be one of ${ROLES.map((role) => `"${role}"`).join(', ')}` }]);
      assert.ok(!response.body.includes('boss'), 'the value sent is not echoed');
    });

    test('a body of a content type the route does not take is 415, not a validation error', async () => {
      for (const contentType of ['text/plain', 'text/plain; charset=utf-8', 'application/xml']) {
        const response = await send('POST', '/v1/staff', { payload: 'role=owner', headers: { 'content-type': contentType } });
        assert.equal(response.statusCode, 415, `${contentType}: ${response.body}`);
        assert.equal(response.json().code, 'unsupported_media_type');
        assert.equal(response.headers['content-type'], 'application/problem+json; charset=utf-8');
      }
    });

    test('a key that could pollute prototypes is refused, and the answer says why (not "invalid JSON")', async () => {
      for (const payload of ['{"name":"k","__proto__":{"admin":true}}', '{"name":"k","constructor":{"prototype":{"admin":true}}}']) {
        const response = await send('POST', '/v1/api-keys', { payload, headers: { 'content-type': 'application/json' } });
        assert.equal(response.statusCode, 400, payload);
        const body = response.json();
        assert.equal(body.code, 'malformed_body');
        assert.match(body.detail, /__proto__/);
        assert.match(body.detail, /prototype/);
      }
      const broken = await send('POST', '/v1/api-keys', { payload: '{"name":', headers: { 'content-type': 'application/json' } });
      assert.equal(broken.json().code, 'malformed_body');
      assert.equal(broken.json().detail, 'the request body is not valid JSON');
    });

    test('an empty body sent as JSON is no body: routes that take none answer, routes that need one say it is missing', async () => {
      const json = { 'content-type': 'application/json' };
      const visitor = await send('POST', '/v1/visitors', { headers: json });
      assert.equal(visitor.statusCode, 201, visitor.body);
      assert.match(visitor.json().id, /^vis_/);
      const created = await send('POST', '/v1/subjects', { payload: { kinds: ['customer'] } });
      assert.equal(created.statusCode, 201, created.body);
      const erased = await send('DELETE', `/v1/subjects/${created.json().id}`, { headers: json });
      assert.equal(erased.statusCode, 200, erased.body);
      const blank = await send('DELETE', `/v1/subjects/${created.json().id}`, { payload: ' \n', headers: json });
      assert.equal(blank.statusCode, 200, `whitespace alone is no body either (erasing again is idempotent): ${blank.body}`);
      for (const headers of [json, {}]) {
        const missing = await send('POST', '/v1/staff', { headers });
        assert.equal(missing.statusCode, 400, missing.body);
        assert.equal(missing.json().code, 'validation_failed');
        assert.deepEqual(missing.json().errors, [{ location: 'body', message: 'is missing' }]);
      }
    });
  });
}
