import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { hashToken } from '../core/crypto.js';
import { PledgeError } from '../core/errors.js';
import { createTestApp, type TestApp } from '../../test/support/app.js';
import { testDialects } from '../../test/support/databases.js';
import type { Actor } from './permissions.js';
import { ARGON2_PARAMS, hashPassword, needsRehash, parsePhc, passwordProblems, verifyPassword } from './staff.passwords.js';
import { AttemptLimiter } from './staff.limiter.js';
import { API_KEY_CACHE_MS, LOCKOUT_MS, SESSION_ABSOLUTE_MS, SESSION_IDLE_MS, StaffService } from './staff.service.js';
import { createStaffTestApp, type StaffTestApp } from './staff.test-support.js';
import { manualClock } from '../core/clock.js';

const PASSWORD = 'correct horse battery';
const OWNER: Actor = { type: 'system', id: 'test' };

function rejectsWith(code: string) {
  return (error: unknown) => {
    assert.ok(error instanceof PledgeError, `expected a PledgeError, got ${String(error)}`);
    assert.equal(error.code, code);
    return true;
  };
}

/** Every text value stored in the staff tables, to search for secrets that must not be there. */
async function allStoredText(app: StaffTestApp): Promise<string> {
  const rows = [
    ...(await app.database.db.selectFrom('staff_users').selectAll().execute()),
    ...(await app.database.db.selectFrom('staff_sessions').selectAll().execute()),
    ...(await app.database.db.selectFrom('api_keys').selectAll().execute()),
  ];
  return JSON.stringify(rows);
}

test('password policy: length, email, common passwords, one repeated character', () => {
  assert.deepEqual(passwordProblems('short', 'a@b.co'), ['too_short']);
  assert.deepEqual(passwordProblems('ana.lopez@example.com', 'Ana.Lopez@example.com'), ['same_as_email']);
  assert.deepEqual(passwordProblems('Password1234', 'a@b.co'), ['common']);
  assert.deepEqual(passwordProblems('aaaaaaaaaaaaaa', 'a@b.co'), ['repeated']);
  assert.deepEqual(passwordProblems('x'.repeat(1025)).includes('too_long'), true);
  assert.deepEqual(passwordProblems(PASSWORD, 'a@b.co'), []);
  // Length counts characters, not UTF-16 units: 11 emoji are too short.
  assert.deepEqual(passwordProblems('🔑'.repeat(6) + '🗝'.repeat(5)), ['too_short']);
});

test('PHC parsing and rehash detection', () => {
  assert.deepEqual(parsePhc('$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g'), { algorithm: 'argon2id', version: 19, memoryCost: 19456, timeCost: 2, parallelism: 1 });
  assert.equal(needsRehash('$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g'), false);
  assert.equal(needsRehash('$argon2id$v=19$m=4096,t=3,p=1$c2FsdHNhbHQ$aGFzaGhhc2g'), true);
  assert.equal(needsRehash('not a hash'), true);
});

test('the attempt limiter counts per key in fixed windows and forgets old keys', () => {
  const clock = manualClock();
  const limiter = new AttemptLimiter(clock, 3, 60_000, 4);
  assert.deepEqual([1, 2, 3, 4].map(() => limiter.hit('a')), [0, 0, 0, 60]);
  assert.equal(limiter.hit('b'), 0);
  clock.advance(30_000);
  assert.equal(limiter.hit('a'), 30);
  clock.advance(30_000);
  assert.equal(limiter.hit('a'), 0);
  for (const key of ['c', 'd', 'e', 'f', 'g']) limiter.hit(key);
  assert.ok((limiter as unknown as { windows: Map<string, unknown> }).windows.size <= 4);
});

