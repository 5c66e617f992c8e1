import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { manualClock } from '../core/clock.js';
import { loadConfig } from '../core/config.js';
import { createLogger } from '../core/logger.js';
import { createEngine } from '../engine.js';
import { cleanEnv, PLEDGE_BIN, runPledge } from '../../test/support/cli.js';
import { createTestDatabase, temporaryDirectory, testDialects, type TestDatabase } from '../../test/support/databases.js';

const DEMO = path.resolve('examples/demo/pledge.yaml');
const system = { type: 'system' as const, id: 'test' };

/**
 * `pledge retention …` as people run it: the compiled bin in a child process, against data
 * written years ago (through the engine, on a clock set in the past).
 */
for (const dialect of testDialects()) {
  describe(`pledge retention on ${dialect}`, () => {
    let directory: ReturnType<typeof temporaryDirectory>;
    let database: TestDatabase;
    let env: NodeJS.ProcessEnv;
    const ids: string[] = [];
    before(async () => {
      directory = temporaryDirectory('pledge-retention-cli-');
      database = await createTestDatabase(dialect);
      env = { PLEDGE_DATA_DIR: path.join(directory.path, 'data'), PLEDGE_POLICY: DEMO, DATABASE_URL: database.url, PLEDGE_LOG_LEVEL: 'silent' };
      const { config } = loadConfig(env);
      const engine = await createEngine(config, { clock: manualClock('2020-01-01T00:00:00Z'), logger: createLogger('silent') });
      try {
        for (let index = 0; index < 3; index++) {
          const subject = await engine.subjects.create(system, { kinds: ['visitor'], data: { purpose: 'analytics', source: 'automatic', fields: { 'user.device.ip_address': `203.0.113.${index}`, 'user.device.browser': 'Firefox' } } });
          ids.push(subject.id);
        }
      } finally {
        await engine.close();
      }
    });
    after(async () => {
      await database.cleanup();
      directory.remove();
    });

    test('holds add and list; run --dry-run and run print the same summary table; --json', () => {
      const added = runPledge(['retention', 'holds', 'add', '--subject', ids[0]!, '--reason', 'Matter 9'], { env });
      assert.equal(added.status, 0, added.stderr);
      const holdId = /placed legal hold (hld_\w+) on/.exec(added.stdout)?.[1];
      assert.ok(holdId, added.stdout);
      const listed = runPledge(['retention', 'holds', 'list'], { env });
      assert.match(listed.stdout, new RegExp(`^${holdId}\\s+${ids[0]}\\s+active\\s.*Matter 9$`, 'm'));

      const dry = runPledge(['retention', 'run', '--dry-run'], { env });
      assert.equal(dry.status, 0, dry.stderr);
      assert.match(dry.stdout, /^Retention dry run at .* \(nothing was changed\)$/m);
      assert.match(dry.stdout, /^rule\s+target\s+category\s+action\s+rows would be affected\s+kept by exception\s+skipped by hold$/m);
      assert.match(dry.stdout, /^browsing_logs\s+vault\s+user\.device\.ip_address\s+delete\s+2\s+0\s+1$/m);
      assert.match(dry.stdout, /^4 row\(s\) would be affected; 0 kept by exception; 2 skipped by legal hold$/m);
      assert.match(dry.stdout, /^Notes:\n(- .*\n)*- vault \S+: closed accounts with no data left/m, 'notes qualifying lines are listed under the table');

      const run = runPledge(['retention', 'run'], { env });
      assert.equal(run.status, 0, run.stderr);
      assert.match(run.stdout, /^browsing_logs\s+vault\s+user\.device\.ip_address\s+delete\s+2\s+0\s+1$/m);
      assert.match(run.stdout, /^4 row\(s\) affected; 0 kept by exception; 2 skipped by legal hold$/m);
      assert.match(run.stderr, /^sweeping vault \(0\/4 rows so far\)$/m, 'plain progress lines when stderr is not a terminal');
      assert.doesNotMatch(run.stdout + run.stderr, /203\.0\.113/);

      const json = runPledge(['retention', 'run', '--json'], { env });
      assert.equal(json.status, 0, json.stderr);
      const report = JSON.parse(json.stdout) as { dryRun: boolean; totals: { rows: number; skippedByHold: number } };
      assert.deepEqual([report.dryRun, report.totals.rows, report.totals.skippedByHold], [false, 0, 2]);
      assert.equal(json.stderr, '');

      const released = runPledge(['retention', 'holds', 'release', holdId], { env });
      assert.match(released.stdout, new RegExp(`^released legal hold ${holdId} on ${ids[0]}$`, 'm'));
      const last = runPledge(['retention', 'run', '--json'], { env });
      assert.equal((JSON.parse(last.stdout) as { totals: { rows: number } }).totals.rows, 2);
      assert.match(runPledge(['retention', 'holds', 'list'], { env }).stdout, /^no legal holds in force$/m);
    });

    test('on a terminal, a progress bar is drawn on stderr', { skip: existsSync('/usr/bin/script') ? false : 'no /usr/bin/script (util-linux) to give the command a terminal' }, () => {
      // script(1) runs the command on a pseudo-terminal, so stderr.isTTY is true in the child.
      const result = spawnSync('/usr/bin/script', ['-qec', `${process.execPath} ${PLEDGE_BIN} retention run`, '/dev/null'], { env: cleanEnv(env), encoding: 'utf8', timeout: 30_000 });
      assert.equal(result.status, 0, result.stdout + result.stderr);
      assert.match(result.stdout, /\r\[[#.]{30}\] \d+\/\d+ rows/);
      assert.match(result.stdout, /^Retention sweep at /m);
      assert.doesNotMatch(result.stdout, /^sweeping vault/m, 'no plain progress lines on a terminal');
    });

    test('wrong usage exits 2; a bad hold exits 1 with the reason', () => {
      assert.equal(runPledge(['retention', 'sweep'], { env }).status, 2);
      assert.equal(runPledge(['retention', 'holds', 'add', '--subject', ids[1]!], { env }).status, 2);
      assert.equal(runPledge(['retention', 'run', '--batch', '0'], { env }).status, 2);
      const past = runPledge(['retention', 'holds', 'add', '--subject', ids[1]!, '--reason', 'x', '--expires', '2001-01-01'], { env });
      assert.equal(past.status, 1);
      assert.match(past.stderr, /^pledge: expiresAt must be in the future$/m);
    });
  });
}
