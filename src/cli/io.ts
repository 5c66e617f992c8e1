import { renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** Where a command writes: the process streams in the bin, buffers in tests. */
export interface CommandIO {
  out(text: string): void;
  err(text: string): void;
  cwd: string;
}

export const processIO: CommandIO = {
  out: (text) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
  err: (text) => process.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
  cwd: process.cwd(),
};

/** Exit codes: 0 ok, 1 the input is invalid (policy errors), 2 the command line is wrong. */
export const EXIT = { ok: 0, invalid: 1, usage: 2, failure: 70 } as const;

export class UsageError extends Error {}

export function parseCommandArgs<T extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: T) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/**
 * The options every command that opens the engine accepts, as `pledge serve` and
 * `pledge staff add` do: which data directory and database to work on.
 */
export const ENGINE_OPTIONS = { 'data-dir': { type: 'string' }, 'database-url': { type: 'string' } } as const;

/** The config flags ENGINE_OPTIONS parsed into. */
export function engineFlags(values: { 'data-dir'?: string | undefined; 'database-url'?: string | undefined }): { dataDir?: string; databaseUrl?: string } {
  return {
    ...(values['data-dir'] === undefined ? {} : { dataDir: values['data-dir'] }),
    ...(values['database-url'] === undefined ? {} : { databaseUrl: values['database-url'] }),
  };
}

/**
 * Takes ENGINE_OPTIONS out of a command line, wherever they stand before a `--` (as
 * `--data-dir DIR` or `--data-dir=DIR`), for commands whose own parsers (a family of
 * subcommands, each with options of its own) then see only their options.
 */
export function takeEngineFlags(args: readonly string[]): { args: string[]; flags: { dataDir?: string; databaseUrl?: string } } {
  const rest: string[] = [];
  const values: { 'data-dir'?: string; 'database-url'?: string } = {};
  for (let index = 0; index < args.length; index++) {
    const arg = args[index]!;
    if (arg === '--') {
      rest.push(...args.slice(index));
      break;
    }
    const name = Object.keys(ENGINE_OPTIONS).find((option) => arg === `--${option}` || arg.startsWith(`--${option}=`)) as keyof typeof ENGINE_OPTIONS | undefined;
    if (!name) {
      rest.push(arg);
      continue;
    }
    const inline = arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : undefined;
    const value = inline ?? args[++index];
    if (value === undefined || (inline === undefined && value.startsWith('--'))) throw new UsageError(`option '--${name} <value>' argument missing`);
    if (value === '') throw new UsageError(`option '--${name}' needs a value`);
    values[name] = value;
  }
  return { args: rest, flags: engineFlags(values) };
}

/**
 * Writes a file whole or not at all: to a temporary name first, then renamed over the
 * target, so an interrupted command never leaves half a file.
 */
export function writeFileAtomic(file: string, content: string, mode = 0o644): void {
  const temporary = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  writeFileSync(temporary, content, { mode });
  renameSync(temporary, file);
}
