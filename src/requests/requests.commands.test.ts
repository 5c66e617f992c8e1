import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runPledge } from '../../test/support/cli.js';
import { temporaryDirectory } from '../../test/support/databases.js';

test('pledge requests: log a postal request, verify it by hand, approve, run and show it', () => {
  const directory = temporaryDirectory('pledge-requests-cli-');
  try {
    const env = { PLEDGE_DATA_DIR: directory.path, PLEDGE_LOG_LEVEL: 'error' };
    const run = (...args: string[]) => runPledge(['requests', ...args], { cwd: directory.path, env });
    const created = run('create', '--type', 'access', '--email', 'jane@example.com', '--channel', 'postal', '--received', '2026-01-05T10:00:00Z', '--json');
    assert.equal(created.status, 0, created.stderr);
    const request = JSON.parse(created.stdout);
    assert.equal(request.status, 'identity_unverified');
    assert.equal(request.dueAt, '2026-02-04T23:59:59.999Z');
    assert.ok(!created.stdout.includes('jane@'), 'the identity is not printed');

    assert.equal(run('approve', request.id).status, 1, 'an unverified request cannot be approved');
    assert.match(run('approve', request.id).stderr, /cannot become approved/);
    assert.equal(run('override', request.id).status, 2, 'a reason is required');
    assert.equal(run('override', request.id, '--reason', 'Signed letter with a copy of an ID').status, 0);
    assert.equal(run('approve', request.id).status, 0);
    const ran = run('run', request.id);
    assert.equal(ran.status, 0, ran.stderr);
    assert.match(ran.stdout, /completed/);
    assert.match(ran.stdout, /task vault: done/);
    const links = run('links', request.id);
    assert.match(links.stdout, /^html +http:\/\/127\.0\.0\.1:4400\/v1\/packages\/pkg_/m);
    const listed = run('list', '--status', 'completed');
    assert.match(listed.stdout, new RegExp(`^${request.id} +access +completed`, 'm'));
    assert.equal(run('show', 'not-an-id').status, 2);
  } finally {
    directory.remove();
  }
});
