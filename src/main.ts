#!/usr/bin/env node
import { EXIT, UsageError, processIO, takeEngineFlags, type CommandIO } from './cli/io.js';
import { isPledgeError } from './core/errors.js';
import { categoriesCommand, diffCommand, initCommand, renderCommand, schemaCommand, validateCommand } from './policy/policy.commands.js';
import { auditVerifyCommand } from './audit/audit.commands.js';
import { outboxRetryCommand, policyPublishCommand } from './comms/comms.commands.js';
import { commandSecrets, loadConfig, type Config, type ConfigFlags } from './core/config.js';
import { createEngine } from './engine.js';
import { serveCommand } from './serve.js';
import { keysRotateCommand } from './subjects/keys.commands.js';
import { staffAddCommand } from './staff/staff.commands.js';
import { VERSION } from './core/package.js';
import { REQUESTS_USAGE, requestsCommand } from './requests/requests.commands.js';
import { retentionHoldsCommand, retentionRunCommand } from './retention/retention.commands.js';

const HELP = `pledge ${VERSION} — your privacy policy, kept by software

Usage:
  pledge serve [--port 4400] [--host 127.0.0.1] [--policy pledge.yaml] [--data-dir .pledge]
               [--database-url postgres://…] [--log-level info] [--public-url https://…]
               [--workers 1|N|auto]
  pledge init [--defaults] [--out pledge.yaml] [--force]
  pledge policy validate FILE [--json]
  pledge policy render FILE [--format md|html] [--out FILE]
  pledge policy diff OLD NEW [--json]
  pledge policy schema [--out FILE]
  pledge policy categories [FILE] [--json]
  pledge policy publish FILE [--effective YYYY-MM-DD] [--data-dir .pledge] [--database-url postgres://…]
  pledge outbox retry ID… | --all-failed [--data-dir .pledge] [--database-url postgres://…]
  pledge audit verify [--from SEQ] [--expect SEQ:HASH] [--json] [--progress]
                     [--data-dir .pledge] [--database-url postgres://…]
  pledge keys rotate [--batch 1000] [--json] [--data-dir .pledge] [--database-url postgres://…]
  pledge staff add --email E --name N --role owner|privacy_officer|support|auditor|developer [--password-stdin]
                   [--data-dir .pledge] [--database-url postgres://…]   (the password: PLEDGE_STAFF_PASSWORD, stdin or a prompt)
  pledge requests create|list|show|verify|override|approve|deny|cancel|extend|dry-run|run|links …
                  [--data-dir .pledge] [--database-url postgres://…]
  pledge retention run [--dry-run] [--json] [--batch 10000] [--data-dir .pledge] [--database-url postgres://…]
  pledge retention holds add --subject SUB_ID --reason TEXT [--expires ISO-DATE] | release HOLD_ID | list [--subject SUB_ID] [--all] [--json]
                         [--data-dir .pledge] [--database-url postgres://…]
  pledge --version | --help

Configuration comes from flags and PLEDGE_* environment variables (PLEDGE_PORT, PLEDGE_HOST,
PLEDGE_POLICY, PLEDGE_DATA_DIR, PLEDGE_MASTER_KEY, DATABASE_URL, PLEDGE_LOG_LEVEL, PLEDGE_ENV).
Exit codes: 0 ok, 1 invalid input, 2 wrong usage.`;

/**
 * The lines of HELP that document `pledge WORDS…` (a command, or a command and its
 * subcommand), with their continuation lines: the one place a usage is written down.
 */
function usageLines(words: string): string[] {
  const lines = HELP.split('\n');
  const picked: string[] = [];
  for (let index = 0; index < lines.length; index++) {
    if (!lines[index]!.startsWith(`  pledge ${words} `) && lines[index] !== `  pledge ${words}`) continue;
    picked.push(lines[index]!);
    // Continuation lines are indented further and name no command.
    while (index + 1 < lines.length && /^ {4,}\S/.test(lines[index + 1]!) && !lines[index + 1]!.trimStart().startsWith('pledge ')) picked.push(lines[++index]!);
  }
  return picked;
}

/** Wrong usage of `pledge WORDS…`: its lines of HELP. */
function usageError(words: string): UsageError {
  return new UsageError(`usage:\n${usageLines(words).join('\n')}`);
}

/**
 * `pledge COMMAND … --help` (or -h): the usage of that command, from HELP (requests have a
 * usage of their own). Arguments after `--` are values, never a request for help.
 */
