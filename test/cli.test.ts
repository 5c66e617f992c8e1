import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { createTestDatabase, temporaryDirectory, testDialects } from './support/databases.js';
import { runPledge, startServer, type RunningServer } from './support/cli.js';

const DEMO = path.resolve('examples/demo/pledge.yaml');
const DEMO_TEXT = readFileSync(DEMO, 'utf8');
const noStackTrace = (text: string) => assert.doesNotMatch(text, /^\s+at .+:\d+:\d+\)?$/m, 'no stack trace is printed');

describe('pledge help', () => {
  test('--help after any command prints that command\'s usage and changes nothing (exit 0)', () => {
    const cases: Array<[string[], RegExp]> = [
      [['keys', 'rotate', '--help'], /^ {2}pledge keys rotate \[--batch 1000\] \[--json\] \[--data-dir \.pledge\] \[--database-url postgres:\/\/…\]$/m],
      [['audit', 'verify', '-h'], /^ {2}pledge audit verify .*--progress/m],
      [['policy', 'render', 'x.yaml', '--help'], /^ {2}pledge policy render FILE/m],
      [['serve', '--port', '1', '--help'], /^ {15}\[--workers 1\|N\|auto\]$/m],
      [['requests', 'create', '--help'], /^ {2}pledge requests create --type access/m],
      [['staff', 'add', '--help'], /PLEDGE_STAFF_PASSWORD/],
    ];
    for (const [args, usage] of cases) {
      const result = runPledge(args);
      assert.equal(result.status, 0, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stdout, /^usage:$/m);
      assert.match(result.stdout, usage, args.join(' '));
      assert.equal(result.stderr, '');
    }
    const policy = runPledge(['policy', '--help']);
    assert.deepEqual(policy.stdout.split('\n').filter((line) => line.startsWith('  pledge')).map((line) => line.split(' ')[4]), ['validate', 'render', 'diff', 'schema', 'categories', 'publish']);
    // After `--`, --help is a value: the command runs (and here refuses its extra argument).
    const literal = runPledge(['audit', 'verify', '--', '--help']);
    assert.equal(literal.status, 2);
    assert.match(literal.stderr, /usage: pledge audit verify/);
    // Every command HELP names is reachable as `pledge COMMAND --help`.
    const overview = runPledge(['--help']).stdout;
    for (const command of new Set([...overview.matchAll(/^ {2}pledge ([a-z]+)/gm)].map((match) => match[1]!))) {
      assert.equal(runPledge([command, '--help']).status, 0, command);
    }
  });
});

describe('the options every engine command takes', () => {
  test('audit verify and keys rotate work on the data directory --data-dir names, as staff add and serve do', () => {
    const directory = temporaryDirectory();
    try {
      const options = { cwd: directory.path, env: { PLEDGE_POLICY: DEMO } };
      const verified = runPledge(['audit', 'verify', '--data-dir', 'state'], options);
      assert.equal(verified.status, 0, verified.stderr);
      assert.match(verified.stdout, /^audit chain intact: /);
      assert.ok(existsSync(path.join(directory.path, 'state', 'pledge.db')), 'the named data directory was used');
      assert.ok(!existsSync(path.join(directory.path, '.pledge')), 'not the default one');
      const key = readFileSync(path.join(directory.path, 'state', 'master.key'), 'utf8');
      const rotated = runPledge(['keys', 'rotate', '--json', '--data-dir', 'state'], options);
      assert.equal(rotated.status, 0, rotated.stderr);
      assert.notEqual(readFileSync(path.join(directory.path, 'state', 'master.key'), 'utf8'), key, 'the development key was rotated in place');
      const again = runPledge(['audit', 'verify', '--json', '--data-dir', 'state'], options);
      assert.equal(again.status, 0, again.stderr);
      assert.equal(JSON.parse(again.stdout).ok, true);
    } finally {
      directory.remove();
    }
  });
});

