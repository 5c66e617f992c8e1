import assert from 'node:assert/strict';
import { PassThrough, Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { UsageError, type CommandIO } from '../cli/io.js';
import { PledgeError } from '../core/errors.js';
import { testDialects } from '../../test/support/databases.js';
import { parsePhc } from './staff.passwords.js';
import { staffAddCommand, type OpenStaffEngine, type PasswordInput } from './staff.commands.js';
import { createStaffTestApp, type StaffTestApp } from './staff.test-support.js';

const PASSWORD = 'typed, never shown 42';

function bufferIO(): CommandIO & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { out: (text) => void stdout.push(text), err: (text) => void stderr.push(text), cwd: process.cwd(), stdout, stderr };
}

/** A piped standard input holding `text`. */
function piped(text: string): PasswordInput['stdin'] {
  const stream = new PassThrough();
  stream.end(text);
  return stream;
}

/** A fake terminal: answers each prompt by "typing" the next line; records what was echoed. */
function terminal(answers: string[]): { stdin: PasswordInput['stdin']; prompt: Writable; shown: () => string; rawModes: boolean[] } {
  const stdin = new PassThrough() as PassThrough & { isTTY: boolean; setRawMode(mode: boolean): void };
  const rawModes: boolean[] = [];
  stdin.isTTY = true;
  stdin.setRawMode = (mode: boolean) => void rawModes.push(mode);
  let shown = '';
  const prompt = new Writable({
    write(chunk: Buffer, _encoding, done) {
      shown += chunk.toString();
      if (chunk.toString().endsWith(': ')) {
        // Typed one key at a time, with a mistake corrected by backspace.
        const answer = answers.shift()!;
        setImmediate(() => {
          stdin.write('x\u007f');
          for (const character of answer) stdin.write(character);
          stdin.write('\r');
        });
      }
      done();
    },
  });
  return { stdin, prompt, shown: () => shown, rawModes };
}

for (const dialect of testDialects()) {
  describe(`pledge staff add on ${dialect}`, () => {
    let app: StaffTestApp;
    let opened = 0;
    let lastFlags: Parameters<OpenStaffEngine>[0] | undefined;
    const openEngine: OpenStaffEngine = async (flags) => {
      opened += 1;
      lastFlags = flags;
      return { staff: app.staff, close: async () => {} };
    };
    before(async () => {
      app = await createStaffTestApp(dialect);
    });
    after(() => app.cleanup());

    const storedHash = async (id: string) =>
      (await app.database.db.selectFrom('staff_users').select('password_hash').where('id', '=', id).executeTakeFirstOrThrow()).password_hash;

    test('reads the password from PLEDGE_STAFF_PASSWORD and prints only the id and role', async () => {
      const io = bufferIO();
      const code = await staffAddCommand(['--email', 'Owner@Example.com', '--name', 'Olive', '--role', 'owner'], io, openEngine, {
        env: { PLEDGE_STAFF_PASSWORD: PASSWORD },
        stdin: piped(''),
        prompt: new PassThrough(),
      });
      assert.equal(code, 0);
      assert.match(io.stdout.join('\n'), /^added staff account stf_[0-9a-z]{26} \(role owner\)$/);
      assert.doesNotMatch(io.stdout.join('\n'), /@|Olive/);
      const id = io.stdout[0]!.split(' ')[3]!;
      assert.equal(parsePhc(await storedHash(id))?.algorithm, 'argon2id');
      await app.staff.login('owner@example.com', PASSWORD, { ip: 'cli-1' });
    });

    test('--password-stdin reads a piped password (one trailing newline is not part of it)', async () => {
      const io = bufferIO();
      const code = await staffAddCommand(['--email', 'piped@example.com', '--name', 'Pip', '--role', 'auditor', '--password-stdin', '--data-dir', '/srv/pledge'], io, openEngine, {
        env: {},
        stdin: piped(`${PASSWORD}\n`),
        prompt: new PassThrough(),
      });
      assert.equal(code, 0);
      assert.deepEqual(lastFlags, { dataDir: '/srv/pledge' });
      await app.staff.login('piped@example.com', PASSWORD, { ip: 'cli-2' });
    });

    test('in a terminal it asks twice without echo', async () => {
      const io = bufferIO();
      const tty = terminal([PASSWORD, PASSWORD]);
      const code = await staffAddCommand(['--email', 'tty@example.com', '--name', 'Tee', '--role', 'support'], io, openEngine, { env: {}, stdin: tty.stdin, prompt: tty.prompt });
      assert.equal(code, 0);
      assert.ok(!tty.shown().includes(PASSWORD), 'nothing typed is echoed');
      assert.match(tty.shown(), /Password for the new account: \nRepeat the password: \n/);
      assert.deepEqual(tty.rawModes, [true, false, true, false]);
      await app.staff.login('tty@example.com', PASSWORD, { ip: 'cli-3' });

      const mismatch = terminal([PASSWORD, 'something else entirely']);
      await assert.rejects(
        staffAddCommand(['--email', 'tty2@example.com', '--name', 'Tee', '--role', 'support'], bufferIO(), openEngine, { env: {}, stdin: mismatch.stdin, prompt: mismatch.prompt }),
        /the two passwords differ/,
      );
    });

    test('never takes the password as a flag, and says why without repeating it', async () => {
      for (const flag of [['--password', 'hunter2hunter2'], ['--password=hunter2hunter2'], ['-p', 'hunter2hunter2']]) {
        await assert.rejects(
          staffAddCommand(['--email', 'x@example.com', '--name', 'X', '--role', 'owner', ...flag], bufferIO(), openEngine, { env: {}, stdin: piped(''), prompt: new PassThrough() }),
          (error: unknown) => error instanceof UsageError && /never accepted on the command line/.test(error.message) && !error.message.includes('hunter2'),
        );
      }
    });

    test('without any password source, or with missing flags, it is a usage error and opens nothing', async () => {
      const before = opened;
      await assert.rejects(
        staffAddCommand(['--email', 'x@example.com', '--name', 'X', '--role', 'owner'], bufferIO(), openEngine, { env: {}, stdin: piped(PASSWORD), prompt: new PassThrough() }),
        /no password: set PLEDGE_STAFF_PASSWORD/,
      );
      await assert.rejects(staffAddCommand(['--email', 'x@example.com'], bufferIO(), openEngine, { env: { PLEDGE_STAFF_PASSWORD: PASSWORD }, stdin: piped(''), prompt: new PassThrough() }), UsageError);
      assert.equal(opened, before);
    });

    test('a weak password is refused with the reason, echoing neither password nor email', async () => {
      await assert.rejects(
        staffAddCommand(['--email', 'weak@example.com', '--name', 'W', '--role', 'owner'], bufferIO(), openEngine, { env: { PLEDGE_STAFF_PASSWORD: 'short' }, stdin: piped(''), prompt: new PassThrough() }),
        (error: unknown) => error instanceof PledgeError && error.code === 'weak_password' && !error.message.includes('weak@'),
      );
    });

    test('an unknown role is a usage error (exit 2) listing the roles, before a password is asked for or the database opened', async () => {
      const before = opened;
      for (const role of ['boss', 'admin', 'Owner']) {
        await assert.rejects(
          staffAddCommand(['--email', 'bad@example.com', '--name', 'B', '--role', role], bufferIO(), openEngine, { env: {}, stdin: piped(''), prompt: new PassThrough() }),
          (error: unknown) => error instanceof UsageError && error.message === '--role must be one of owner, privacy_officer, support, auditor, developer' && !error.message.includes('bad@'),
          role,
        );
      }
      assert.equal(opened, before);
    });
  });
}
