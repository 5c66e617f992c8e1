import { EXIT, UsageError, parseCommandArgs, type CommandIO } from '../cli/io.js';
import { RIGHT_TYPES, type RightType } from '../policy/policy.schema.js';
import type { Actor } from '../staff/permissions.js';
import { IDENTITY_KINDS } from '../subjects/identities.js';
import type { IdentityInput } from '../subjects/subjects.service.js';
import type { JobRunner } from '../core/jobs.js';
import type { RequestView, RequestsService } from './requests.service.js';
import type { RequestChannel, RequestStatus } from './requests.tables.js';

export const REQUESTS_USAGE = `usage:
  pledge requests create --type access|portability|correction|erasure|restriction|objection|withdraw_consent
                         --email E [--phone P] [--user-id U] [--channel email|postal|phone|in_person|api]
                         [--received 2026-01-05T10:00:00Z] [--correct category=value …] [--purpose ID …]
  pledge requests list [--status S] [--type T] [--overdue] [--json]
  pledge requests show ID [--json]
  pledge requests verify ID --code 123456
  pledge requests override ID --reason "…"        (verify the person by other means)
  pledge requests approve ID
  pledge requests deny ID --reason "…"
  pledge requests cancel ID --reason "…"
  pledge requests extend ID [--reason "…"]
  pledge requests dry-run ID                      (what an erasure would change and keep)
  pledge requests run ID [--timeout 120]          (carry it out here and wait)
  pledge requests links ID                        (signed download links of the package)
Every requests command also takes [--data-dir .pledge] [--database-url postgres://…].`;

/** The CLI acts as the engine itself, on behalf of whoever runs it on the server. */
const CLI: Actor = { type: 'system', id: 'cli' };

const CHANNELS: readonly RequestChannel[] = ['api', 'privacy_center', 'email', 'postal', 'phone', 'in_person'];

function line(view: RequestView): string {
  const due = `due ${view.effectiveDueAt.slice(0, 10)}${view.extended ? ' (extended)' : ''}${view.overdue ? ' OVERDUE' : ''}`;
  return `${view.id}  ${view.type.padEnd(16)} ${view.status.padEnd(19)} ${due}`;
}

function describe(view: RequestView): string {
  const lines = [
    line(view),
    `  received ${view.receivedAt} by ${view.channel}; identities: ${view.identityKinds.join(', ')}`,
    `  verification: ${view.verified ? `${view.verification} at ${view.verifiedAt}` : 'not verified'}`,
  ];
  if (view.extensionReason) lines.push(`  extension: ${view.extensionReason}`);
  if (view.decisionReason) lines.push(`  reason: ${view.decisionReason}`);
  if (view.failure) lines.push(`  failure: ${view.failure}`);
  for (const task of view.tasks) lines.push(`  task ${task.datastore}: ${task.state}, ${task.attempts} attempt(s)${task.lastError ? `, last error ${task.lastError}` : ''}${task.summary ? ` ${JSON.stringify(task.summary)}` : ''}`);
  for (const item of view.packages) lines.push(`  package ${item.format}: ${item.bytes} bytes, ${item.deleted ? 'deleted' : `until ${item.expiresAt}`}`);
  return lines.join('\n');
}