describe('the engine options on command families', () => {
  test('requests, retention, outbox retry and policy publish work on the data directory --data-dir names, before or after their own options', () => {
    const directory = temporaryDirectory();
    try {
      const options = { cwd: directory.path, env: { PLEDGE_POLICY: DEMO } };
      const listed = runPledge(['requests', 'list', '--json', '--data-dir', 'state'], options);
      assert.equal(listed.status, 0, listed.stderr);
      assert.deepEqual(JSON.parse(listed.stdout).requests, []);
      assert.ok(existsSync(path.join(directory.path, 'state', 'pledge.db')), 'the named data directory was used');
      const created = runPledge(['requests', '--data-dir=state', 'create', '--type', 'access', '--email', 'ada@example.com', '--channel', 'email'], options);
      assert.equal(created.status, 0, created.stderr);
      const again = runPledge(['requests', 'list', '--data-dir', 'state', '--json'], options);
      assert.equal(JSON.parse(again.stdout).requests.length, 1, 'the request went to the named data directory');
      const holds = runPledge(['retention', 'holds', 'list', '--json', '--data-dir', 'state'], options);
      assert.equal(holds.status, 0, holds.stderr);
      const swept = runPledge(['retention', 'run', '--dry-run', '--data-dir', 'state'], options);
      assert.equal(swept.status, 0, swept.stderr);
      const retried = runPledge(['outbox', 'retry', '--all-failed', '--data-dir', 'state'], options);
      assert.equal(retried.status, 0, retried.stderr);
      const published = runPledge(['policy', 'publish', DEMO, '--data-dir', 'state'], options);
      assert.equal(published.status, 0, published.stderr);
      assert.ok(!existsSync(path.join(directory.path, '.pledge')), 'no command fell back to the default data directory');
      const missing = runPledge(['requests', 'list', '--data-dir'], options);
      assert.equal(missing.status, 2);
      assert.match(missing.stderr, /--data-dir <value>' argument missing/);
      // After `--`, it is a value, not the option.
      const literal = runPledge(['requests', 'show', '--', '--data-dir'], options);
      assert.notEqual(literal.status, 0);
      assert.ok(!existsSync(path.join(directory.path, '--data-dir')));
    } finally {
      directory.remove();
    }
  });
});

describe('pledge policy validate', () => {
  let directory: ReturnType<typeof temporaryDirectory>;
  before(() => {
    directory = temporaryDirectory();
  });
  after(() => directory.remove());
  const file = (name: string, content: string | Buffer) => {
    const target = path.join(directory.path, name);
    writeFileSync(target, content);
    return target;
  };

  test('a valid policy: exit 0 and a one-line confirmation', () => {
    const result = runPledge(['policy', 'validate', DEMO]);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /valid \(policy version 1\.0, hash [0-9a-f]{12}\)/);
  });

  test('an invalid policy: exit 1, each problem at file:line:column with a suggestion', () => {
    const target = file('typo.yaml', DEMO_TEXT.replace('categories: [user.contact.email]\n    subjects: [subscriber', 'categories: [user.contact.emial]\n    subjects: [subscriber'));
    const result = runPledge(['policy', 'validate', 'typo.yaml'], { cwd: directory.path });
    assert.equal(result.status, 1);
    assert.match(result.stderr, /^typo\.yaml:\d+:18: error: collection\[3\]\.categories\[0\]: unknown category "user\.contact\.emial" — did you mean "user\.contact\.email"\?$/m);
    assert.match(result.stderr, /^1 error, 0 warnings$/m);
    noStackTrace(result.stderr);
    assert.ok(existsSync(target));
  });

  test('--json gives the issues as data', () => {
    file('bad.yaml', DEMO_TEXT.replace('legal_basis: consent', 'legal_basis: consnt'));
    const result = runPledge(['policy', 'validate', 'bad.yaml', '--json'], { cwd: directory.path });
    assert.equal(result.status, 1);
    const report = JSON.parse(result.stdout);
    assert.equal(report.valid, false);
    assert.equal(report.issues[0].code, 'invalid_value');
    assert.equal(report.issues[0].path, 'purposes[2].legal_basis');
    assert.equal(typeof report.issues[0].line, 'number');
  });

  test('bad files each get a clear message, exit 1 and no stack trace', () => {
    const cases: Array<[string, string | Buffer, RegExp]> = [
      ['empty.yaml', '', /empty\.yaml:1:1: error: the policy file is empty/],
      ['broken.yaml', 'pledge: 1\npolicy: [\n', /broken\.yaml:\d+:\d+: error: YAML: /],
      ['binary.yaml', Buffer.from([0x70, 0x3a, 0x20, 0xff, 0xfe, 0x0a]), /binary\.yaml:1:4: error: the file is not valid UTF-8/],
      ['type.yaml', DEMO_TEXT.replace('minimum_age: 13', 'minimum_age: [13]'), /children\.minimum_age: expected a whole number, got a list/],
      ['unknown-key.yaml', DEMO_TEXT.replace('sharing:', 'sharng:'), /unknown key "sharng" — did you mean "sharing"\?/],
      ['dangling.yaml', DEMO_TEXT.replace('purposes: [legal_compliance]', 'purposes: [legal]'), /unknown purpose "legal"/],
    ];
    for (const [name, content, expected] of cases) {
      file(name, content);
      const result = runPledge(['policy', 'validate', name], { cwd: directory.path });
      assert.equal(result.status, 1, name);
      assert.match(result.stderr, expected, name);
      noStackTrace(result.stderr);
    }
    const missing = runPledge(['policy', 'validate', 'nowhere.yaml'], { cwd: directory.path });
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /nowhere\.yaml:1:1: error: no such file/);
  });

  test('a 50 MB file is refused quickly, without a stack trace', () => {
    file('huge.yaml', Buffer.alloc(50 * 1024 * 1024, 0x61));
    const result = runPledge(['policy', 'validate', 'huge.yaml'], { cwd: directory.path });
    assert.equal(result.status, 1);
    assert.match(result.stderr, /the policy file is 50\.0 MB; the limit is 1\.0 MB/);
    noStackTrace(result.stderr);
  });

  test('wrong usage exits 2', () => {
    assert.equal(runPledge(['policy', 'validate']).status, 2);
    assert.equal(runPledge(['policy', 'frobnicate']).status, 2);
    assert.equal(runPledge(['nonsense']).status, 2);
    const unknownFlag = runPledge(['policy', 'validate', DEMO, '--jsno']);
    assert.equal(unknownFlag.status, 2);
    assert.match(unknownFlag.stderr, /Unknown option '--jsno'/);
    const unknownRole = runPledge(['staff', 'add', '--email', 'ana@example.com', '--name', 'Ana', '--role', 'boss']);
    assert.equal(unknownRole.status, 2, unknownRole.stderr);
    assert.equal(unknownRole.stderr, 'pledge: --role must be one of owner, privacy_officer, support, auditor, developer\n');
  });
});

