import { EXIT, UsageError, parseCommandArgs, type CommandIO } from '../cli/io.js';
import { isPledgeError } from '../core/errors.js';
import { ROLES } from './permissions.js';
import { isRole, type StaffService } from './staff.service.js';

/**
 * What a staff command needs of the engine; the bin opens it from the configuration (the
 * flags override PLEDGE_DATA_DIR / PLEDGE_DATABASE_URL, as for `pledge serve`).
 */
export type OpenStaffEngine = (flags: { dataDir?: string; databaseUrl?: string }) => Promise<{ staff: StaffService; close(): Promise<void> }>;

/**
 * Where the password comes from. The bin passes the process's own: `{ env: process.env,
 * stdin: process.stdin, prompt: process.stderr }`; tests pass streams.
 */
export interface PasswordInput {
  env: Readonly<Record<string, string | undefined>>;
  stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?(mode: boolean): unknown };
  /** Where the prompt is written (stderr, so stdout stays clean for scripts). */
  prompt: NodeJS.WritableStream;
}

export const STAFF_PASSWORD_VARIABLE = 'PLEDGE_STAFF_PASSWORD';

const USAGE = `usage: pledge staff add --email EMAIL --name NAME --role ROLE [--password-stdin] [--data-dir DIR] [--database-url URL]
  roles: ${ROLES.join(', ')}
  the password is read from ${STAFF_PASSWORD_VARIABLE}, from standard input with --password-stdin,
  or asked for (without echo) when run in a terminal; it is never accepted as a flag`;

/**
 * `pledge staff add --email E --name N --role R [--password-stdin] [--data-dir D] [--database-url U]`
 *
 *   printf '%s\n' "$PASSWORD" | pledge staff add --email ana@example.com --name Ana --role owner --password-stdin
 *
 * A password given as a flag would land in the shell history and in `ps`, so there is no
 * such flag; asking for one is refused with a pointer to the ways that are safe.
 */
export async function staffAddCommand(args: string[], io: CommandIO, openEngine: OpenStaffEngine, input: PasswordInput): Promise<number> {
  if (args.some((arg) => /^--?password(=|$)/.test(arg) || arg === '-p')) {
    // The value is not repeated anywhere: it may be the password.
    throw new UsageError(`a password is never accepted on the command line; set ${STAFF_PASSWORD_VARIABLE}, pipe it with --password-stdin, or run in a terminal to be asked`);
  }
  const { values, positionals } = parseCommandArgs(args, {
    email: { type: 'string' },
    name: { type: 'string' },
    role: { type: 'string' },
    'password-stdin': { type: 'boolean' },
    'data-dir': { type: 'string' },
    'database-url': { type: 'string' },
  });
  if (positionals.length > 0 || !values.email || !values.name || !values.role) throw new UsageError(USAGE);
  // A role is a word of the command line, like a flag's name: a wrong one is a usage error (exit
  // 2), told before a password is asked for.
  if (!isRole(values.role)) throw new UsageError(`--role must be one of ${ROLES.join(', ')}`);

  const password = await readPassword(input, values['password-stdin'] === true);
  const engine = await openEngine({
    ...(values['data-dir'] === undefined ? {} : { dataDir: values['data-dir'] }),
    ...(values['database-url'] === undefined ? {} : { databaseUrl: values['database-url'] }),
  });
  try {
    const added = await engine.staff.addStaff({ email: values.email, name: values.name, role: values.role, password });
    // The id and role only: the output of a command ends up in CI logs and terminals' scrollback.
    io.out(`added staff account ${added.id} (role ${added.role})`);
    return EXIT.ok;
  } catch (error) {
    if (isPledgeError(error) && error.code === 'validation_failed') {
      const errors = (error.details?.errors ?? []) as Array<{ location: string; message: string }>;
      io.err(errors.map((issue) => `pledge: --${issue.location} ${issue.message}`).join('\n') || `pledge: ${error.message}`);
      return EXIT.invalid;
    }
    throw error;
  } finally {
    await engine.close();
  }
}

async function readPassword(input: PasswordInput, fromStdin: boolean): Promise<string> {
  if (fromStdin) {
    if (input.stdin.isTTY) throw new UsageError('--password-stdin reads a piped password; in a terminal, leave it out to be asked');
    const text = await readAll(input.stdin, 64 * 1024);
    // One trailing line break is the end of the line, not part of the password.
    const password = text.replace(/\r?\n$/, '');
    if (password.length === 0) throw new UsageError('standard input held no password');
    return password;
  }
  const fromEnvironment = input.env[STAFF_PASSWORD_VARIABLE];
  if (fromEnvironment !== undefined && fromEnvironment !== '') return fromEnvironment;
  if (input.stdin.isTTY && typeof input.stdin.setRawMode === 'function') {
    const first = await promptHidden(input, 'Password for the new account: ');
    const second = await promptHidden(input, 'Repeat the password: ');
    if (first !== second) throw new UsageError('the two passwords differ; nothing was added');
    if (first.length === 0) throw new UsageError('no password was typed; nothing was added');
    return first;
  }
  throw new UsageError(`no password: set ${STAFF_PASSWORD_VARIABLE}, pipe it with --password-stdin, or run in a terminal to be asked`);
}

function readAll(stream: NodeJS.ReadableStream, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('data', (chunk: Buffer | string) => {
      const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      size += buffer.length;
      if (size > limit) {
        reject(new UsageError('standard input is too long to be a password'));
        return;
      }
      chunks.push(buffer);
    });
    stream.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    stream.on('error', reject);
  });
}

/** Reads one line from a terminal in raw mode, echoing nothing. */
function promptHidden(input: PasswordInput, question: string): Promise<string> {
  const { stdin, prompt } = input;
  prompt.write(question);
  stdin.setRawMode!(true);
  stdin.setEncoding('utf8');
  stdin.resume();
  return new Promise((resolve, reject) => {
    let value = '';
    const finish = () => {
      stdin.removeListener('data', onData);
      stdin.setRawMode!(false);
      stdin.pause();
      prompt.write('\n');
    };
    const onData = (chunk: string | Buffer) => {
      for (const character of String(chunk)) {
        if (character === '\r' || character === '\n') {
          finish();
          resolve(value);
          return;
        }
        if (character === '\u0003' || (character === '\u0004' && value === '')) {
          // Ctrl-C, or Ctrl-D on an empty line.
          finish();
          reject(new UsageError('cancelled; nothing was added'));
          return;
        }
        if (character === '\u007f' || character === '\b') value = [...value].slice(0, -1).join('');
        else if (character >= ' ') value += character;
      }
    };
    stdin.on('data', onData);
  });
}
