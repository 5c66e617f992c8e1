import { createHmac, randomInt } from 'node:crypto';
import type { AuditDetailValue, AuditWriter } from '../audit/audit.types.js';
import type { Clock } from '../core/clock.js';
import { deriveKey, open, safeEqual, seal } from '../core/crypto.js';
import type { Database } from '../core/db.js';
import { PledgeError, isPledgeError } from '../core/errors.js';
import { newId } from '../core/ids.js';
import type { Job, JobRunner } from '../core/jobs.js';
import type { Keyring } from '../core/keyring.js';
import { addDuration, parseDeadline, parseDuration } from '../policy/duration.js';
import type { Policy } from '../policy/policy.model.js';
import type { RightType } from '../policy/policy.schema.js';
import type { Actor } from '../staff/permissions.js';
import { requireShallowValue } from '../subjects/field-values.js';
import { normalizeIdentity } from '../subjects/identities.js';
import type { IdentityInput } from '../subjects/subjects.service.js';
import { DeadlineCalendar } from './requests.deadlines.js';
import type { RequestEvent, RequestNotice, RequestNotifier } from './requests.notifier.js';
import { buildPackage, PACKAGE_FORMATS, type PackageFormat } from './requests.packages.js';
import { OPEN_STATUSES, requestsStore as store } from './requests.store.js';
import { VAULT, type ErasureResult, type FoundRow, type RequestSystems } from './requests.systems.js';
import type { RequestChannel, RequestStatus, RequestsTable, RequestTasksTable, VerificationMethod } from './requests.tables.js';

/**
 * Data-subject requests: intake, verification, deadlines, execution and packages.
 *
 * Lifecycle (every transition audited; any other is refused with invalid_request_transition):
 *
 *   identity_unverified → pending → approved → in_progress → completed
 *                 ↘ canceled   ↘ denied      ↘ canceled   ↘ failed → in_progress (run again)
 *
 * A request never says whether its identities match anyone: creating, verifying and running it
 * answer the same way, and send the same messages, for a person the company knows and for one
 * it does not. Matching happens only inside each datastore's task.
 *
 * Execution: `run` splits the request into one task per datastore and enqueues one durable job
 * per task (src/core/jobs.ts). A task that fails is retried with backoff; after a crash only
 * the unfinished tasks run again. When the last task is done, a finalize job builds the
 * package (access, portability) and completes the request.
 */
export const VERIFICATION_CODE_TTL_MS = 15 * 60_000;
export const MAX_CODE_ATTEMPTS = 5;
export const MAX_CODE_SENDS = 5;
/** Reminders go to staff this long before a deadline. */
export const REMINDER_WINDOW_MS = 7 * 86_400_000;
export const DEFAULT_PACKAGE_EXPIRY = '30 days';
/** A download link lives at most this long (and never beyond the package). */
export const LINK_TTL_MS = 7 * 86_400_000;
/** A datastore that takes longer than this for one task is treated as down; the task is retried. */
export const DEFAULT_TASK_TIMEOUT_MS = 10 * 60_000;

const TRANSITIONS: Record<RequestStatus, readonly RequestStatus[]> = {
  identity_unverified: ['pending', 'canceled'],
  pending: ['approved', 'denied', 'canceled'],
  approved: ['in_progress', 'canceled'],
  in_progress: ['completed', 'failed', 'canceled'],
  failed: ['in_progress', 'canceled'],
  denied: [],
  completed: [],
  canceled: [],
};