for (const dialect of testDialects()) {
  describe(`staff service on ${dialect}`, () => {
    let app: StaffTestApp;
    before(async () => {
      app = await createStaffTestApp(dialect);
    });
    after(() => app.cleanup());

    test('addStaff stores an argon2id hash with OWASP parameters and the email lowercased', async () => {
      const added = await app.staff.addStaff({ email: '  Ana.Owner@Example.com ', name: 'Ana', role: 'owner', password: PASSWORD }, OWNER);
      assert.match(added.id, /^stf_[0-9a-z]{26}$/);
      assert.equal(added.email, 'ana.owner@example.com');
      const row = await app.database.db.selectFrom('staff_users').selectAll().where('id', '=', added.id).executeTakeFirstOrThrow();
      const phc = parsePhc(row.password_hash);
      assert.deepEqual(phc, { algorithm: 'argon2id', version: 19, memoryCost: 19456, timeCost: 2, parallelism: 1 });
      assert.equal(ARGON2_PARAMS.memoryCost, 19456);
      assert.ok(!(await allStoredText(app)).includes(PASSWORD));
      const event = app.audit.events.at(-1)!;
      assert.deepEqual(event, { actor: OWNER, action: 'staff.created', target: { type: 'staff', id: added.id }, details: { role: 'owner' } });
    });

    test('addStaff refuses weak passwords, bad input and a second account with the same email', async () => {
      await assert.rejects(app.staff.addStaff({ email: 'bo@example.com', name: 'Bo', role: 'support', password: 'short' }), (error) => {
        rejectsWith('weak_password')(error);
        assert.deepEqual((error as PledgeError).details, { reasons: ['too_short'] });
        assert.ok(!(error as PledgeError).message.includes('short'.padEnd(6, '"')));
        return true;
      });
      await assert.rejects(app.staff.addStaff({ email: 'bo@example.com', name: 'Bo', role: 'support', password: 'bo@example.com' }), rejectsWith('weak_password'));
      await assert.rejects(app.staff.addStaff({ email: 'bo@example.com', name: 'Bo', role: 'support', password: 'password1234' }), rejectsWith('weak_password'));
      await assert.rejects(app.staff.addStaff({ email: 'not-an-email', name: 'Bo', role: 'support', password: PASSWORD }), (error) => {
        rejectsWith('validation_failed')(error);
        assert.ok(!(error as PledgeError).message.includes('not-an-email'));
        return true;
      });
      await assert.rejects(app.staff.addStaff({ email: 'bo@example.com', name: 'Bo', role: 'superuser', password: PASSWORD }), rejectsWith('validation_failed'));
      await assert.rejects(app.staff.addStaff({ email: 'ANA.OWNER@example.com', name: 'Ana 2', role: 'support', password: PASSWORD }), (error) => {
        rejectsWith('staff_email_taken')(error);
        assert.ok(!(error as PledgeError).message.toLowerCase().includes('ana.owner'));
        return true;
      });
    });

    test('login opens a session stored by hash; wrong passwords and unknown emails fail alike', async () => {
      app.audit.events.length = 0;
      const result = await app.staff.login('ana.owner@example.com', PASSWORD, { ip: '10.0.0.1' });
      assert.equal(result.staff.role, 'owner');
      assert.equal(Buffer.from(result.token, 'base64url').length, 32);
      const session = await app.database.db.selectFrom('staff_sessions').selectAll().executeTakeFirstOrThrow();
      assert.equal(session.id, hashToken(result.token));
      assert.equal(session.expires_at, new Date(app.clock.now().getTime() + SESSION_ABSOLUTE_MS).toISOString());
      assert.ok(!(await allStoredText(app)).includes(result.token));

      const failure = (email: string) =>
        app.staff.login(email, 'wrong password!', { ip: '10.0.0.1' }).then(
          () => assert.fail('signed in with a wrong password'),
          (error: unknown) => error as PledgeError,
        );
      const wrong = await failure('ana.owner@example.com');
      const unknown = await failure('nobody@example.com');
      assert.equal(wrong.code, 'invalid_credentials');
      assert.equal(unknown.code, 'invalid_credentials');
      assert.equal(wrong.message, unknown.message);

      assert.deepEqual(app.audit.actions(), ['staff.login', 'staff.login_failed', 'staff.login_failed']);
      assert.deepEqual(app.audit.events[0]!.actor, { type: 'staff', id: result.staff.id, role: 'owner' });
      assert.deepEqual(app.audit.events[1]!.target, { type: 'staff', id: result.staff.id });
      assert.deepEqual(app.audit.events[1]!.details, { reason: 'wrong_password', failures: 1 });
      assert.deepEqual(app.audit.events[2]!.target, { type: 'staff', id: 'unknown' });
      assert.deepEqual(app.audit.events[2]!.details, { reason: 'unknown_account' });
    });

    test('an unknown email costs the same argon2 work as a wrong password', async () => {
      const elapsed = async (work: () => Promise<unknown>) => {
        const start = process.hrtime.bigint();
        await work();
        return Number(process.hrtime.bigint() - start) / 1e6;
      };
      await app.staff.login('nobody@example.com', 'not the password', { ip: 'timing-warm-up' }).catch(() => undefined);
      const phc = await hashPassword('some other password');
      // Interleaved, and the fastest of each kept: the least disturbed by other work on the machine.
      const argon2: number[] = [];
      const unknown: number[] = [];
      for (let run = 0; run < 5; run++) {
        argon2.push(await elapsed(() => verifyPassword(phc, 'not the password')));
        unknown.push(await elapsed(() => app.staff.login(`nobody${run}@example.com`, 'not the password', { ip: `timing-${run}` }).catch(() => undefined)));
      }
      // Without the dummy hash an unknown email would answer after one indexed query (about a
      // millisecond); with it, after one argon2 verification like every known email.
      assert.ok(Math.min(...unknown) > Math.min(...argon2) * 0.6, `unknown email ${Math.min(...unknown).toFixed(1)} ms vs one argon2 verification ${Math.min(...argon2).toFixed(1)} ms`);
    });

    test('five wrong passwords lock the account for 15 minutes, even against the right password', async () => {
      const bo = await app.staff.addStaff({ email: 'bo@example.com', name: 'Bo', role: 'support', password: PASSWORD }, OWNER);
      app.audit.events.length = 0;
      for (let attempt = 1; attempt <= 5; attempt++) {
        await assert.rejects(app.staff.login('bo@example.com', `wrong password ${attempt}`, { ip: `lock-${attempt}` }), rejectsWith('invalid_credentials'));
      }
      assert.deepEqual(app.audit.events.at(-1)!.details, { reason: 'wrong_password', failures: 5, locked: true });
      assert.ok((await app.staff.getStaff(bo.id)).lockedUntil);
      await assert.rejects(app.staff.login('bo@example.com', PASSWORD, { ip: 'lock-right' }), rejectsWith('invalid_credentials'));
      assert.deepEqual(app.audit.events.at(-1)!.details, { reason: 'locked' });
      app.clock.advance(LOCKOUT_MS - 1000);
      await assert.rejects(app.staff.login('bo@example.com', PASSWORD, { ip: 'lock-right' }), rejectsWith('invalid_credentials'));
      app.clock.advance(1000);
      const result = await app.staff.login('bo@example.com', PASSWORD, { ip: 'lock-right' });
      assert.equal(result.staff.id, bo.id);
      assert.equal((await app.staff.getStaff(bo.id)).lockedUntil, null);
    });

    test('a staff manager can unlock a locked account', async () => {
      for (let attempt = 1; attempt <= 5; attempt++) await app.staff.login('bo@example.com', 'wrong password!', { ip: `unlock-${attempt}` }).catch(() => undefined);
      const bo = (await app.staff.listStaff()).find((staff) => staff.name === 'Bo')!;
      assert.ok(bo.lockedUntil);
      const unlocked = await app.staff.unlock(OWNER, bo.id);
      assert.equal(unlocked.lockedUntil, null);
      assert.equal(app.audit.events.at(-1)!.action, 'staff.unlocked');
      await app.staff.login('bo@example.com', PASSWORD, { ip: 'unlock-ok' });
    });

    test('sessions end after 30 idle minutes, and after 12 hours in any case', async () => {
      const idle = await app.staff.login('ana.owner@example.com', PASSWORD, { ip: 'session-1' });
      app.clock.advance(SESSION_IDLE_MS - 60_000);
      await app.staff.authenticateSession(idle.token);
      app.clock.advance(SESSION_IDLE_MS - 60_000);
      const again = await app.staff.authenticateSession(idle.token);
      assert.deepEqual(again.actor, { type: 'staff', id: idle.staff.id, role: 'owner' });
      app.clock.advance(SESSION_IDLE_MS);
      await assert.rejects(app.staff.authenticateSession(idle.token), rejectsWith('session_expired'));

      const absolute = await app.staff.login('ana.owner@example.com', PASSWORD, { ip: 'session-2' });
      for (let elapsed = 0; elapsed < SESSION_ABSOLUTE_MS - 20 * 60_000; elapsed += 20 * 60_000) {
        app.clock.advance(20 * 60_000);
        await app.staff.authenticateSession(absolute.token);
      }
      app.clock.advance(20 * 60_000);
      await assert.rejects(app.staff.authenticateSession(absolute.token), rejectsWith('session_expired'));
      await assert.rejects(app.staff.authenticateSession('not-a-session'), rejectsWith('unauthenticated'));
    });

    test('logout revokes the session and is recorded', async () => {
      const result = await app.staff.login('ana.owner@example.com', PASSWORD, { ip: 'logout' });
      await app.staff.logout(result.token);
      assert.equal(app.audit.events.at(-1)!.action, 'staff.logout');
      await assert.rejects(app.staff.authenticateSession(result.token), rejectsWith('unauthenticated'));
      const count = app.audit.events.length;
      await app.staff.logout(result.token);
      assert.equal(app.audit.events.length, count, 'a second logout records nothing');
    });

    test('changeRole is recorded; the last owner cannot be demoted', async () => {
      const ana = (await app.staff.listStaff()).find((staff) => staff.role === 'owner')!;
      await assert.rejects(app.staff.changeRole(OWNER, ana.id, 'auditor'), rejectsWith('last_owner'));
      const carl = await app.staff.addStaff({ email: 'carl@example.com', name: 'Carl', role: 'developer', password: PASSWORD }, OWNER);
      await app.staff.changeRole(OWNER, carl.id, 'owner');
      assert.deepEqual(app.audit.events.at(-1), { actor: OWNER, action: 'staff.role_changed', target: { type: 'staff', id: carl.id }, details: { from: 'developer', to: 'owner' } });
      const demoted = await app.staff.changeRole(OWNER, ana.id, 'privacy_officer');
      assert.equal(demoted.role, 'privacy_officer');
      // A session picks up the new role at once.
      const session = await app.staff.login('ana.owner@example.com', PASSWORD, { ip: 'role' });
      assert.equal((await app.staff.authenticateSession(session.token)).actor.role, 'privacy_officer');
      await app.staff.changeRole(OWNER, ana.id, 'owner');
      await assert.rejects(app.staff.changeRole(OWNER, 'stf_00000000000000000000000000', 'owner'), rejectsWith('staff_not_found'));
      await assert.rejects(app.staff.changeRole(OWNER, ana.id, 'root'), rejectsWith('validation_failed'));
      // An API key that may manage staff still cannot make anyone owner: it lacks the owner's other permissions.
      const keyActor: Actor = { type: 'api_key', id: 'key_test', permissions: ['staff:manage'], purposes: 'all' };
      await assert.rejects(app.staff.changeRole(keyActor, carl.id, 'owner'), rejectsWith('forbidden'));
      await assert.rejects(app.staff.addStaff({ email: 'eve@example.com', name: 'Eve', role: 'owner', password: PASSWORD }, keyActor), rejectsWith('forbidden'));
    });

    test('a key revoked by another process sharing the database is refused once the short key cache expires', async () => {
      const owner: Actor = { type: 'staff', id: 'stf_test', role: 'owner' };
      const { apiKey, key } = await app.staff.createApiKey(owner, { name: 'cached', permissions: ['data:read'], purposes: 'all' });
      assert.equal((await app.staff.authenticateApiKey(key)).id, apiKey.id);
      // Another `pledge serve` process: its own service (and cache) over the same database.
      const other = new StaffService(app.database, app.audit, app.clock, { secret: () => Buffer.alloc(32, 7) });
      await other.revokeApiKey(owner, apiKey.id);
      await assert.rejects(other.authenticateApiKey(key), rejectsWith('api_key_revoked'));
      app.clock.advance(API_KEY_CACHE_MS);
      await assert.rejects(app.staff.authenticateApiKey(key), rejectsWith('api_key_revoked'));
    });

    test('API keys: shown once, stored as a hash, revoked and expired keys refused precisely', async () => {
      const owner: Actor = { type: 'staff', id: 'stf_test', role: 'owner' };
      const { apiKey, key } = await app.staff.createApiKey(owner, { name: 'web shop', permissions: ['data:read', 'subjects:read'], purposes: ['order_fulfilment'] });
      assert.match(key, /^pk_[A-Za-z0-9_-]{43}$/);
      assert.equal(apiKey.prefix, key.slice(0, 11));
      assert.equal(apiKey.status, 'active');
      assert.deepEqual(app.audit.events.at(-1), {
        actor: owner,
        action: 'api_key.created',
        target: { type: 'api_key', id: apiKey.id },
        details: { permissions: ['data:read', 'subjects:read'], purposes: ['order_fulfilment'], expires_at: null },
      });
      const stored = await allStoredText(app);
      assert.ok(!stored.includes(key), 'the key is not stored');
      assert.ok(!stored.includes(key.slice(3)), 'nor its random part');
      const row = await app.database.db.selectFrom('api_keys').selectAll().where('id', '=', apiKey.id).executeTakeFirstOrThrow();
      assert.equal(row.secret_hash, hashToken(key));
      assert.ok(!JSON.stringify(await app.staff.listApiKeys()).includes(key.slice(11)));

      assert.deepEqual(await app.staff.authenticateApiKey(key), { type: 'api_key', id: apiKey.id, permissions: ['data:read', 'subjects:read'], purposes: ['order_fulfilment'] });
      await assert.rejects(app.staff.authenticateApiKey(`${key.slice(0, -1)}x`), rejectsWith('unauthenticated'));
      await assert.rejects(app.staff.authenticateApiKey('nonsense'), rejectsWith('unauthenticated'));

      const revoked = await app.staff.revokeApiKey(owner, apiKey.id);
      assert.equal(revoked.status, 'revoked');
      assert.equal(app.audit.events.at(-1)!.action, 'api_key.revoked');
      await assert.rejects(app.staff.authenticateApiKey(key), rejectsWith('api_key_revoked'));
      await assert.rejects(app.staff.revokeApiKey(owner, 'key_00000000000000000000000000'), rejectsWith('api_key_not_found'));

      const expiring = await app.staff.createApiKey(owner, { name: 'batch', permissions: ['subjects:read'], purposes: 'all', expiresAt: new Date(app.clock.now().getTime() + 3_600_000).toISOString() });
      assert.equal((await app.staff.authenticateApiKey(expiring.key)).purposes, 'all');
      app.clock.advance(3_600_000);
      await assert.rejects(app.staff.authenticateApiKey(expiring.key), rejectsWith('api_key_expired'));
      assert.equal((await app.staff.listApiKeys()).find((item) => item.id === expiring.apiKey.id)!.status, 'expired');
    });

    test('a key never gets a permission its creator lacks; input is checked', async () => {
      const developer: Actor = { type: 'staff', id: 'stf_dev', role: 'developer' };
      await assert.rejects(app.staff.createApiKey(developer, { name: 'x', permissions: ['data:read'], purposes: 'all' }), (error) => {
        rejectsWith('forbidden')(error);
        assert.equal((error as PledgeError).details?.permission, 'data:read');
        return true;
      });
      const { apiKey } = await app.staff.createApiKey(developer, { name: 'reader', permissions: ['subjects:read'], purposes: [] });
      assert.deepEqual(apiKey.permissions, ['subjects:read']);
      await assert.rejects(app.staff.createApiKey(developer, { name: 'x', permissions: ['root:all'], purposes: 'all' }), rejectsWith('validation_failed'));
      await assert.rejects(app.staff.createApiKey(developer, { name: 'x', permissions: [], purposes: 'all' }), rejectsWith('validation_failed'));
      await assert.rejects(app.staff.createApiKey(developer, { name: 'x', permissions: ['subjects:read'], purposes: 'all', expiresAt: '2000-01-01T00:00:00Z' }), rejectsWith('validation_failed'));
    });

    test('the per-address sign-in limit answers rate_limited with the seconds to wait', async () => {
      for (let attempt = 1; attempt <= 10; attempt++) await app.staff.login('nobody@example.com', 'x', { ip: '192.0.2.99' }).catch(() => undefined);
      await assert.rejects(app.staff.login('ana.owner@example.com', PASSWORD, { ip: '192.0.2.99' }), (error) => {
        rejectsWith('rate_limited')(error);
        assert.ok(Number((error as PledgeError).details?.retryAfter) > 0);
        return true;
      });
      await app.staff.login('ana.owner@example.com', PASSWORD, { ip: '192.0.2.100' });
    });

    test('an outdated password hash is replaced at the next sign-in', async () => {
      const carl = (await app.staff.listStaff()).find((staff) => staff.name === 'Carl')!;
      // Store a hash made with weaker parameters (as an older version would have).
      const { hash } = await import('@node-rs/argon2');
      const weak = await hash(PASSWORD, { algorithm: 2, memoryCost: 4096, timeCost: 3, parallelism: 1 });
      assert.ok(needsRehash(weak));
      await sql`update staff_users set password_hash = ${weak} where id = ${carl.id}`.execute(app.database.db);
      await app.staff.login('carl@example.com', PASSWORD, { ip: 'rehash' });
      const row = await app.database.db.selectFrom('staff_users').select('password_hash').where('id', '=', carl.id).executeTakeFirstOrThrow();
      assert.equal(needsRehash(row.password_hash), false);
    });

    test('a disabled account cannot sign in and its sessions end; the last owner cannot be disabled', async () => {
      const dee = await app.staff.addStaff({ email: 'dee@example.com', name: 'Dee', role: 'auditor', password: PASSWORD }, OWNER);
      const session = await app.staff.login('dee@example.com', PASSWORD, { ip: 'disable-1' });
      const disabled = await app.staff.disableStaff(OWNER, dee.id);
      assert.ok(disabled.disabledAt);
      assert.deepEqual(app.audit.events.at(-1), { actor: OWNER, action: 'staff.disabled', target: { type: 'staff', id: dee.id }, details: { sessions_revoked: 1 } });
      await assert.rejects(app.staff.authenticateSession(session.token), rejectsWith('unauthenticated'));
      await assert.rejects(app.staff.login('dee@example.com', PASSWORD, { ip: 'disable-2' }), rejectsWith('invalid_credentials'));
      assert.deepEqual(app.audit.events.at(-1)!.details, { reason: 'disabled' });

      const owners = (await app.staff.listStaff()).filter((staff) => staff.role === 'owner' && staff.disabledAt === null);
      for (const owner of owners.slice(1)) await app.staff.disableStaff(OWNER, owner.id);
      await assert.rejects(app.staff.disableStaff(OWNER, owners[0]!.id), rejectsWith('last_owner'));
    });

    test('no audit event holds an email address or a password', () => {
      const text = JSON.stringify(app.audit.events);
      assert.ok(app.audit.events.length > 10);
      assert.doesNotMatch(text, /@/);
      assert.ok(!text.includes(PASSWORD));
      assert.ok(!text.includes('wrong password'));
    });
  });
}