function parseCorrection(text: string): [string, unknown] {
  const at = text.indexOf('=');
  if (at <= 0) throw new UsageError(`--correct takes category=value, e.g. --correct user.name="Jane Smith"`);
  const raw = text.slice(at + 1);
  // A JSON value (an object, a number) when it parses as one; otherwise the text itself.
  let value: unknown = raw;
  if (/^[[{"\d-]|^(true|false|null)$/.test(raw)) {
    try {
      value = JSON.parse(raw);
    } catch {
      value = raw;
    }
  }
  return [text.slice(0, at), value];
}

/**
 * `pledge requests …`: log, inspect and carry out data-subject requests from the server's shell
 * (a request that came by post or phone; a run on a machine without the HTTP API in reach).
 */
export async function requestsCommand(args: string[], io: CommandIO, openEngine: () => Promise<{ requests: RequestsService; jobs: JobRunner; close(): Promise<void> }>): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parseCommandArgs(rest, {
    type: { type: 'string' },
    email: { type: 'string' },
    phone: { type: 'string' },
    'user-id': { type: 'string' },
    channel: { type: 'string' },
    received: { type: 'string' },
    correct: { type: 'string', multiple: true },
    purpose: { type: 'string', multiple: true },
    status: { type: 'string' },
    overdue: { type: 'boolean' },
    json: { type: 'boolean' },
    code: { type: 'string' },
    reason: { type: 'string' },
    timeout: { type: 'string' },
  });
  const needId = (): string => {
    const id = positionals[0];
    if (!id || positionals.length > 1 || !/^req_[0-9a-hjkmnp-tv-z]{26}$/.test(id)) throw new UsageError(`pledge requests ${sub} needs one request id (req_…)`);
    return id;
  };
  const needReason = (): string => {
    if (!values.reason?.trim()) throw new UsageError(`pledge requests ${sub} needs --reason "…" (it is recorded in the audit log)`);
    return values.reason;
  };
  const print = (view: RequestView) => io.out(values.json ? JSON.stringify(view, null, 2) : describe(view));

  // Arguments are checked before anything is opened.
  let action: (engine: { requests: RequestsService; jobs: JobRunner }) => Promise<number>;
  switch (sub) {
    case 'create': {
      if (!values.type || !(RIGHT_TYPES as readonly string[]).includes(values.type)) throw new UsageError(`--type must be one of ${RIGHT_TYPES.join(', ')}`);
      if (values.channel && !(CHANNELS as readonly string[]).includes(values.channel)) throw new UsageError(`--channel must be one of ${CHANNELS.join(', ')}`);
      const identities: IdentityInput[] = [];
      if (values.email) identities.push({ kind: 'email', value: values.email });
      if (values.phone) identities.push({ kind: 'phone', value: values.phone });
      if (values['user-id']) identities.push({ kind: 'user_id', value: values['user-id'] });
      if (identities.length === 0) throw new UsageError(`a request needs at least one of --email, --phone, --user-id (kinds: ${IDENTITY_KINDS.join(', ')})`);
      const corrections = values.correct ? Object.fromEntries(values.correct.map(parseCorrection)) : undefined;
      action = async ({ requests }) => {
        print(
          await requests.create(CLI, {
            type: values.type as RightType,
            identities,
            ...(values.channel ? { channel: values.channel as RequestChannel } : {}),
            ...(values.received ? { receivedAt: values.received } : {}),
            ...(corrections ? { corrections } : {}),
            ...(values.purpose ? { purposes: values.purpose } : {}),
          }),
        );
        return EXIT.ok;
      };
      break;
    }
    case 'list':
      action = async ({ requests }) => {
        const page = await requests.list({
          ...(values.status ? { status: values.status as RequestStatus } : {}),
          ...(values.type ? { type: values.type as RightType } : {}),
          ...(values.overdue ? { overdue: true } : {}),
          limit: 200,
        });
        if (values.json) io.out(JSON.stringify(page, null, 2));
        else io.out(page.requests.length === 0 ? 'no requests' : page.requests.map(line).join('\n'));
        return EXIT.ok;
      };
      break;
    case 'show': {
      const id = needId();
      action = async ({ requests }) => (print(await requests.get(id)), EXIT.ok);
      break;
    }
    case 'verify': {
      const id = needId();
      if (!values.code) throw new UsageError('pledge requests verify needs --code');
      const code = values.code;
      action = async ({ requests }) => (print(await requests.verify(CLI, id, code)), EXIT.ok);
      break;
    }
    case 'override': {
      const id = needId();
      const reason = needReason();
      action = async ({ requests }) => (print(await requests.overrideVerification(CLI, id, reason)), EXIT.ok);
      break;
    }
    case 'approve': {
      const id = needId();
      action = async ({ requests }) => (print(await requests.approve(CLI, id)), EXIT.ok);
      break;
    }
    case 'deny':
    case 'cancel': {
      const id = needId();
      const reason = needReason();
      action = async ({ requests }) => (print(sub === 'deny' ? await requests.deny(CLI, id, reason) : await requests.cancel(CLI, id, reason)), EXIT.ok);
      break;
    }
    case 'extend': {
      const id = needId();
      action = async ({ requests }) => (print(await requests.extend(CLI, id, values.reason)), EXIT.ok);
      break;
    }
    case 'dry-run': {
      const id = needId();
      action = async ({ requests }) => (io.out(JSON.stringify(await requests.dryRun(CLI, id), null, 2)), EXIT.ok);
      break;
    }
    case 'links': {
      const id = needId();
      action = async ({ requests }) => {
        const links = await requests.links(id, CLI);
        io.out(values.json ? JSON.stringify(links, null, 2) : Object.entries(links).map(([format, link]) => `${format.padEnd(5)} ${link}`).join('\n'));
        return EXIT.ok;
      };
      break;
    }
    case 'run': {
      const id = needId();
      const timeout = values.timeout === undefined ? 120 : Number(values.timeout);
      if (!Number.isFinite(timeout) || timeout <= 0) throw new UsageError('--timeout is a number of seconds');
      action = async ({ requests, jobs }) => {
        let view = await requests.run(CLI, id);
        const deadline = Date.now() + timeout * 1000;
        // Jobs are leased, so a `pledge serve` sharing the database may take some of them: wait for the request, not for our own runner.
        while (view.status === 'in_progress' && Date.now() < deadline) {
          if ((await jobs.runDue()) === 0) await new Promise((resolve) => setTimeout(resolve, 500));
          view = await requests.get(id);
        }
        print(view);
        if (view.status === 'in_progress') io.err(`still in progress after ${timeout} s; its tasks are retried by pledge serve (see pledge requests show ${id})`);
        return view.status === 'completed' ? EXIT.ok : EXIT.invalid;
      };
      break;
    }
    default:
      throw new UsageError(REQUESTS_USAGE);
  }
  const engine = await openEngine();
  try {
    return await action(engine);
  } finally {
    await engine.close();
  }
}
