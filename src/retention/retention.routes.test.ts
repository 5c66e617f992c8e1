import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createTestApp, type TestApp } from '../../test/support/app.js';
import { testDialects } from '../../test/support/databases.js';
import { loadConfig } from '../core/config.js';
import { PledgeError } from '../core/errors.js';
import { createLogger } from '../core/logger.js';
import { startRetentionSchedule } from './retention.scheduler.js';

const system = { type: 'system' as const, id: 'test' };

test('PLEDGE_RETENTION_INTERVAL: minutes, 60 by default, 0 turns sweeps off, anything else refused', () => {
  assert.equal(loadConfig({}).config.retentionIntervalMinutes, 60);
  assert.equal(loadConfig({ PLEDGE_RETENTION_INTERVAL: '0' }).config.retentionIntervalMinutes, 0);
  assert.equal(loadConfig({ PLEDGE_RETENTION_INTERVAL: ' 15 ' }).config.retentionIntervalMinutes, 15);
  assert.deepEqual(loadConfig({ PLEDGE_RETENTION_INTERVAL: '15' }).warnings, []);
  for (const bad of ['1h', '-5', '1.5', '', '999999']) {
    assert.throws(() => loadConfig({ PLEDGE_RETENTION_INTERVAL: bad }), (error: unknown) => error instanceof PledgeError && error.code === 'config_invalid' && error.message.includes('PLEDGE_RETENTION_INTERVAL'), bad);
  }
});

for (const dialect of testDialects()) {
  describe(`retention over HTTP on ${dialect}`, () => {
    let testApp: TestApp;
    let managerKey: string;
    let readerKey: string;
    before(async () => {
      testApp = await createTestApp(dialect);
      managerKey = (await testApp.app.staff.createApiKey(system, { name: 'privacy', permissions: ['retention:read', 'retention:manage'], purposes: 'all' })).key;
      readerKey = (await testApp.app.staff.createApiKey(system, { name: 'auditor', permissions: ['retention:read'], purposes: 'all' })).key;
    });
    after(() => testApp.cleanup());

    const call = (method: 'GET' | 'POST', url: string, options: { key?: string; body?: unknown } = {}) =>
      testApp.app.http.inject({ method, url, headers: { authorization: `Bearer ${options.key ?? managerKey}` }, ...(options.body !== undefined ? { payload: options.body as object } : {}) });

    test('preview, run, and holds: place, list, read, release', async () => {
      const subject = await testApp.app.subjects.create(system, { kinds: ['visitor'], data: { purpose: 'analytics', source: 'automatic', fields: { 'user.device.ip_address': '203.0.113.9' } } });

      const preview = await call('GET', '/v1/retention/preview', { key: readerKey });
      assert.equal(preview.statusCode, 200, preview.body);
      assert.equal(preview.json().dryRun, true);
      assert.ok(preview.json().outcomes.some((outcome: { rule: string; category: string }) => outcome.rule === 'browsing_logs' && outcome.category === 'user.device.ip_address'));
      assert.ok(!preview.body.includes('203.0.113.9'));

      assert.equal((await call('POST', '/v1/retention/run', { key: readerKey, body: {} })).statusCode, 403, 'running needs retention:manage');
      assert.equal((await call('POST', '/v1/retention/run')).statusCode, 400, 'a body is required: an empty request does not start a sweep');
      const dry = await call('POST', '/v1/retention/run', { body: { dryRun: true } });
      assert.equal(dry.statusCode, 200, dry.body);
      assert.equal(dry.json().dryRun, true);
      const run = await call('POST', '/v1/retention/run', { body: {} });
      assert.equal(run.statusCode, 200, run.body);
      assert.equal(run.json().dryRun, false);
      assert.equal(run.json().totals.rows, 0, 'nothing is old enough yet');

      const placed = await call('POST', '/v1/retention/holds', { body: { subjectId: subject.id, reason: 'Litigation 2026-4', expiresAt: '2099-01-01T00:00:00Z' } });
      assert.equal(placed.statusCode, 201, placed.body);
      const hold = placed.json();
      assert.match(hold.id, /^hld_/);
      assert.equal(hold.active, true);
      assert.equal(hold.expiresAt, '2099-01-01T00:00:00.000Z');
      assert.equal(await testApp.app.retention.isHeld(subject.id), true);

      const listed = await call('GET', `/v1/retention/holds?subjectId=${subject.id}`, { key: readerKey });
      assert.deepEqual(listed.json().holds.map((item: { id: string }) => item.id), [hold.id]);
      assert.equal((await call('GET', `/v1/retention/holds/${hold.id}`, { key: readerKey })).json().reason, 'Litigation 2026-4');

      const released = await call('POST', `/v1/retention/holds/${hold.id}/release`);
      assert.equal(released.statusCode, 200, released.body);
      assert.equal(released.json().active, false);
      assert.equal((await call('GET', `/v1/retention/holds?subjectId=${subject.id}`)).json().holds.length, 0);
      assert.equal((await call('GET', `/v1/retention/holds?subjectId=${subject.id}&all=true`)).json().holds.length, 1);
    });

    test('precise problems: unknown hold, erased or unknown subject, past expiry, empty reason', async () => {
      const missing = await call('POST', '/v1/retention/holds/hld_0000000000000000000000000a/release');
      assert.equal(missing.statusCode, 404);
      assert.equal(missing.json().code, 'hold_not_found');
      const unknown = await call('POST', '/v1/retention/holds', { body: { subjectId: 'sub_0000000000000000000000000a', reason: 'x' } });
      assert.equal(unknown.json().code, 'subject_not_found');
      const subject = await testApp.app.subjects.create(system, { kinds: ['visitor'] });
      const past = await call('POST', '/v1/retention/holds', { body: { subjectId: subject.id, reason: 'x', expiresAt: '2001-01-01T00:00:00Z' } });
      assert.equal(past.statusCode, 422);
      assert.equal(past.json().code, 'hold_invalid');
      const blank = await call('POST', '/v1/retention/holds', { body: { subjectId: subject.id, reason: '   ' } });
      assert.equal(blank.json().code, 'hold_invalid');
      await testApp.app.subjects.erase(system, subject.id);
      const erased = await call('POST', '/v1/retention/holds', { body: { subjectId: subject.id, reason: 'too late' } });
      assert.equal(erased.json().code, 'subject_erased');
    });

    test('the schedule sweeps on its interval and stops cleanly; interval 0 never sweeps', async () => {
      const before = (await testApp.app.audit.list({ action: 'retention.swept' })).entries.length;
      const idle = startRetentionSchedule(testApp.app.retention, 0, createLogger('silent'));
      await new Promise((resolve) => setTimeout(resolve, 50));
      await idle.stop();
      assert.equal((await testApp.app.audit.list({ action: 'retention.swept' })).entries.length, before);

      const schedule = startRetentionSchedule(testApp.app.retention, 20, createLogger('silent'));
      const deadline = Date.now() + 10_000;
      while ((await testApp.app.audit.list({ action: 'retention.swept' })).entries.length < before + 2 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await schedule.stop();
      const swept = (await testApp.app.audit.list({ action: 'retention.swept' })).entries;
      assert.ok(swept.length >= before + 2, 'two scheduled sweeps ran');
      assert.ok(swept.slice(before).every((entry) => entry.actor.type === 'system' && entry.actor.id === 'retention'));
      const count = swept.length;
      await new Promise((resolve) => setTimeout(resolve, 60));
      assert.equal((await testApp.app.audit.list({ action: 'retention.swept' })).entries.length, count, 'no sweep after stop');
    });
  });
}