for (const dialect of testDialects()) {
  describe(`API keys against the policy on ${dialect}`, () => {
    let testApp: TestApp;
    let key: string;
    before(async () => {
      testApp = await createTestApp(dialect);
      key = (await testApp.app.staff.createApiKey(OWNER, { name: 'keys', permissions: ['keys:manage', 'subjects:read'], purposes: 'all' })).key;
    });
    after(() => testApp.cleanup());
    const create = (body: unknown) => testApp.app.http.inject({ method: 'POST', url: '/v1/api-keys', headers: { authorization: `Bearer ${key}` }, payload: body as object });

    test('a key scoped to a purpose the policy does not declare is refused (422 unknown_purpose naming it), and nothing is stored', async () => {
      const before = (await testApp.app.staff.listApiKeys()).length;
      const response = await create({ name: 'shop', permissions: ['subjects:read'], purposes: ['marketing', 'nope'] });
      assert.equal(response.statusCode, 422, response.body);
      const body = response.json();
      assert.equal(body.code, 'unknown_purpose');
      assert.equal(body.purpose, 'nope');
      assert.match(body.detail, /^purpose "nope" is not declared in the policy; it declares .*\bmarketing\b/);
      assert.equal((await testApp.app.staff.listApiKeys()).length, before);
      assert.equal((await create({ name: 'shop', permissions: ['subjects:read'], purposes: ['marketing', 'order_fulfilment'] })).statusCode, 201);
      assert.equal((await create({ name: 'shop', permissions: ['subjects:read'], purposes: 'all' })).statusCode, 201);
      await assert.rejects(testApp.app.staff.createApiKey(OWNER, { name: 'x', permissions: ['subjects:read'], purposes: ['analytic'] }), rejectsWith('unknown_purpose'));
    });

    test('an unknown permission is refused by the schema, with the permissions it could have been', async () => {
      const response = await create({ name: 'shop', permissions: ['subjects:read', 'root:all'], purposes: 'all' });
      assert.equal(response.statusCode, 400, response.body);
      const [issue] = response.json().errors;
      assert.equal(issue.location, 'body/permissions/1');
      assert.match(issue.message, /^must be one of "[a-z_]+:[a-z_]+"/);
    });
  });
}