describe('pledge policy render, diff, schema', () => {
  let directory: ReturnType<typeof temporaryDirectory>;
  before(() => {
    directory = temporaryDirectory();
  });
  after(() => directory.remove());

  test('render to Markdown on stdout and to an HTML file', () => {
    const markdown = runPledge(['policy', 'render', DEMO]);
    assert.equal(markdown.status, 0, markdown.stderr);
    assert.match(markdown.stdout, /^# Northwind Books Privacy Policy/m);
    const out = path.join(directory.path, 'policy.html');
    const html = runPledge(['policy', 'render', DEMO, '--format', 'html', '--out', out]);
    assert.equal(html.status, 0, html.stderr);
    assert.match(readFileSync(out, 'utf8'), /^<!doctype html>/i);
  });

  test('render of an invalid policy writes nothing', () => {
    const bad = path.join(directory.path, 'bad.yaml');
    writeFileSync(bad, DEMO_TEXT.replace('legal_basis: consent', 'legal_basis: consnt'));
    const out = path.join(directory.path, 'never.html');
    const result = runPledge(['policy', 'render', bad, '--format', 'html', '--out', out]);
    assert.equal(result.status, 1);
    assert.equal(existsSync(out), false);
    assert.equal(runPledge(['policy', 'render', DEMO, '--format', 'pdf']).status, 2);
  });

  test('diff names semantic changes and marks the material ones', () => {
    const newer = path.join(directory.path, 'newer.yaml');
    writeFileSync(newer, DEMO_TEXT.replace('version: "1.0"', 'version: "1.1"').replace('categories: [user.name, user.contact.email, user.behavior.purchase_history]', 'categories: [user.name, user.contact.email, user.contact.phone_number, user.behavior.purchase_history]'));
    const text = runPledge(['policy', 'diff', DEMO, newer]);
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /material/i);
    assert.match(text.stdout, /phone_number|Phone number/);
    const json = JSON.parse(runPledge(['policy', 'diff', DEMO, newer, '--json']).stdout);
    assert.ok(json.changes.some((change: { material: boolean; element: string }) => change.material && change.element === 'purpose'));
    assert.match(runPledge(['policy', 'diff', DEMO, DEMO]).stdout, /No semantic changes/);
  });

  test('schema prints the JSON Schema, and the published copy is up to date', () => {
    const result = runPledge(['policy', 'schema']);
    assert.equal(result.status, 0);
    const schema = JSON.parse(result.stdout);
    assert.equal(schema.title, 'Pledge policy');
    assert.ok(schema.properties.purposes);
    assert.deepEqual(JSON.parse(readFileSync('schema/pledge.schema.json', 'utf8')), schema, 'schema/pledge.schema.json is stale: run npm run schema');
  });
});

