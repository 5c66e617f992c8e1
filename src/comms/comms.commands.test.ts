import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { after, test } from 'node:test';
import { loadSqlite } from '../core/sqlite.js';
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
