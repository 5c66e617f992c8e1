import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import Fastify from 'fastify';
import type { LightMyRequestResponse } from 'fastify';
import { testDialects } from '../../test/support/databases.js';
import { createStaffTestApp, type StaffTestApp } from '../staff/staff.test-support.js';
import { API_KEY_CACHE_MS, SESSION_ABSOLUTE_MS, SESSION_IDLE_MS, StaffService } from '../staff/staff.service.js';
import type { Actor } from '../staff/permissions.js';
import { cookieIsSecure, CSRF_HEADER, registerAuth, registeredRoutes, SESSION_COOKIE, trackRoutes } from './auth.js';
import { authorisationCases } from './auth.testing.js';

const OWNER_EMAIL = 'owner@example.com';
const SUPPORT_EMAIL = 'support@example.com';
const PASSWORD = 'a long enough passphrase';

function sessionCookie(response: LightMyRequestResponse) {
  return response.cookies.find((cookie) => cookie.name === SESSION_COOKIE);
}

test('the session cookie is Secure unless the server is plain http on this machine', () => {
  assert.equal(cookieIsSecure('http://127.0.0.1:4400'), false);
  assert.equal(cookieIsSecure('http://localhost:4400'), false);
  assert.equal(cookieIsSecure('http://[::1]:4400'), false);
  assert.equal(cookieIsSecure('https://privacy.example.com'), true);
  assert.equal(cookieIsSecure('http://pledge.internal:4400'), true);
});

test('a route without an access rule is refused when it is registered', async () => {
  const app = Fastify();
  const staff = {} as StaffService;
  await registerAuth(app, { staff, publicUrl: 'http://127.0.0.1:4400' });
  assert.throws(() => app.get('/v1/open', async () => 'oops'), /declares no access rule/);
  assert.throws(() => app.get('/v1/typo', { config: { permission: 'data:reed' as 'data:read' } }, async () => 'oops'), /unknown permission "data:reed"/);
  assert.throws(() => app.get('/v1/both', { config: { public: true, permission: 'data:read' } }, async () => 'oops'), /more than one/);
  app.get('/docs/extra', async () => 'documentation'); // allow-listed prefix
  app.get('/v1/fine', { config: { permission: 'audit:read' } }, async () => 'ok');
  await app.ready();
  assert.deepEqual(
    registeredRoutes(app).map((route) => `${route.method} ${route.url} ${route.access.kind}`),
    ['GET /docs/extra documentation', 'HEAD /docs/extra documentation', 'GET /v1/fine permission', 'HEAD /v1/fine permission'],
  );
  await app.close();
});

test('an app with a route registered before registerAuth refuses to start: that route would run unchecked', async () => {
  const app = Fastify();
  trackRoutes(app);
  app.get('/v1/early', async () => 'registered too soon');
  await registerAuth(app, { staff: {} as StaffService, publicUrl: 'http://127.0.0.1:4400' });
  app.get('/v1/fine', { config: { permission: 'audit:read' } }, async () => 'ok');
  await assert.rejects(async () => app.ready(), /routes registered before registerAuth have no access check: GET \/v1\/early, HEAD \/v1\/early/);
  await app.close().catch(() => {});
});