export function canTransition(from: RequestStatus, to: RequestStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

export const TASK_JOB = 'request.task';
export const FINALIZE_JOB = 'request.finalize';
export const SWEEP_JOB = 'request.sweep';

export interface CreateRequestInput {
  type: RightType;
  identities: IdentityInput[];
  channel?: RequestChannel;
  /** When the request reached the company (a letter, a call): deadlines count from here. Default now. */
  receivedAt?: string;
  /** correction: new values by category. */
  corrections?: Record<string, unknown>;
  /** objection, withdraw_consent: the purposes concerned (default all the person can object to). */
  purposes?: string[];
}

export interface TaskView {
  id: string;
  datastore: string;
  state: RequestTasksTable['state'];
  attempts: number;
  lastError: string | null;
  summary: Record<string, unknown> | null;
  completedAt: string | null;
}

export interface RequestView {
  id: string;
  type: RightType;
  status: RequestStatus;
  channel: RequestChannel;
  identityKinds: string[];
  receivedAt: string;
  dueAt: string;
  /** The deadline in force: the extended one when extended. */
  effectiveDueAt: string;
  extended: boolean;
  extensionReason: string | null;
  overdue: boolean;
  verified: boolean;
  verification: VerificationMethod | null;
  verifiedAt: string | null;
  decisionReason: string | null;
  result: Record<string, unknown> | null;
  failure: string | null;
  createdAt: string;
  updatedAt: string;
  completedAt: string | null;
  tasks: TaskView[];
  packages: Array<{ format: string; bytes: number; expiresAt: string; deleted: boolean }>;
}

export interface ListQuery {
  status?: RequestStatus;
  type?: RightType;
  overdue?: boolean;
  limit?: number;
  after?: string;
}

interface StoredDetails {
  corrections?: Record<string, unknown>;
  purposes?: string[];
}

export interface RequestsServiceDeps {
  database: Database;
  policy: Policy;
  audit: AuditWriter;
  keyring: Keyring;
  clock: Clock;
  jobs: JobRunner;
  systems: RequestSystems;
  notifier: RequestNotifier;
  publicUrl: string;
  taskTimeoutMs?: number;
}

const SYSTEM: Actor = { type: 'system', id: 'requests' };

export class RequestsService {
  private readonly sealKey: Buffer;
  private readonly codeKey: Buffer;
  private readonly linkKey: Buffer;
  readonly calendar: DeadlineCalendar;

  constructor(private readonly deps: RequestsServiceDeps) {
    const root = deps.keyring.secret('token_signing');
    this.sealKey = deriveKey(root, 'pledge/requests/seal/v1');
    this.codeKey = deriveKey(root, 'pledge/requests/code/v1');
    this.linkKey = deriveKey(root, 'pledge/requests/link/v1');
    try {
      this.calendar = new DeadlineCalendar(deps.policy.document.rights.calendar);
    } catch (error) {
      throw new PledgeError('policy_invalid', `rights.calendar.timezone is not an IANA time zone (such as Europe/Paris)`, { cause: error });
    }
    deps.jobs.register(TASK_JOB, { run: (job) => this.runTask(job), exhausted: (job, code) => this.taskExhausted(job, code) });
    deps.jobs.register(FINALIZE_JOB, { run: (job) => this.finalize(job), exhausted: (job, code) => this.finalizeExhausted(job, code) });
    deps.jobs.register(SWEEP_JOB, { run: async () => void (await this.sweep()) });
  }

  /** Reminders and package deletion run every `everyMs` while the job runner polls (pledge serve). */
  schedule(everyMs = 15 * 60_000): void {
    this.deps.jobs.every(SWEEP_JOB, everyMs);
  }

  private get db() {
    return this.deps.database.db;
  }

  private now(): Date {
    return this.deps.clock.now();
  }

  private right(type: RightType) {
    const right = this.deps.policy.document.rights.requests.find((entry) => entry.type === type);
    if (!right) throw new PledgeError('request_type_not_offered', `the policy does not offer the ${type} right`);
    return right;
  }

  // --- sealing ---------------------------------------------------------------------------------

  private sealJson(value: unknown, context: string): string {
    return seal(this.sealKey, Buffer.from(JSON.stringify(value)), context);
  }

  private openJson<T>(sealed: string, context: string): T {
    return JSON.parse(open(this.sealKey, sealed, context).toString('utf8')) as T;
  }

  private identitiesOf(row: RequestsTable): IdentityInput[] {
    return this.openJson<IdentityInput[]>(row.identities, `request:${row.id}:identities`);
  }

  private detailsOf(row: RequestsTable): StoredDetails {
    return row.details ? this.openJson<StoredDetails>(row.details, `request:${row.id}:details`) : {};
  }

  private codeHash(requestId: string, code: string): string {
    return createHmac('sha256', this.codeKey).update(requestId).update('\u0000').update(code).digest('base64url');
  }

  // --- views -----------------------------------------------------------------------------------

  private effectiveDue(row: RequestsTable): string {
    return row.extended_due_at ?? row.due_at;
  }

  private notice(row: RequestsTable, links?: Record<string, string>): RequestNotice {
    return { requestId: row.id, type: row.type, status: row.status, dueAt: this.effectiveDue(row), ...(links ? { links } : {}) };
  }

  private async view(row: RequestsTable): Promise<RequestView> {
    const [unordered, packages] = await Promise.all([store.tasksOf(this.db, row.id), store.packagesOf(this.db, row.id)]);
    const order = this.deps.systems.ids();
    const tasks = unordered.sort((a, b) => order.indexOf(a.datastore) - order.indexOf(b.datastore));
    const now = this.now().toISOString();
    const effectiveDueAt = this.effectiveDue(row);
    return {
      id: row.id,
      type: row.type,
      status: row.status,
      channel: row.channel,
      identityKinds: JSON.parse(row.identity_kinds) as string[],
      receivedAt: row.received_at,
      dueAt: row.due_at,
      effectiveDueAt,
      extended: row.extended_due_at !== null,
      extensionReason: row.extension_reason,
      overdue: OPEN_STATUSES.includes(row.status) && effectiveDueAt < now,
      verified: row.verified_at !== null,
      verification: row.verification,
      verifiedAt: row.verified_at,
      decisionReason: row.decision_reason,
      result: row.result ? (JSON.parse(row.result) as Record<string, unknown>) : null,
      failure: row.failure,
      createdAt: row.created_at,
      updatedAt: row.updated_at,
      completedAt: row.completed_at,
      tasks: tasks.map((task) => ({
        id: task.id,
        datastore: task.datastore,
        state: task.state,
        attempts: task.attempts,
        lastError: task.last_error,
        summary: task.summary ? (JSON.parse(task.summary) as Record<string, unknown>) : null,
        completedAt: task.completed_at,
      })),
      packages: packages.map((item) => ({ format: item.format, bytes: item.bytes, expiresAt: item.expires_at, deleted: item.deleted_at !== null })),
    };
  }

  private async require(id: string): Promise<RequestsTable> {
    const row = await store.get(this.db, id);
    if (!row) throw new PledgeError('request_not_found', 'no request has this id');
    return row;
  }

  async get(id: string): Promise<RequestView> {
    return this.view(await this.require(id));
  }

  async list(query: ListQuery = {}): Promise<{ requests: RequestView[]; next: string | null }> {
    const limit = Math.min(Math.max(query.limit ?? 50, 1), 200);
    const rows = await store.list(this.db, {
      limit: limit + 1,
      ...(query.status ? { status: query.status } : {}),
      ...(query.type ? { type: query.type } : {}),
      ...(query.overdue ? { overdueAt: this.now().toISOString() } : {}),
      ...(query.after ? { after: query.after } : {}),
    });
    const page = rows.slice(0, limit);
    return { requests: await Promise.all(page.map((row) => this.view(row))), next: rows.length > limit ? page[page.length - 1]!.id : null };
  }

  // --- intake ----------------------------------------------------------------------------------

  /**
   * Logs a request. Staff give the channel and received date of a request that came by mail,
   * phone or email; a signed-in person (actor type subject, from the privacy center) is verified
   * by that session. The answer is the same whether or not anyone holds these identities.
   */
  async create(actor: Actor, input: CreateRequestInput): Promise<RequestView> {
    const right = this.right(input.type);
    const now = this.now();
    if (input.identities.length === 0) throw new PledgeError('invalid_identity', 'a request needs at least one identity of the person');
    const identities = input.identities.map((identity) => ({ kind: identity.kind, value: normalizeIdentity(identity.kind, identity.value) }));
    const received = input.receivedAt ? new Date(input.receivedAt) : now;
    if (Number.isNaN(received.getTime())) throw new PledgeError('invalid_request_details', 'receivedAt must be an ISO 8601 date-time');
    if (received.getTime() > now.getTime() + 60_000) throw new PledgeError('invalid_request_details', 'receivedAt cannot be in the future');
    const details: StoredDetails = {};
    if (input.type === 'correction') {
      if (!input.corrections || Object.keys(input.corrections).length === 0) throw new PledgeError('invalid_request_details', 'a correction request names the categories to correct and their new values (corrections)');
      for (const category of Object.keys(input.corrections)) {
        if (!this.deps.policy.categories.has(category)) throw new PledgeError('invalid_request_details', `"${category}" is not a data category of the policy`);
        // Stored with the request now, written to the vault later: refused here, not at the write.
        requireShallowValue(category, input.corrections[category]);
      }
      details.corrections = input.corrections;
    }
    if (input.purposes) {
      for (const purpose of input.purposes) if (!this.deps.policy.purposes.has(purpose)) throw new PledgeError('unknown_purpose', `purpose "${purpose}" is not declared in the policy`);
      details.purposes = input.purposes;
    }
    const deadline = parseDeadline(right.deadline)!;
    const id = newId('req', now.getTime());
    const stamp = now.toISOString();
    const method = right.verification ?? 'email_code';
    const signedIn = actor.type === 'subject';
    const verification: VerificationMethod | null = signedIn ? 'signed_in' : method === 'none' ? 'not_required' : null;
    const email = identities.find((identity) => identity.kind === 'email');
    const code = verification === null && method === 'email_code' && email ? this.newCode() : undefined;
    const row: RequestsTable = {
      id,
      type: input.type,
      status: verification ? 'pending' : 'identity_unverified',
      channel: input.channel ?? (signedIn ? 'privacy_center' : 'api'),
      identities: this.sealJson(identities, `request:${id}:identities`),
      identity_kinds: JSON.stringify([...new Set(identities.map((identity) => identity.kind))]),
      details: Object.keys(details).length > 0 ? this.sealJson(details, `request:${id}:details`) : null,
      received_at: received.toISOString(),
      due_at: this.calendar.due(received, deadline).toISOString(),
      extended_due_at: null,
      extension_reason: null,
      verified_at: verification ? stamp : null,
      verification,
      code_hash: code ? this.codeHash(id, code) : null,
      code_expires_at: code ? new Date(now.getTime() + VERIFICATION_CODE_TTL_MS).toISOString() : null,
      code_attempts: 0,
      code_sends: code ? 1 : 0,
      decision_reason: null,
      run: 0,
      result: null,
      failure: null,
      reminded_at: null,
      created_by: actor.id,
      created_at: stamp,
      updated_at: stamp,
      completed_at: null,
    };
    await this.db.transaction().execute(async (trx) => {
      await store.insert(trx, row);
      await this.deps.audit.appendWithin(trx, [
        { actor, action: 'request.created', target: { type: 'request', id }, details: { type: row.type, channel: row.channel, status: row.status, identities: JSON.parse(row.identity_kinds) as string[], receivedAt: row.received_at, dueAt: row.due_at } },
      ]);
    });
    await this.deps.notifier.notify(this.notice(row), 'received', email?.value);
    if (code && email) await this.deps.notifier.sendVerificationCode(this.notice(row), code, email.value);
    return this.view(row);
  }

  private newCode(): string {
    return String(randomInt(0, 1_000_000)).padStart(6, '0');
  }

  // --- verification ----------------------------------------------------------------------------

  async verify(actor: Actor, id: string, code: string): Promise<RequestView> {
    const row = await this.require(id);
    if (row.status !== 'identity_unverified') throw this.invalidTransition(row.status, 'pending');
    const now = this.now();
    if (!row.code_hash || !row.code_expires_at) throw new PledgeError('verification_code_invalid', 'no code was sent for this request; send one (resend) or verify it by hand', { details: { attemptsLeft: 0 } });
    if (row.code_attempts >= MAX_CODE_ATTEMPTS) throw new PledgeError('verification_locked', 'too many wrong codes: send a new code');
    if (row.code_expires_at < now.toISOString()) throw new PledgeError('verification_code_expired', 'the code has expired: send a new one');
    const stamp = now.toISOString();
    if (!safeEqual(this.codeHash(id, code.trim()), row.code_hash)) {
      const attempts = row.code_attempts + 1;
      await this.db.transaction().execute(async (trx) => {
        await store.update(trx, id, { code_attempts: attempts, updated_at: stamp });
        await this.deps.audit.appendWithin(trx, [{ actor, action: 'request.verification_failed', target: { type: 'request', id }, details: { attempts } }]);
      });
      if (attempts >= MAX_CODE_ATTEMPTS) throw new PledgeError('verification_locked', 'too many wrong codes: send a new code');
      throw new PledgeError('verification_code_invalid', 'the code is not right', { details: { attemptsLeft: MAX_CODE_ATTEMPTS - attempts } });
    }
    return this.markVerified(actor, row, 'email_code', undefined);
  }

  private async markVerified(actor: Actor, row: RequestsTable, method: VerificationMethod, reason: string | undefined): Promise<RequestView> {
    const stamp = this.now().toISOString();
    const changed = await this.db.transaction().execute(async (trx) => {
      const ok = await store.update(trx, row.id, { status: 'pending', verification: method, verified_at: stamp, code_hash: null, code_expires_at: null, updated_at: stamp }, ['identity_unverified']);
      if (ok) {
        await this.deps.audit.appendWithin(trx, [
          { actor, action: 'request.verified', target: { type: 'request', id: row.id }, details: { method, from: 'identity_unverified', to: 'pending', ...(reason ? { reason: reason.slice(0, 500) } : {}) } },
        ]);
      }
      return ok;
    });
    if (!changed) throw this.invalidTransition((await this.require(row.id)).status, 'pending');
    const updated = await this.require(row.id);
    await this.deps.notifier.notify(this.notice(updated), 'verified', undefined);
    return this.view(updated);
  }

  /** A new code (the old one stops working); a limited number per request. */
  async resend(actor: Actor, id: string): Promise<RequestView> {
    const row = await this.require(id);
    if (row.status !== 'identity_unverified') throw this.invalidTransition(row.status, 'pending');
    const email = this.identitiesOf(row).find((identity) => identity.kind === 'email');
    if (!email) throw new PledgeError('verification_code_invalid', 'the request has no email address to send a code to; verify it by hand', { details: { attemptsLeft: 0 } });
    if (row.code_sends >= MAX_CODE_SENDS) throw new PledgeError('verification_resend_limit', `at most ${MAX_CODE_SENDS} codes are sent for one request; verify it by hand`);
    const now = this.now();
    const code = this.newCode();
    const sends = row.code_sends + 1;
    await this.db.transaction().execute(async (trx) => {
      await store.update(trx, id, { code_hash: this.codeHash(id, code), code_expires_at: new Date(now.getTime() + VERIFICATION_CODE_TTL_MS).toISOString(), code_attempts: 0, code_sends: sends, updated_at: now.toISOString() }, ['identity_unverified']);
      await this.deps.audit.appendWithin(trx, [{ actor, action: 'request.code_sent', target: { type: 'request', id }, details: { sends } }]);
    });
    await this.deps.notifier.sendVerificationCode(this.notice(row), code, email.value);
    return this.view(await this.require(id));
  }

  /** Staff vouch for the person's identity (a signed letter, a call back…); the reason is audited. */
  async overrideVerification(actor: Actor, id: string, reason: string): Promise<RequestView> {
    const clean = requireReason(reason);
    const row = await this.require(id);
    if (row.status !== 'identity_unverified') throw this.invalidTransition(row.status, 'pending');
    return this.markVerified(actor, row, 'staff_override', clean);
  }

  // --- decisions -------------------------------------------------------------------------------

  private invalidTransition(from: RequestStatus, to: RequestStatus): PledgeError {
    return new PledgeError('invalid_request_transition', `a request that is ${from} cannot become ${to}`, { details: { from, to, allowed: [...TRANSITIONS[from]] } });
  }

  /** Moves a request from its current status to `to`, audited in the same transaction. */
  private async transition(actor: Actor, id: string, to: RequestStatus, changes: Partial<RequestsTable> = {}, audit: Record<string, AuditDetailValue> = {}): Promise<RequestsTable> {
    const row = await this.require(id);
    if (!canTransition(row.status, to)) throw this.invalidTransition(row.status, to);
    const stamp = this.now().toISOString();
    const ok = await this.db.transaction().execute(async (trx) => {
      const changed = await store.update(trx, id, { ...changes, status: to, updated_at: stamp }, [row.status]);
      if (changed) await this.deps.audit.appendWithin(trx, [{ actor, action: `request.${to}`, target: { type: 'request', id }, details: { from: row.status, to, ...audit } }]);
      return changed;
    });
    if (!ok) throw this.invalidTransition((await this.require(id)).status, to);
    return this.require(id);
  }

  async approve(actor: Actor, id: string): Promise<RequestView> {
    const row = await this.transition(actor, id, 'approved');
    await this.deps.notifier.notify(this.notice(row), 'approved', undefined);
    return this.view(row);
  }

  async deny(actor: Actor, id: string, reason: string): Promise<RequestView> {
    const clean = requireReason(reason);
    const row = await this.transition(actor, id, 'denied', { decision_reason: clean, completed_at: this.now().toISOString() }, { reason: clean.slice(0, 500) });
    await this.deps.notifier.notify(this.notice(row), 'denied', this.personAddress(row));
    return this.view(row);
  }

  async cancel(actor: Actor, id: string, reason: string): Promise<RequestView> {
    const clean = requireReason(reason);
    const row = await this.transition(actor, id, 'canceled', { decision_reason: clean, completed_at: this.now().toISOString() }, { reason: clean.slice(0, 500) });
    await this.deps.notifier.notify(this.notice(row), 'canceled', this.personAddress(row));
    return this.view(row);
  }

  private personAddress(row: RequestsTable): string | undefined {
    return this.identitiesOf(row).find((identity) => identity.kind === 'email')?.value;
  }

  /** Takes the extra time the policy allows for this right, once, with a reason. */
  async extend(actor: Actor, id: string, reason: string | undefined): Promise<RequestView> {
    const row = await this.require(id);
    const right = this.right(row.type);
    if (!right.extension) throw new PledgeError('extension_not_allowed', `the policy allows no extension for ${row.type} requests`);
    if (row.extended_due_at) throw new PledgeError('extension_not_allowed', 'the deadline of this request was already extended');
    if (!OPEN_STATUSES.includes(row.status)) throw new PledgeError('extension_not_allowed', `a request that is ${row.status} has no deadline left to extend`);
    const clean = reason?.trim() ?? '';
    if ((right.extension.reason_required ?? true) && !clean) throw new PledgeError('reason_required', 'say why the deadline is extended; the person is told');
    const extended = this.calendar.extend(new Date(row.due_at), parseDeadline(right.extension.deadline)!).toISOString();
    const stamp = this.now().toISOString();
    await this.db.transaction().execute(async (trx) => {
      await store.update(trx, id, { extended_due_at: extended, extension_reason: clean || null, updated_at: stamp });
      await this.deps.audit.appendWithin(trx, [{ actor, action: 'request.extended', target: { type: 'request', id }, details: { dueAt: row.due_at, extendedDueAt: extended, ...(clean ? { reason: clean.slice(0, 500) } : {}) } }]);
    });
    const updated = await this.require(id);
    await this.deps.notifier.notify(this.notice(updated), 'extended', this.personAddress(updated));
    return this.view(updated);
  }

  // --- execution -------------------------------------------------------------------------------

  private datastoresFor(type: RightType): string[] {
    // Objections and withdrawals concern how Pledge itself uses data: the vault only.
    return type === 'objection' || type === 'withdraw_consent' ? [VAULT] : this.deps.systems.ids();
  }

  /** Without named purposes: every consent-based purpose (withdrawal) or every legitimate-interest one (objection). */
  private defaultPurposes(type: 'objection' | 'withdraw_consent'): string[] {
    const bases = type === 'withdraw_consent' ? ['consent'] : ['legitimate_interest', 'public_task'];
    return this.deps.policy.document.purposes.filter((purpose) => bases.includes(purpose.legal_basis)).map((purpose) => purpose.id);
  }

  /**
   * Starts (or, after a failure, resumes) execution: one task per datastore, one durable job per
   * unfinished task. Tasks already done are not run again.
   */
  async run(actor: Actor, id: string): Promise<RequestView> {
    const row = await this.require(id);
    if (!canTransition(row.status, 'in_progress')) throw this.invalidTransition(row.status, 'in_progress');
    const now = this.now();
    const stamp = now.toISOString();
    const runNumber = row.run + 1;
    const ok = await this.db.transaction().execute(async (trx) => {
      const changed = await store.update(trx, id, { status: 'in_progress', run: runNumber, failure: null, updated_at: stamp }, [row.status]);
      if (!changed) return false;
      const existing = new Map((await store.tasksOf(trx, id)).map((task) => [task.datastore, task]));
      const fresh: RequestTasksTable[] = [];
      for (const datastore of this.datastoresFor(row.type)) {
        if (!existing.has(datastore)) fresh.push({ id: newId('tsk', now.getTime()), request_id: id, datastore, state: 'pending', attempts: 0, output: null, summary: null, last_error: null, created_at: stamp, updated_at: stamp, completed_at: null });
      }
      await store.insertTasks(trx, fresh);
      const unfinished = [...[...existing.values()].filter((task) => task.state !== 'done'), ...fresh];
      for (const task of unfinished) {
        if (task.state === 'failed') await store.updateTask(trx, task.id, { state: 'pending', updated_at: stamp });
        await this.deps.jobs.enqueue(trx, { kind: TASK_JOB, payload: { task: task.id, run: runNumber }, dedupeKey: `${TASK_JOB}:${task.id}:${runNumber}` });
      }
      if (unfinished.length === 0) await this.deps.jobs.enqueue(trx, { kind: FINALIZE_JOB, payload: { request: id, run: runNumber }, dedupeKey: `${FINALIZE_JOB}:${id}:${runNumber}` });
      await this.deps.audit.appendWithin(trx, [
        { actor, action: 'request.in_progress', target: { type: 'request', id }, details: { from: row.status, to: 'in_progress', run: runNumber, datastores: unfinished.map((task) => task.datastore) } },
      ]);
      return true;
    });
    if (!ok) throw this.invalidTransition((await this.require(id)).status, 'in_progress');
    return this.view(await this.require(id));
  }

  private withTimeout<T>(promise: Promise<T>, datastore: string): Promise<T> {
    const ms = this.deps.taskTimeoutMs ?? DEFAULT_TASK_TIMEOUT_MS;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new PledgeError('datastore_unavailable', `datastore ${datastore} did not answer within ${ms} ms`)), ms);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }

  /** One datastore's part of a request (a job; may run again after a crash, so it is idempotent). */
  private async runTask(job: Job): Promise<void> {
    const task = await store.getTask(this.db, String(job.payload.task));
    if (!task || task.state === 'done') return;
    const row = await this.require(task.request_id);
    // Canceled meanwhile, or superseded by a newer run.
    if (row.status !== 'in_progress' || row.run !== Number(job.payload.run)) return;
    const handler = this.deps.systems.get(task.datastore);
    if (!handler) throw new PledgeError('datastore_unavailable', `datastore ${task.datastore} is not configured`);
    const identities = this.identitiesOf(row);
    const context = { actor: SYSTEM, requestId: row.id };
    await store.updateTask(this.db, task.id, { attempts: task.attempts + 1, updated_at: this.now().toISOString() });
    let output: unknown;
    let summary: Record<string, unknown>;
    try {
      switch (row.type) {
        case 'access':
        case 'portability': {
          const rows: FoundRow[] = [];
          const found = await this.withTimeout(handler.find(identities, (found) => void rows.push(found), context), task.datastore);
          output = rows;
          summary = { rows: found.rows, categories: [...new Set(rows.flatMap((found) => found.fields.map((field) => field.category)))].sort() };
          break;
        }
        case 'erasure': {
          const result = await this.withTimeout(handler.erase(identities, { ...context, dryRun: false }), task.datastore);
          output = result;
          summary = erasureSummary(result);
          break;
        }
        case 'correction': {
          const result = await this.withTimeout(handler.correct(identities, this.detailsOf(row).corrections ?? {}, context), task.datastore);
          output = result;
          summary = { changedRows: result.changed.length, fields: [...new Set(result.changed.flatMap((change) => change.fields))].sort(), notHeld: result.notHeld };
          break;
        }
        case 'restriction': {
          const result = handler.restrict ? await this.withTimeout(handler.restrict(identities, context), task.datastore) : undefined;
          output = result ?? null;
          summary = result ? { restricted: result.restricted } : { supported: false };
          break;
        }
        case 'objection':
        case 'withdraw_consent': {
          const purposes = this.detailsOf(row).purposes ?? this.defaultPurposes(row.type);
          const result = handler.withdraw ? await this.withTimeout(handler.withdraw(identities, purposes, { ...context, type: row.type }), task.datastore) : { subjects: 0, applied: false };
          output = null;
          // No subject count: it would tell whether the person is known.
          summary = { purposes, applied: result.applied };
          break;
        }
      }
    } catch (error) {
      const code = isPledgeError(error) ? error.code : 'datastore_unavailable';
      await store.updateTask(this.db, task.id, { last_error: code, updated_at: this.now().toISOString() });
      throw error;
    }
    const stamp = this.now().toISOString();
    await this.db.transaction().execute(async (trx) => {
      // Taking the request row first serialises the last two tasks of a request finishing at
      // once on two processes: exactly one of them sees no unfinished task left.
      await store.update(trx, row.id, { updated_at: stamp });
      await store.updateTask(trx, task.id, { state: 'done', output: output === null ? null : this.sealJson(output, `task:${task.id}`), summary: JSON.stringify(summary), last_error: null, updated_at: stamp, completed_at: stamp });
      await this.deps.audit.appendWithin(trx, [{ actor: SYSTEM, action: 'request.task_completed', target: { type: 'request', id: row.id }, details: { task: task.id, datastore: task.datastore, type: row.type } }]);
      if ((await store.countUnfinishedTasks(trx, row.id)) === 0) {
        await this.deps.jobs.enqueue(trx, { kind: FINALIZE_JOB, payload: { request: row.id, run: row.run }, dedupeKey: `${FINALIZE_JOB}:${row.id}:${row.run}` });
      }
    });
  }

  private async taskExhausted(job: Job, code: string): Promise<void> {
    const task = await store.getTask(this.db, String(job.payload.task));
    if (!task || task.state === 'done') return;
    const row = await this.require(task.request_id);
    const stamp = this.now().toISOString();
    await this.db.transaction().execute(async (trx) => {
      await store.updateTask(trx, task.id, { state: 'failed', last_error: code, updated_at: stamp });
      const changed = await store.update(trx, row.id, { status: 'failed', failure: `${task.datastore}: ${code}`, updated_at: stamp }, ['in_progress']);
      if (changed) await this.deps.audit.appendWithin(trx, [{ actor: SYSTEM, action: 'request.failed', target: { type: 'request', id: row.id }, details: { from: 'in_progress', to: 'failed', datastore: task.datastore, code } }]);
    });
    await this.deps.notifier.notify(this.notice(await this.require(row.id)), 'failed', undefined);
  }

  private async finalizeExhausted(job: Job, code: string): Promise<void> {
    const id = String(job.payload.request);
    const stamp = this.now().toISOString();
    await this.db.transaction().execute(async (trx) => {
      const changed = await store.update(trx, id, { status: 'failed', failure: `package: ${code}`, updated_at: stamp }, ['in_progress']);
      if (changed) await this.deps.audit.appendWithin(trx, [{ actor: SYSTEM, action: 'request.failed', target: { type: 'request', id }, details: { from: 'in_progress', to: 'failed', code } }]);
    });
  }

  private packageExpiry(now: Date): Date {
    return addDuration(now, parseDuration(this.deps.policy.document.rights.packages?.expire_after ?? DEFAULT_PACKAGE_EXPIRY)!);
  }

  /** All tasks are done: build the package (access, portability) and complete the request. */
  private async finalize(job: Job): Promise<void> {
    const row = await this.require(String(job.payload.request));
    if (row.status !== 'in_progress' || row.run !== Number(job.payload.run)) return;
    const tasks = await store.tasksOf(this.db, row.id);
    if (tasks.some((task) => task.state !== 'done')) return;
    const now = this.now();
    const stamp = now.toISOString();
    const summaries = Object.fromEntries(tasks.map((task) => [task.datastore, task.summary ? (JSON.parse(task.summary) as unknown) : null]));
    const result: Record<string, unknown> = { datastores: summaries };
    const packages: Array<{ format: PackageFormat; content: string; bytes: number; id: string }> = [];
    if (row.type === 'access' || row.type === 'portability') {
      const rows = tasks.flatMap((task) => (task.output ? this.openJson<FoundRow[]>(task.output, `task:${task.id}`) : []));
      const built = buildPackage({ requestId: row.id, type: row.type, generatedAt: stamp, organization: this.deps.policy.document.organization.name, rows }, this.deps.policy);
      for (const format of Object.keys(built) as PackageFormat[]) {
        const id = newId('pkg', now.getTime());
        packages.push({ format, id, bytes: built[format].byteLength, content: seal(this.sealKey, built[format], `package:${row.id}:${format}`) });
      }
      result.rows = rows.length;
    }
    const expires = this.packageExpiry(now).toISOString();
    const completed = await this.db.transaction().execute(async (trx) => {
      const changed = await store.update(trx, row.id, { status: 'completed', result: JSON.stringify(result), completed_at: stamp, updated_at: stamp }, ['in_progress']);
      if (!changed) return false;
      for (const item of packages) await store.upsertPackage(trx, { id: item.id, request_id: row.id, format: item.format, content: item.content, bytes: item.bytes, created_at: stamp, expires_at: expires, deleted_at: null });
      // Found data was needed only to build the package: it does not outlive the request.
      for (const task of tasks) await store.updateTask(trx, task.id, { output: null });
      await this.deps.audit.appendWithin(trx, [
        { actor: SYSTEM, action: 'request.completed', target: { type: 'request', id: row.id }, details: { from: 'in_progress', to: 'completed', datastores: tasks.map((task) => task.datastore), packages: packages.map((item) => item.format) } },
      ]);
      return true;
    });
    if (!completed) return;
    const updated = await this.require(row.id);
    const links = packages.length > 0 ? await this.links(updated.id) : undefined;
    await this.deps.notifier.notify(this.notice(updated, links), 'completed', this.personAddress(updated));
  }

  // --- dry run ---------------------------------------------------------------------------------

  /** What an erasure would change and keep in every datastore, changing nothing. */
  async dryRun(actor: Actor, id: string): Promise<{ requestId: string; datastores: Record<string, ErasureResult | { error: string }> }> {
    const row = await this.require(id);
    if (row.type !== 'erasure') throw new PledgeError('invalid_request_details', 'a dry run shows what an erasure would change; this request is not an erasure');
    const identities = this.identitiesOf(row);
    const datastores: Record<string, ErasureResult | { error: string }> = {};
    for (const datastore of this.deps.systems.ids()) {
      try {
        datastores[datastore] = await this.withTimeout(this.deps.systems.get(datastore)!.erase(identities, { actor, requestId: id, dryRun: true }), datastore);
      } catch (error) {
        datastores[datastore] = { error: isPledgeError(error) ? error.code : 'datastore_unavailable' };
      }
    }
    await this.deps.audit.record([{ actor, action: 'request.dry_run', target: { type: 'request', id }, details: { datastores: Object.keys(datastores) } }]);
    return { requestId: id, datastores };
  }

  // --- packages --------------------------------------------------------------------------------

  private sign(packageId: string, expires: number): string {
    return createHmac('sha256', this.linkKey).update(`${packageId}.${expires}`).digest('base64url');
  }

  /** Signed, expiring download links of a completed request's package, by format. */
  async links(id: string, actor?: Actor): Promise<Record<string, string>> {
    const row = await this.require(id);
    const packages = (await store.packagesOf(this.db, id)).filter((item) => item.deleted_at === null);
    if (row.status !== 'completed' || packages.length === 0) throw new PledgeError('package_not_available', 'this request has no package to download (not an access or portability request, not completed, or deleted after its period)');
    const now = this.now().getTime();
    const links: Record<string, string> = {};
    for (const item of packages) {
      const expires = Math.min(Date.parse(item.expires_at), now + LINK_TTL_MS);
      links[item.format] = `${this.deps.publicUrl}/v1/packages/${item.id}.${expires}.${this.sign(item.id, expires)}`;
    }
    if (actor) await this.deps.audit.record([{ actor, action: 'request.package_links', target: { type: 'request', id }, details: { formats: Object.keys(links) } }]);
    return links;
  }

  /** The package behind a signed link; the same refusal for a forged, expired or deleted one. */
  async download(token: string): Promise<{ contentType: string; filename: string; body: Buffer }> {
    const refused = () => new PledgeError('package_not_available', 'this download link is not valid, has expired, or its package was deleted');
    const match = /^(pkg_[0-9a-hjkmnp-tv-z]{26})\.(\d{1,15})\.([A-Za-z0-9_-]{43})$/.exec(token);
    if (!match) throw refused();
    const [, packageId, expiresText, signature] = match as unknown as [string, string, string, string];
    const expires = Number(expiresText);
    if (!safeEqual(this.sign(packageId, expires), signature) || expires < this.now().getTime()) throw refused();
    const item = await store.getPackage(this.db, packageId);
    if (!item || !item.content || item.deleted_at) throw refused();
    const body = open(this.sealKey, item.content, `package:${item.request_id}:${item.format}`);
    await this.deps.audit.record([{ actor: { type: 'system', id: 'signed_link' }, action: 'request.package_downloaded', target: { type: 'request', id: item.request_id }, details: { format: item.format } }]);
    const format = PACKAGE_FORMATS[item.format];
    return { contentType: format.contentType, filename: `${item.request_id}.${format.extension}`, body };
  }

  // --- sweep -----------------------------------------------------------------------------------

  /** Reminds staff of deadlines coming up and deletes packages past their period. */
  async sweep(): Promise<{ reminded: number; packagesDeleted: number }> {
    const now = this.now();
    const stamp = now.toISOString();
    const due = await store.list(this.db, { remindBefore: new Date(now.getTime() + REMINDER_WINDOW_MS).toISOString(), limit: 500 });
    let reminded = 0;
    for (const row of due) {
      const changed = await this.db.transaction().execute(async (trx) => {
        const ok = await store.update(trx, row.id, { reminded_at: stamp }, OPEN_STATUSES);
        if (ok) await this.deps.audit.appendWithin(trx, [{ actor: SYSTEM, action: 'request.reminded', target: { type: 'request', id: row.id }, details: { dueAt: this.effectiveDue(row), overdue: this.effectiveDue(row) < stamp } }]);
        return ok;
      });
      if (changed) {
        reminded++;
        await this.deps.notifier.notify(this.notice(row), 'deadline_approaching', undefined);
      }
    }
    const expired = await store.expiredPackages(this.db, stamp);
    for (const item of expired) {
      await this.db.transaction().execute(async (trx) => {
        await store.deletePackage(trx, item.id, stamp);
        await this.deps.audit.appendWithin(trx, [{ actor: SYSTEM, action: 'request.package_deleted', target: { type: 'request', id: item.request_id }, details: { format: item.format } }]);
      });
    }
    return { reminded, packagesDeleted: expired.length };
  }
}

function requireReason(reason: string | undefined): string {
  const clean = reason?.trim() ?? '';
  if (!clean) throw new PledgeError('reason_required', 'give the reason in words; it is recorded in the audit log');
  return clean;
}

function erasureSummary(result: ErasureResult): Record<string, unknown> {
  return {
    changedRows: result.changed.length,
    deletedRows: result.changed.filter((change) => change.action === 'delete').length,
    keptRows: result.kept.length,
    kept: result.kept.map((kept) => ({ collection: kept.collection, fields: kept.fields, exception: kept.exception })),
  };
}