describe('pledge policy categories', () => {
  test('lists the built-in taxonomy, and a policy\'s own categories when given one', () => {
    const builtIn = runPledge(['policy', 'categories']);
    assert.equal(builtIn.status, 0, builtIn.stderr);
    assert.match(builtIn.stdout, /^user\.contact\.email\s+Email address$/m);
    assert.match(builtIn.stdout, /^user\.financial\.credit_card\s+Payment card details \(sensitive\)$/m);
    const withPolicy = JSON.parse(runPledge(['policy', 'categories', 'examples/policies/plimus.yaml', '--json']).stdout) as Array<{ id: string; custom: boolean }>;
    assert.ok(withPolicy.some((category) => category.custom), 'the policy adds categories of its own');
    assert.ok(withPolicy.some((category) => category.id === 'user.contact.email' && !category.custom));
  });
});

describe('pledge init', () => {
  test('--defaults writes a starter policy that validates, and never overwrites', () => {
    const directory = temporaryDirectory();
    try {
      const result = runPledge(['init', '--defaults'], { cwd: directory.path });
      assert.equal(result.status, 0, result.stderr);
      assert.ok(existsSync(path.join(directory.path, 'pledge.schema.json')));
      const validate = runPledge(['policy', 'validate', 'pledge.yaml'], { cwd: directory.path });
      assert.equal(validate.status, 0, validate.stderr);
      const again = runPledge(['init', '--defaults'], { cwd: directory.path });
      assert.equal(again.status, 1);
      assert.match(again.stderr, /already exists; use --force/);
    } finally {
      directory.remove();
    }
  });

  test('interactive answers from standard input', () => {
    const directory = temporaryDirectory();
    try {
      const answers = ['Acme: Tools & Co', 'https://acme.example', 'privacy@acme.example', 'DE', 'y', 'n', 'y', '16', ''].join('\n');
      const result = runPledge(['init'], { cwd: directory.path, input: `${answers}\n` });
      assert.equal(result.status, 0, result.stderr + result.stdout);
      const validate = runPledge(['policy', 'validate', 'pledge.yaml'], { cwd: directory.path });
      assert.equal(validate.status, 0, validate.stderr);
      assert.match(readFileSync(path.join(directory.path, 'pledge.yaml'), 'utf8'), /Acme: Tools & Co/);
    } finally {
      directory.remove();
    }
  });
});

