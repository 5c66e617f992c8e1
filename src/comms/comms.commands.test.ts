import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { after, test } from 'node:test';
import { runPledge } from '../../test/support/cli.js';
import { temporaryDirectory } from '../../test/support/databases.js';
import { writeMailPolicies } from './comms.test-support.js';

const directory = temporaryDirectory('pledge-publish-');
after(() => directory.remove());

test('pledge policy publish stores a version once, with its effective date, and schedules notices for a material change', () => {
  const policies = writeMailPolicies(directory.path);
  const env = { PLEDGE_MASTER_KEY: randomBytes(32).toString('hex'), PLEDGE_DATA_DIR: path.join(directory.path, 'data'), PLEDGE_POLICY: policies.v1 };
  const published = runPledge(['policy', 'publish', policies.v2, '--effective', '2026-09-01'], { env, cwd: directory.path });
  assert.equal(published.status, 0, published.stderr);
  assert.match(published.stdout, /published policy version 2\.0 as pol_[0-9a-z]{26}, effective 2026-09-01/);
  assert.match(published.stdout, /1 material/);
  assert.match(published.stdout, /notices to registered people are scheduled/);
  const again = runPledge(['policy', 'publish', policies.v2], { env, cwd: directory.path });
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stdout, /already published; nothing changed/);
  const badDate = runPledge(['policy', 'publish', policies.v2, '--effective', '2026-13-45'], { env, cwd: directory.path });
  assert.equal(badDate.status, 2);
  assert.match(badDate.stderr, /--effective must be a date/);
  const missing = runPledge(['policy', 'publish', path.join(directory.path, 'nope.yaml')], { env, cwd: directory.path });
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /nothing was published/);
});