for (const dialect of testDialects()) {
  describe(`HTTP authentication on ${dialect}`, () => {
    let app: StaffTestApp;
    let ownerId: string;
    let address = 0;
    /** Each sign-in from its own address unless a test says otherwise (the limit has its own test). */
    const login = (email: string, password: string, remoteAddress = `198.51.100.${++address % 250}`) =>
      app.http.inject({ method: 'POST', url: '/v1/auth/login', payload: { email, password }, remoteAddress });
    const signIn = async (email = OWNER_EMAIL) => {
      const response = await login(email, PASSWORD);
      assert.equal(response.statusCode, 200, response.body);
      return { token: sessionCookie(response)!.value, csrfToken: response.json().csrfToken as string };
    };

    before(async () => {
      app = await createStaffTestApp(dialect);
      ownerId = (await app.staff.addStaff({ email: OWNER_EMAIL, name: 'Olive Owner', role: 'owner', password: PASSWORD })).id;
      await app.staff.addStaff({ email: SUPPORT_EMAIL, name: 'Sam Support', role: 'support', password: PASSWORD });
    });
    after(() => app.cleanup());

    test('sign-in sets an HttpOnly, SameSite=Strict session cookie and returns the CSRF token', async () => {
      const response = await login(OWNER_EMAIL, PASSWORD);
      assert.equal(response.statusCode, 200);
      const body = response.json();
      assert.deepEqual(body.staff, { id: ownerId, name: 'Olive Owner', role: 'owner' });
      assert.match(body.csrfToken, /^[A-Za-z0-9_-]{43}$/);
      assert.equal(body.expiresAt, new Date(app.clock.now().getTime() + SESSION_ABSOLUTE_MS).toISOString());
      const cookie = sessionCookie(response)!;
      assert.equal(cookie.httpOnly, true);
      assert.equal(cookie.sameSite, 'Strict');
      assert.equal(cookie.path, '/');
      assert.equal(cookie.secure, undefined, 'http://127.0.0.1 is development: no Secure flag');
      assert.equal(cookie.maxAge, SESSION_ABSOLUTE_MS / 1000);
      assert.equal(response.headers['cache-control'], 'no-store');
      assert.ok(!response.body.includes(cookie.value), 'the session token is only in the cookie');

      const me = await app.http.inject({ url: '/v1/auth/me', cookies: { [SESSION_COOKIE]: cookie.value } });
      assert.equal(me.statusCode, 200);
      assert.deepEqual(me.json().actor, { type: 'staff', id: ownerId });
      assert.equal(me.json().csrfToken, body.csrfToken);
      assert.ok(me.json().permissions.includes('staff:manage'));
    });

    test('with an https public address the cookie is Secure', async () => {
      const secure = await createStaffTestApp(dialect, { publicUrl: 'https://privacy.example.com' });
      try {
        await secure.staff.addStaff({ email: OWNER_EMAIL, name: 'Olive', role: 'owner', password: PASSWORD });
        const response = await secure.http.inject({ method: 'POST', url: '/v1/auth/login', payload: { email: OWNER_EMAIL, password: PASSWORD } });
        assert.equal(sessionCookie(response)!.secure, true);
      } finally {
        await secure.cleanup();
      }
    });

    test('a wrong password and an unknown email get the same 401, echoing neither', async () => {
      const wrong = await login(OWNER_EMAIL, 'not the password at all');
      const unknown = await login('stranger@example.com', 'not the password at all');
      for (const response of [wrong, unknown]) {
        assert.equal(response.statusCode, 401);
        assert.equal(response.headers['content-type'], 'application/problem+json; charset=utf-8');
        assert.equal(response.json().code, 'invalid_credentials');
        assert.doesNotMatch(response.body, /@|not the password/);
        assert.equal(sessionCookie(response), undefined);
      }
      assert.equal(wrong.json().detail, unknown.json().detail);
    });

    test('five failures lock the account; the right password is refused until the lock expires', async () => {
      const email = 'locked@example.com';
      await app.staff.addStaff({ email, name: 'Lou', role: 'auditor', password: PASSWORD });
      for (let attempt = 0; attempt < 5; attempt++) assert.equal((await login(email, 'wrong wrong wrong')).statusCode, 401);
      assert.equal((await login(email, PASSWORD)).json().code, 'invalid_credentials');
      app.clock.advance(15 * 60_000);
      assert.equal((await login(email, PASSWORD)).statusCode, 200);
    });

    test('more than 10 sign-in attempts a minute from one address: 429 rate_limited with Retry-After', async () => {
      const remoteAddress = '203.0.113.7';
      for (let attempt = 0; attempt < 10; attempt++) assert.equal((await login('x@example.com', 'wrong password', remoteAddress)).statusCode, 401);
      const limited = await login(OWNER_EMAIL, PASSWORD, remoteAddress);
      assert.equal(limited.statusCode, 429);
      assert.equal(limited.json().code, 'rate_limited');
      assert.ok(Number(limited.headers['retry-after']) > 0);
      assert.equal((await login(OWNER_EMAIL, PASSWORD)).statusCode, 200, 'other addresses are not affected');
      app.clock.advance(60_000);
      assert.equal((await login(OWNER_EMAIL, PASSWORD, remoteAddress)).statusCode, 200);
    });

    test('no credentials: 401 unauthenticated with WWW-Authenticate; public routes and docs need none', async () => {
      for (const url of ['/test/data', '/v1/staff', '/v1/auth/me']) {
        const response = await app.http.inject({ url });
        assert.equal(response.statusCode, 401, url);
        assert.equal(response.json().code, 'unauthenticated');
        assert.match(String(response.headers['www-authenticate']), /^Bearer/);
      }
      const open = await app.http.inject({ url: '/test/open' });
      assert.equal(open.statusCode, 200);
      assert.deepEqual(open.json(), { actor: null });
      const docs = await app.http.inject({ url: '/docs/json' });
      assert.equal(docs.statusCode, 200);
      assert.equal((await app.http.inject({ url: '/nowhere' })).statusCode, 404);
      const garbage = await app.http.inject({ url: '/test/data', headers: { authorization: 'Basic dXNlcjpwYXNz' } });
      assert.equal(garbage.json().code, 'unauthenticated');
      const forged = await app.http.inject({ url: '/test/data', cookies: { [SESSION_COOKIE]: 'forged-session-token' } });
      assert.equal(forged.json().code, 'unauthenticated');
    });

    test('a role without the permission gets 403 forbidden, naming the permission', async () => {
      const session = await signIn(SUPPORT_EMAIL);
      const response = await app.http.inject({ url: '/v1/staff', cookies: { [SESSION_COOKIE]: session.token } });
      assert.equal(response.statusCode, 403);
      assert.equal(response.json().code, 'forbidden');
      assert.equal(response.json().permission, 'staff:manage');
      assert.equal(app.audit.events.at(-1)!.action, 'access.denied');
      const allowed = await app.http.inject({ url: '/test/data', cookies: { [SESSION_COOKIE]: session.token } });
      assert.equal(allowed.statusCode, 200);
      assert.equal(allowed.json().actor.role, 'support');
    });

    test('cookie-authenticated changes need the X-CSRF-Token of that session; API keys do not', async () => {
      const session = await signIn(SUPPORT_EMAIL);
      const other = await signIn(OWNER_EMAIL);
      const post = (headers: Record<string, string>) => app.http.inject({ method: 'POST', url: '/test/data', cookies: { [SESSION_COOKIE]: session.token }, headers });
      assert.equal((await post({})).json().code, 'csrf_failed');
      assert.equal((await post({ [CSRF_HEADER]: 'wrong' })).statusCode, 403);
      assert.equal((await post({ [CSRF_HEADER]: other.csrfToken })).json().code, 'csrf_failed', "another session's token does not fit");
      assert.equal((await post({ [CSRF_HEADER]: session.csrfToken })).statusCode, 200);
      // Reads need no token.
      assert.equal((await app.http.inject({ url: '/test/data', cookies: { [SESSION_COOKIE]: session.token } })).statusCode, 200);

      const created = await app.http.inject({
        method: 'POST',
        url: '/v1/api-keys',
        cookies: { [SESSION_COOKIE]: other.token },
        headers: { [CSRF_HEADER]: other.csrfToken },
        payload: { name: 'shop', permissions: ['data:write'], purposes: ['order_fulfilment'] },
      });
      assert.equal(created.statusCode, 201, created.body);
      const byKey = await app.http.inject({ method: 'POST', url: '/test/data', headers: { authorization: `Bearer ${created.json().key}` } });
      assert.equal(byKey.statusCode, 200);
      assert.equal(byKey.json().actor.type, 'api_key');
    });

    test('sessions expire when idle and at their absolute end: 401 session_expired, cookie cleared', async () => {
      const session = await signIn();
      const me = () => app.http.inject({ url: '/v1/auth/me', cookies: { [SESSION_COOKIE]: session.token } });
      app.clock.advance(SESSION_IDLE_MS - 60_000);
      assert.equal((await me()).statusCode, 200);
      app.clock.advance(SESSION_IDLE_MS);
      const expired = await me();
      assert.equal(expired.statusCode, 401);
      assert.equal(expired.json().code, 'session_expired');
      const cleared = sessionCookie(expired)!;
      assert.equal(cleared.value, '');
      assert.ok(cleared.expires! <= new Date());

      const long = await signIn();
      for (let elapsed = 0; elapsed < SESSION_ABSOLUTE_MS; elapsed += 25 * 60_000) {
        app.clock.advance(25 * 60_000);
        const response = await app.http.inject({ url: '/v1/auth/me', cookies: { [SESSION_COOKIE]: long.token } });
        if (elapsed + 25 * 60_000 < SESSION_ABSOLUTE_MS) assert.equal(response.statusCode, 200);
        else assert.equal(response.json().code, 'session_expired');
      }
    });

    test('logout revokes the session and clears the cookie', async () => {
      const session = await signIn();
      const withoutToken = await app.http.inject({ method: 'POST', url: '/v1/auth/logout', cookies: { [SESSION_COOKIE]: session.token } });
      assert.equal(withoutToken.json().code, 'csrf_failed', 'a forged sign-out is refused too');
      const response = await app.http.inject({ method: 'POST', url: '/v1/auth/logout', cookies: { [SESSION_COOKIE]: session.token }, headers: { [CSRF_HEADER]: session.csrfToken } });
      assert.equal(response.statusCode, 204);
      assert.equal(sessionCookie(response)!.value, '');
      assert.equal(app.audit.events.at(-1)!.action, 'staff.logout');
      const after = await app.http.inject({ url: '/v1/auth/me', cookies: { [SESSION_COOKIE]: session.token } });
      assert.equal(after.statusCode, 401);
      assert.equal(after.json().code, 'unauthenticated');
    });

    test('API keys over HTTP: the key is shown once, lists hold no secret, revoked and expired keys get precise 401s', async () => {
      const owner = await signIn();
      const asOwner = { cookies: { [SESSION_COOKIE]: owner.token }, headers: { [CSRF_HEADER]: owner.csrfToken } };
      const expiresAt = new Date(app.clock.now().getTime() + 60 * 60_000).toISOString();
      const created = await app.http.inject({ method: 'POST', url: '/v1/api-keys', ...asOwner, payload: { name: 'reports', permissions: ['data:read'], purposes: 'all', expiresAt } });
      assert.equal(created.statusCode, 201);
      const { key, apiKey } = created.json();
      assert.match(key, /^pk_/);
      assert.equal(apiKey.expiresAt, expiresAt);
      assert.equal(created.headers['cache-control'], 'no-store');

      const list = await app.http.inject({ url: '/v1/api-keys', ...asOwner });
      assert.equal(list.statusCode, 200);
      assert.ok(list.json().items.some((item: { id: string }) => item.id === apiKey.id));
      assert.ok(!list.body.includes(key.slice(11)));
      const rows = JSON.stringify(await app.database.db.selectFrom('api_keys').selectAll().execute());
      assert.ok(!rows.includes(key.slice(3)), 'the table never holds the secret');

      const use = () => app.http.inject({ url: '/test/data', headers: { authorization: `Bearer ${key}` } });
      assert.equal((await use()).statusCode, 200);
      const me = await app.http.inject({ url: '/v1/auth/me', headers: { authorization: `Bearer ${key}` } });
      assert.deepEqual(me.json().apiKey, { id: apiKey.id, name: 'reports', prefix: key.slice(0, 11), purposes: 'all' });
      assert.equal((await app.http.inject({ url: '/v1/staff', headers: { authorization: `Bearer ${key}` } })).json().code, 'forbidden');

      app.clock.advance(60 * 60_000);
      const expired = await use();
      assert.equal(expired.statusCode, 401);
      assert.equal(expired.json().code, 'api_key_expired');

      // The owner's session idled out during the hour; sign in again.
      const fresh = await signIn();
      const asFresh = { cookies: { [SESSION_COOKIE]: fresh.token }, headers: { [CSRF_HEADER]: fresh.csrfToken } };
      const second = (await app.http.inject({ method: 'POST', url: '/v1/api-keys', ...asFresh, payload: { name: 'x', permissions: ['data:read'], purposes: 'all' } })).json();
      const revoked = await app.http.inject({ method: 'DELETE', url: `/v1/api-keys/${second.apiKey.id}`, ...asFresh });
      assert.equal(revoked.statusCode, 200);
      assert.equal(revoked.json().status, 'revoked');
      const refused = await app.http.inject({ url: '/test/data', headers: { authorization: `Bearer ${second.key}` } });
      assert.equal(refused.statusCode, 401);
      assert.equal(refused.json().code, 'api_key_revoked');
      assert.match(String(refused.headers['www-authenticate']), /^Bearer/);
    });

    test('a kept-alive connection reusing its key: revocation here or elsewhere, expiry and another token each end it as they would a new call', async () => {
      const owner: Actor = { type: 'staff', id: 'stf_test', role: 'owner' };
      const expiresAt = new Date(app.clock.now().getTime() + 30 * 60_000).toISOString();
      const first = await app.staff.createApiKey(owner, { name: 'kept', permissions: ['data:read'], purposes: 'all' });
      const second = await app.staff.createApiKey(owner, { name: 'elsewhere', permissions: ['data:read'], purposes: 'all' });
      const third = await app.staff.createApiKey(owner, { name: 'expiring', permissions: ['data:read'], purposes: 'all', expiresAt });
      const base = await app.http.listen({ port: 0, host: '127.0.0.1' });
      // One connection, kept alive: every call after the first goes over the same socket.
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const call = (key: string) =>
        new Promise<{ status: number; code?: string; reused: boolean }>((resolve, reject) => {
          const request = http.get(`${base}/test/data`, { agent, headers: { authorization: `Bearer ${key}` } }, (response) => {
            let body = '';
            response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
            response.on('end', () => resolve({ status: response.statusCode!, code: (JSON.parse(body) as { code?: string }).code, reused: request.reusedSocket }));
          });
          request.on('error', reject);
        });
      try {
        assert.equal((await call(first.key)).status, 200);
        assert.deepEqual(await call(first.key), { status: 200, code: undefined, reused: true });
        // Another token on the same connection is its own key, even one character apart.
        assert.deepEqual(await call(`${first.key.slice(0, -1)}${first.key.endsWith('A') ? 'B' : 'A'}`), { status: 401, code: 'unauthenticated', reused: true });
        assert.equal((await call(first.key)).status, 200);
        await app.staff.revokeApiKey(owner, first.apiKey.id);
        assert.deepEqual(await call(first.key), { status: 401, code: 'api_key_revoked', reused: true });

        assert.equal((await call(second.key)).status, 200);
        // Another process revokes it: like the cache, the connection holds it for the cache's second at most.
        const other = new StaffService(app.database, app.audit, app.clock, { secret: () => Buffer.alloc(32, 7) });
        await other.revokeApiKey(owner, second.apiKey.id);
        assert.equal((await call(second.key)).status, 200);
        app.clock.advance(API_KEY_CACHE_MS);
        assert.deepEqual(await call(second.key), { status: 401, code: 'api_key_revoked', reused: true });

        assert.equal((await call(third.key)).status, 200);
        app.clock.advance(30 * 60_000);
        assert.deepEqual(await call(third.key), { status: 401, code: 'api_key_expired', reused: true });
      } finally {
        agent.destroy();
      }
    });

    test('staff management over HTTP: add, list, change a role; bad input gets precise problems that echo nothing', async () => {
      const owner = await signIn();
      const as = (method: 'POST' | 'PATCH' | 'GET', url: string, payload?: unknown, headers: Record<string, string> = {}) =>
        app.http.inject({ method, url, cookies: { [SESSION_COOKIE]: owner.token }, headers: { [CSRF_HEADER]: owner.csrfToken, ...headers }, ...(payload === undefined ? {} : { payload: payload as string }) });

      const added = await as('POST', '/v1/staff', { email: 'Dev@Example.com', name: 'Dee', role: 'developer', password: PASSWORD });
      assert.equal(added.statusCode, 201);
      assert.equal(added.json().email, 'dev@example.com');
      assert.equal(added.json().password_hash, undefined);
      assert.ok(!added.body.includes('argon2'));
      const list = await as('GET', '/v1/staff');
      assert.ok(list.json().items.length >= 3);
      assert.ok(!list.body.includes('argon2'));
      const changed = await as('PATCH', `/v1/staff/${added.json().id}`, { role: 'auditor' });
      assert.equal(changed.json().role, 'auditor');

      const secretPassword = 'Sup3r secret passphrase!';
      const cases: Array<[string, number, string, unknown, Record<string, string>?]> = [
        ['malformed JSON', 400, 'malformed_body', '{"email": "a@b.co", "password": ', { 'content-type': 'application/json' }],
        ['unknown field', 400, 'validation_failed', { email: 'new@example.com', name: 'N', role: 'support', password: secretPassword, admin: true }],
        ['invalid email', 400, 'validation_failed', { email: 'new-at-example.com', name: 'N', role: 'support', password: secretPassword }],
        ['wrong role', 400, 'validation_failed', { email: 'new@example.com', name: 'N', role: 'superuser', password: secretPassword }],
        ['weak password', 422, 'weak_password', { email: 'new@example.com', name: 'N', role: 'support', password: 'new@example.com' }],
        ['taken email', 409, 'staff_email_taken', { email: OWNER_EMAIL, name: 'N', role: 'support', password: secretPassword }],
        ['oversized body', 413, 'payload_too_large', { email: 'new@example.com', name: 'N', role: 'support', password: 'x'.repeat(2_000_000) }],
      ];
      for (const [label, status, code, payload, headers] of cases) {
        const response = await as('POST', '/v1/staff', typeof payload === 'string' ? payload : JSON.stringify(payload), { 'content-type': 'application/json', ...headers });
        assert.equal(response.statusCode, status, `${label}: ${response.body}`);
        assert.equal(response.json().code, code, label);
        assert.doesNotMatch(response.body, /new@example|new-at-example|owner@example|Sup3r|x{20}/, `${label} echoes nothing`);
      }
      const badPatch = await as('PATCH', `/v1/staff/${added.json().id}`, { role: 'god' });
      assert.equal(badPatch.json().code, 'validation_failed');
      const notFound = await as('PATCH', '/v1/staff/stf_00000000000000000000000000', { role: 'auditor' });
      assert.equal(notFound.json().code, 'staff_not_found');
      const badLogin = await app.http.inject({ method: 'POST', url: '/v1/auth/login', payload: { email: OWNER_EMAIL, password: PASSWORD, remember: true } });
      assert.equal(badLogin.json().code, 'validation_failed');
      assert.doesNotMatch(badLogin.body, /owner@|passphrase/);
    });

    test('the logs never hold an email address, a password or a token', () => {
      const logs = app.logLines.join('\n');
      assert.ok(app.logLines.length > 0);
      assert.doesNotMatch(logs, /@example\.com/);
      assert.ok(!logs.includes(PASSWORD));
      assert.doesNotMatch(logs, /pk_[A-Za-z0-9_-]{20}/);
    });

    test('audit events hold no email address and no password', () => {
      const text = JSON.stringify(app.audit.events);
      for (const action of ['staff.login', 'staff.login_failed', 'staff.logout', 'staff.created', 'staff.role_changed', 'api_key.created', 'api_key.revoked']) {
        assert.ok(app.audit.actions().includes(action), action);
      }
      assert.doesNotMatch(text, /@/);
      assert.ok(!text.includes(PASSWORD));
    });

    test('the OpenAPI document describes the auth, staff and API-key routes', () => {
      const document = app.http.swagger() as { paths: Record<string, Record<string, { tags?: string[]; requestBody?: unknown }>> };
      assert.deepEqual(document.paths['/v1/auth/login']?.post?.tags, ['auth']);
      assert.deepEqual(document.paths['/v1/staff']?.post?.tags, ['staff']);
      assert.deepEqual(document.paths['/v1/api-keys/{id}']?.delete?.tags, ['api-keys']);
      assert.ok(document.paths['/v1/api-keys']?.post?.requestBody);
    });

    test('every route enforces its access rule (the route table)', async () => {
      const cases = await authorisationCases(app.http, app.staff);
      const urls = new Set(cases.map((item) => item.url));
      for (const url of ['/v1/staff', '/v1/staff/:id', '/v1/api-keys', '/v1/api-keys/:id', '/v1/auth/me', '/v1/auth/logout', '/test/data']) assert.ok(urls.has(url), url);
      assert.ok(cases.some((item) => item.expected === 'forbidden'));
      assert.ok(!urls.has('/v1/auth/login'), 'public routes are not in the table');
    });
  });
}