describe('pledge serve', () => {
  test('refuses an invalid policy, prints the report, and creates nothing', () => {
    const directory = temporaryDirectory();
    try {
      writeFileSync(path.join(directory.path, 'pledge.yaml'), DEMO_TEXT.replace('legal_basis: consent', 'legal_basis: consnt'));
      const result = runPledge(['serve', '--port', '0'], { cwd: directory.path });
      assert.equal(result.status, 1);
      assert.match(result.stderr, /pledge\.yaml:\d+:\d+: error: purposes\[2\]\.legal_basis/);
      assert.match(result.stderr, /refusing to start/);
      noStackTrace(result.stderr);
      assert.equal(existsSync(path.join(directory.path, '.pledge')), false);
    } finally {
      directory.remove();
    }
  });

  test('starts on SQLite in ./.pledge with ./pledge.yaml, answers /health, stops on SIGTERM', async () => {
    const directory = temporaryDirectory();
    try {
      writeFileSync(path.join(directory.path, 'pledge.yaml'), DEMO_TEXT.replace('name: Northwind Books\n', 'name: Southwind Books\n'));
      const server = await startServer([], { cwd: directory.path, env: { PLEDGE_PROT: '1' } });
      try {
        const health = await fetch(`${server.url}/health`);
        assert.equal(health.status, 200);
        assert.equal(((await health.json()) as { database: { dialect: string } }).database.dialect, 'sqlite');
        assert.match(await (await fetch(`${server.url}/policy`)).text(), /Southwind Books/);
        const { stdout, stderr } = server.output();
        assert.match(stdout, /privacy policy\s+http:\/\/.+\/policy/);
        assert.match(stderr, /unknown environment variable PLEDGE_PROT is ignored — did you mean PLEDGE_PORT\?/);
        assert.match(stderr, /generated a development master key/);
        assert.equal(statSync(path.join(directory.path, '.pledge', 'master.key')).mode & 0o777, 0o600);
        assert.ok(existsSync(path.join(directory.path, '.pledge', 'pledge.db')));
        assert.doesNotMatch(stderr, /never published/, 'the first start records its policy');
      } finally {
        assert.equal(await server.stop(), 0, 'a clean exit on SIGTERM');
      }
      // Edited and started again without publishing: it runs, and says people were not told.
      writeFileSync(path.join(directory.path, 'pledge.yaml'), DEMO_TEXT.replace('name: Northwind Books\n', 'name: Eastwind Books\n'));
      const edited = await startServer([], { cwd: directory.path });
      try {
        const health = (await (await fetch(`${edited.url}/health`)).json()) as { policy: { published: boolean; in_force: string | null } };
        assert.deepEqual([health.policy.published, health.policy.in_force], [false, '1.0']);
        assert.match(edited.output().stderr, /warning: the policy in use \(pledge\.yaml, version 1\.0\) was never published.*pledge policy publish pledge\.yaml --effective YYYY-MM-DD/);
      } finally {
        await edited.stop();
      }
    } finally {
      directory.remove();
    }
  });

  test('without pledge.yaml it serves the demo policy and says so', async () => {
    const directory = temporaryDirectory();
    try {
      mkdirSync(path.join(directory.path, 'empty'));
      const server = await startServer(['--data-dir', 'state'], { cwd: path.join(directory.path, 'empty') });
      try {
        assert.match(server.output().stdout, /the demo policy/);
        assert.match(await (await fetch(`${server.url}/policy`)).text(), /Northwind Books/);
        assert.ok(existsSync(path.join(directory.path, 'empty', 'state', 'pledge.db')));
      } finally {
        await server.stop();
      }
    } finally {
      directory.remove();
    }
  });
});

/** Live child processes of `pid` (Linux /proc), the workers of a supervisor. */
function childProcesses(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === pid && fields[0] !== 'Z') children.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return children;
}