function commandHelp(command: string, rest: readonly string[]): string | undefined {
  const end = rest.indexOf('--');
  if (!(end === -1 ? rest : rest.slice(0, end)).some((arg) => arg === '--help' || arg === '-h')) return undefined;
  if (command === 'requests') return REQUESTS_USAGE;
  const sub = rest[0] && !rest[0].startsWith('-') ? usageLines(`${command} ${rest[0]}`) : [];
  const usage = sub.length > 0 ? sub : usageLines(command);
  if (usage.length === 0) return undefined;
  return `usage:\n${usage.join('\n')}\n\n${HELP.slice(HELP.indexOf('Configuration comes'))}`;
}

async function run(argv: string[], io: CommandIO): Promise<number> {
  const [command, ...rest] = argv;
  const help = command === undefined ? undefined : commandHelp(command, rest);
  if (help) {
    io.out(help);
    return EXIT.ok;
  }
  switch (command) {
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      io.out(HELP);
      return EXIT.ok;
    case '--version':
    case '-v':
      io.out(VERSION);
      return EXIT.ok;
    case 'serve':
      return serveCommand(rest, io);
    case 'init':
      return initCommand(rest, io, process.stdin, process.stdout);
    case 'policy': {
      const [sub, ...args] = rest;
      switch (sub) {
        case 'validate':
          return validateCommand(args, io);
        case 'render':
          return renderCommand(args, io);
        case 'diff':
          return diffCommand(args, io);
        case 'schema':
          return schemaCommand(args, io);
        case 'categories':
          return categoriesCommand(args, io);
        case 'publish': {
          const { args: publishArgs, flags } = takeEngineFlags(args);
          return policyPublishCommand(publishArgs, io, () => openEngineFor(io, flags));
        }
        default:
          throw new UsageError(`unknown policy command "${sub ?? ''}"; try validate, render, diff, schema, categories or publish`);
      }
    }
    case 'outbox': {
      if (rest[0] !== 'retry') throw usageError('outbox');
      const { args, flags } = takeEngineFlags(rest.slice(1));
      return outboxRetryCommand(args, io, () => openEngineFor(io, flags));
    }
    case 'audit':
      if (rest[0] !== 'verify') throw usageError('audit');
      return auditVerifyCommand(rest.slice(1), io, (flags) => openEngineFor(io, flags));
    case 'staff':
      if (rest[0] !== 'add') throw usageError('staff');
      return staffAddCommand(
        rest.slice(1),
        io,
        async (flags) => {
          const { config, warnings } = loadConfig(undefined, flags, io.cwd);
          for (const warning of warnings) io.err(`warning: ${warning}`);
          const engine = await createEngine(config, { warn: (message) => io.err(`warning: ${message}`) });
          return { staff: engine.staff, close: () => engine.close() };
        },
        { env: commandSecrets(), stdin: process.stdin, prompt: process.stderr },
      );
    case 'keys':
      if (rest[0] !== 'rotate') throw usageError('keys');
      return keysRotateCommand(rest.slice(1), io, (flags, adjust) => openEngineFor(io, flags, adjust));
    case 'requests': {
      const { args, flags } = takeEngineFlags(rest);
      return requestsCommand(args, io, () => openEngineFor(io, flags));
    }
    case 'retention': {
      const { args, flags } = takeEngineFlags(rest.slice(1));
      if (rest[0] === 'run') return retentionRunCommand(args, io, () => openEngineFor(io, flags));
      if (rest[0] === 'holds') return retentionHoldsCommand(args, io, () => openEngineFor(io, flags));
      throw usageError('retention');
    }
    default:
      throw new UsageError(`unknown command "${command}"; run pledge --help`);
  }
}

/** The engine as `pledge serve` would build it (same configuration), for maintenance commands. */
async function openEngineFor(io: CommandIO, flags: ConfigFlags = {}, adjust: (config: Config) => Config = (config) => config) {
  const { config, warnings } = loadConfig(undefined, flags, io.cwd);
  for (const warning of warnings) io.err(`warning: ${warning}`);
  return createEngine(adjust(config), { warn: (message) => io.err(`warning: ${message}`) });
}

run(process.argv.slice(2), processIO).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    // No stack traces for people: a clear sentence and an exit code.
    if (error instanceof UsageError) {
      processIO.err(`pledge: ${error.message}`);
      process.exitCode = EXIT.usage;
    } else if (isPledgeError(error)) {
      processIO.err(`pledge: ${error.message}`);
      process.exitCode = EXIT.invalid;
    } else {
      processIO.err(`pledge: unexpected error: ${(error as Error)?.message ?? String(error)}`);
      process.exitCode = EXIT.failure;
    }
  },
);
