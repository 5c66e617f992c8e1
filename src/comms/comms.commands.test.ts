import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { after, test } from 'node:test';
import { loadConfig } from '../core/config.js';
import { createLogger } from '../core/logger.js';
import { loadSqlite } from '../core/sqlite.js';
import { createEngine } from '../engine.js';
import { runPledge } from '../../test/support/cli.js';
import { temporaryDirectory } from '../../test/support/databases.js';
import { dayAfter, writeMailPolicies } from './comms.test-support.js';

const directory = temporaryDirectory('pledge-publish-');
after(() => directory.remove());

test('pledge policy publish stores a version once, with its effective date, and schedules notices for a material change', () => {
  const policies = writeMailPolicies(directory.path);
  const env = { PLEDGE_MASTER_KEY: randomBytes(32).toString('hex'), PLEDGE_DATA_DIR: path.join(directory.path, 'data'), PLEDGE_POLICY: policies.v1 };
  // The file's own effective date lies in the past: a material change cannot apply before its 30 days' notice.
  const early = runPledge(['policy', 'publish', policies.v2], { env, cwd: directory.path });
  assert.equal(early.status, 1, early.stdout);
  assert.match(early.stderr, new RegExp(`30 days of advance notice; the earliest effective date is ${dayAfter(new Date(), 30)}`));
  for (const badDate of ['2026-13-45', '2027-02-30']) {
    const refused = runPledge(['policy', 'publish', policies.v2, '--effective', badDate], { env, cwd: directory.path });
    assert.equal(refused.status, 2);
    assert.match(refused.stderr, /--effective must be a calendar date/);
  }
  const effective = dayAfter(new Date(), 45);
  const published = runPledge(['policy', 'publish', policies.v2, '--effective', effective], { env, cwd: directory.path });
  assert.equal(published.status, 0, published.stderr);
  assert.match(published.stdout, new RegExp(`published policy version 2\\.0 as pol_[0-9a-z]{26}, effective ${effective}`));
  assert.match(published.stdout, /1 material/);
  assert.match(published.stdout, /notices to registered people are scheduled/);
  assert.match(published.stdout, /restart them with .*v2\.yaml on /);
  const again = runPledge(['policy', 'publish', policies.v2, '--effective', dayAfter(new Date(), 60)], { env, cwd: directory.path });
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stdout, new RegExp(`already published, effective ${effective}; nothing changed \\(a published version keeps its effective date`));

  // Commands started with another file, or with none (the demo policy), put nothing on record.
  for (const policy of [path.resolve('examples/shop/pledge.yaml'), undefined]) {
    const { PLEDGE_POLICY: _, ...rest } = env;
    const other = runPledge(['retention', 'holds', 'list'], { env: policy ? { ...rest, PLEDGE_POLICY: policy } : rest, cwd: directory.path });
    assert.equal(other.status, 0, other.stderr);
  }
  const database = new (loadSqlite())(path.join(env.PLEDGE_DATA_DIR, 'pledge.db'), { readonly: true });
  try {
    assert.deepEqual(database.prepare('select version from policy_versions order by recorded_at').all(), [{ version: '1.0' }, { version: '2.0' }]);
  } finally {
    database.close();
  }
  const missing = runPledge(['policy', 'publish', path.join(directory.path, 'nope.yaml')], { env, cwd: directory.path });
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /nothing was published/);
});

test('pledge outbox retry ID… | --all-failed requeues failed messages only, audited; --help shows its usage', async () => {
  const policies = writeMailPolicies(directory.path);
  const env = { PLEDGE_MASTER_KEY: randomBytes(32).toString('hex'), PLEDGE_DATA_DIR: path.join(directory.path, 'retry-data'), PLEDGE_POLICY: policies.v1 };
  const system = { type: 'system', id: 'test' } as const;
  // Three messages, two of which failed after their last attempt (the outbox row as the worker leaves it).
  const engine = await createEngine(loadConfig(env).config, { logger: createLogger('silent') });
  let ids: string[];
  try {
    const subject = await engine.subjects.create(system, { kinds: ['customer'], identities: [{ kind: 'email', value: 'cli-retry@example.test' }] });
    ids = [];
    for (const key of ['a', 'b', 'c']) ids.push((await engine.comms.enqueue({ topic: 'order_updates', subjectId: subject.id, template: 'message', data: { subject: 's', body: 'b' }, idempotencyKey: key })).id);
    await engine.database.db.updateTable('comms_outbox').set({ status: 'failed', attempts: 10, last_error: 'EENVELOPE 550' }).where('id', 'in', ids.slice(0, 2)).execute();
  } finally {
    await engine.close();
  }
  const [first, second, queued] = ids as [string, string, string];

  const one = runPledge(['outbox', 'retry', first], { env, cwd: directory.path });
  assert.equal(one.status, 0, one.stderr);
  assert.match(one.stdout, /requeued 1 failed message/);
  const mixed = runPledge(['outbox', 'retry', first, queued, 'msg_00000000000000000000000000'], { env, cwd: directory.path });
  assert.equal(mixed.status, 1);
  assert.match(mixed.stdout, /requeued 0 failed message/);
  assert.match(mixed.stderr, new RegExp(`${first}: not retried, it is queued`));
  assert.match(mixed.stderr, /msg_00000000000000000000000000: no outbox message has this id/);
  const all = runPledge(['outbox', 'retry', '--all-failed'], { env, cwd: directory.path });
  assert.equal(all.status, 0, all.stderr);
  assert.match(all.stdout, /requeued 1 failed message/);

  const after = await createEngine(loadConfig(env).config, { logger: createLogger('silent') });
  try {
    for (const id of [first, second]) {
      const row = await after.comms.get(id);
      assert.equal(row.status, 'queued');
      assert.equal(row.attempts, 0);
    }
    assert.equal((await after.audit.list({ action: 'comms.retried' })).entries.length, 2);
  } finally {
    await after.close();
  }

  for (const args of [['outbox', 'retry'], ['outbox', 'retry', first, '--all-failed'], ['outbox', 'retry', 'nonsense'], ['outbox', 'resend']]) {
    const wrong = runPledge(args, { env, cwd: directory.path });
    assert.equal(wrong.status, 2, args.join(' '));
  }
  const help = runPledge(['outbox', 'retry', '--help'], { env, cwd: directory.path });
  assert.equal(help.status, 0);
  assert.match(help.stdout, /pledge outbox retry ID… \| --all-failed/);
});