async function waitFor<T>(probe: () => T | undefined, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('pledge serve --workers', () => {
  test('N processes share the port; a worker that dies is replaced; SIGTERM stops them all', async () => {
    const directory = temporaryDirectory();
    try {
      writeFileSync(path.join(directory.path, 'pledge.yaml'), DEMO_TEXT);
      const server = await startServer(['--workers', '2'], { cwd: directory.path });
      let stopped = false;
      try {
        assert.match(server.output().stdout, /processes\s+2 \(the first runs the background work\)/);
        assert.equal(server.output().stdout.match(/Pledge is running on/g)?.length, 1, 'one announcement, not one per process');
        const workers = childProcesses(server.pid);
        assert.equal(workers.length, 2);
        const answers = await Promise.all(Array.from({ length: 40 }, () => fetch(`${server.url}/health`).then((response) => response.status)));
        assert.deepEqual(new Set(answers), new Set([200]));

        process.kill(workers[1]!, 'SIGKILL');
        const replaced = await waitFor(() => {
          const now = childProcesses(server.pid);
          return now.length === 2 && !now.includes(workers[1]!) ? now : undefined;
        }, 'a replacement worker');
        assert.ok(replaced.includes(workers[0]!), 'the other worker kept running');
        await waitFor(() => (/a worker process ended \(exit SIGKILL\); starting another/.test(server.output().stderr) ? true : undefined), 'the supervisor to say so');
        const after = await Promise.all(Array.from({ length: 20 }, () => fetch(`${server.url}/health`).then((response) => response.status)));
        assert.deepEqual(new Set(after), new Set([200]));

        stopped = true;
        assert.equal(await server.stop(), 0, 'a clean exit on SIGTERM');
        for (const pid of replaced) assert.throws(() => process.kill(pid, 0), /ESRCH/, 'no worker outlives the supervisor');
      } finally {
        if (!stopped) await server.stop('SIGKILL');
      }
    } finally {
      directory.remove();
    }
  });

  test('a bad count is refused with the accepted forms', () => {
    const result = runPledge(['serve', '--port', '0', '--workers', '0']);
    assert.equal(result.status, 1);
    assert.match(result.stderr, /must be a number from 1 to 256 or auto, got "0"/);
    noStackTrace(result.stderr);
  });
});

describe('pledge serve with a foreign master key', () => {
  test('refuses to start when the keyring was written with another master key, and says which', async () => {
    const directory = temporaryDirectory();
    try {
      const first = await startServer([], { cwd: directory.path, env: { PLEDGE_MASTER_KEY: '11'.repeat(32) } });
      await first.stop();
      const result = runPledge(['serve', '--port', '0'], { cwd: directory.path, env: { PLEDGE_MASTER_KEY: '22'.repeat(32) } });
      assert.equal(result.status, 1);
      assert.match(result.stderr, /written with a master key \(key id [0-9a-f]{12}\) that is neither PLEDGE_MASTER_KEY/);
      noStackTrace(result.stderr);
    } finally {
      directory.remove();
    }
  });
});

describe('pledge serve on PostgreSQL', { skip: testDialects().includes('postgres') ? undefined : 'PLEDGE_TEST_POSTGRES_URL is not set' }, () => {
  test('two server processes share one database: both migrate, both answer, one policy version recorded', async () => {
    const database = await createTestDatabase('postgres');
    const directory = temporaryDirectory();
    try {
      // Processes sharing a database share its master key (each would otherwise generate its own).
      const options = { cwd: directory.path, env: { DATABASE_URL: database.url, PLEDGE_MASTER_KEY: 'ab'.repeat(32) } };
      const started = await Promise.allSettled([startServer(['--data-dir', 'a'], options), startServer(['--data-dir', 'b'], options)]);
      const servers = started.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
      // Never leave a server behind, even when its sibling failed to start.
      const failure = started.find((result) => result.status === 'rejected');
      if (failure) {
        await Promise.all(servers.map((server) => server.stop()));
        throw (failure as PromiseRejectedResult).reason;
      }
      const [first, second] = servers as [RunningServer, RunningServer];
      try {
        for (const server of [first, second]) {
          const health = (await (await fetch(`${server.url}/health`)).json()) as { status: string; database: { dialect: string } };
          assert.deepEqual([health.status, health.database.dialect], ['ok', 'postgres']);
        }
        const client = new pg.Client({ connectionString: database.url });
        await client.connect();
        try {
          const { rows } = await client.query('select count(*)::int as count from policy_versions');
          assert.equal(rows[0].count, 1);
        } finally {
          await client.end();
        }
      } finally {
        await Promise.all([first.stop(), second.stop()]);
      }
    } finally {
      directory.remove();
      await database.cleanup();
    }
  });
});
