import type { Kysely, Transaction } from 'kysely';
import type { AuditEvent, AuditWriter } from '../audit/audit.types.js';
import type { Clock } from '../core/clock.js';
import type { Tables } from '../core/db.tables.js';
import type { Database } from '../core/db.js';
import { PledgeError } from '../core/errors.js';
import { isId, newId, uuidV7 } from '../core/ids.js';
import { effectiveChoice, type Policy } from '../policy/policy.model.js';
import type { Communication, Purpose, Recipient } from '../policy/policy.schema.js';
import type { Actor } from '../staff/permissions.js';
import type { ConsentDecision, ConsentGate } from '../subjects/consent-gate.js';
import type { ConsentEvidence, Signals } from './consent.evidence.js';
import { buildReceipt, type KantaraReceipt, type ReceiptEntry } from './consent.receipt.js';
import { ConsentStateCache, type RecordedState } from './consent.cache.js';
import { consentStore as store } from './consent.store.js';
import type { ConsentAction, ConsentEventsTable, ConsentReceiptsTable, ConsentSource, ConsentStateTable, ConsentTargetKind } from './consent.tables.js';

/**
 * The consent ledger: every decision a person (or an anonymous visitor) makes about a purpose,
 * a communication topic or a recipient is appended as an event, and the current state — a
 * projection keyed by (holder, target) — answers "may purpose P be used for S now?" with one
 * primary-key read (a purpose that is only sharing reads the holder's rows: see decide).
 * Events, projection, receipt and audit entry are written in one transaction; the state lives
 * in the database only, so every `pledge serve` process sharing it sees a change at once.
 *
 *   await consent.record(actor, { holder: 'sub_…', source: 'banner', choices: [{ purpose: 'marketing', action: 'granted' }] });
 *   await consent.decide('sub_…', 'marketing'); // { allowed: true, … }
 */
/**
 * `withdrawn` is accepted without an earlier grant in the ledger (history imported from another
 * system may not carry the grant); it then refuses the purpose as `denied` would.
 */
export type Decision = 'granted' | 'denied' | 'withdrawn';
export type BodySource = Exclude<ConsentSource, 'gpc' | 'dnt'>;

/** One decision, on exactly one of a purpose, a topic or a recipient. */
export interface ConsentChoice {
  purpose?: string;
  topic?: string;
  recipient?: string;
  action: Decision;
}

export interface RecordInput {
  holder: string;
  source?: BodySource;
  choices: readonly ConsentChoice[];
  evidence?: ConsentEvidence;
}

export interface RecordedEvent {
  id: string;
  kind: ConsentTargetKind;
  target: string;
  action: ConsentAction;
  source: ConsentSource;
}

export interface LedgerEvent extends RecordedEvent {
  policyVersion: string;
  decidedAt: string;
  recordedAt: string;
  receiptId: string;
  mergedFrom: string | null;
  evidence: ConsentEvidence;
}

export interface Recorded {
  holder: string;
  receiptId: string | null;
  events: RecordedEvent[];
}

export interface PurposeState {
  id: string;
  name: string;
  choice: 'opt_in' | 'opt_out' | 'none';
  optional: boolean;
  profiling: boolean;
  allowed: boolean;
  decision: ConsentAction | null;
  source: ConsentSource | null;
  decidedAt: string | null;
}

export interface TopicState {
  id: string;
  name: string;
  kind: Communication['kind'];
  purpose: string;
  optional: boolean;
  subscribed: boolean;
  receives: boolean;
  decision: ConsentAction | null;
  decidedAt: string | null;
}

export interface RecipientState {
  id: string;
  name: string;
  role: Recipient['role'];
  purposes: string[];
  /** The person can opt out of sharing with it (opt_out: true). */
  optional: boolean;
  /** Not refused, and at least one of its purposes allowed now. */
  shares: boolean;
  decision: ConsentAction | null;
  decidedAt: string | null;
}

export interface ConsentOverview {
  holder: string;
  purposes: PurposeState[];
  topics: TopicState[];
  sharing: {
    recipients: RecipientState[];
    /** The affiliates a person can opt out of (what sharingWithAffiliates switches), their purposes, and whether all are refused. */
    affiliates: { recipients: string[]; purposes: string[]; optedOut: boolean };
  };
  profiling: { purposes: string[]; optedOut: boolean };
}

export interface PreferencesInput {
  purposes?: Record<string, boolean>;
  topics?: Record<string, boolean>;
  recipients?: Record<string, boolean>;
  sharingWithAffiliates?: boolean;
  profiling?: boolean;
  source?: BodySource;
  evidence?: ConsentEvidence;
}

export interface HolderDecision extends ConsentDecision {
  holder: string;
  purpose: string;
  decision: ConsentAction | null;
  decidedAt: string | null;
}

/** May data go to a recipient (for a purpose) now; `decision` is the one recorded on the recipient. */
export interface SharingDecision extends ConsentDecision {
  holder: string;
  recipient: string;
  purpose: string | null;
  /** The recipient's purposes for which data may go to it now (none when the person refused it). */
  purposes: string[];
  decision: ConsentAction | null;
  decidedAt: string | null;
}

/** Current states by `kind:target`, as overviewOf and mayShare hold them. */
type StatesByKey = ReadonlyMap<string, Pick<ConsentStateTable, 'action' | 'source' | 'decided_at'>>;

/**
 * Told, inside the transaction that records them, of a subject's explicit opt-ins to mail
 * topics, so the mail side can lift the opt-outs it keeps (its suppression list) in the same
 * commit. Returns the topics whose opt-out it lifted, for the audit entry.
 */
export type MailOptInHandler = (trx: Transaction<Tables>, subjectId: string, topics: readonly string[], at: string) => Promise<string[]>;

export interface ConsentServiceDeps {
  database: Database;
  policy: Policy;
  audit: AuditWriter;
  clock: Clock;
  /** Public address of the server, for the receipts' policyUrl. */
  publicUrl: string;
  /** The vault's metadata of a subject; throws subject_not_found (a domain reaches another through its service). */
  subject(subjectId: string): Promise<{ status: string }>;
  /**
   * The status of each of these subjects that exists, read with `executor` (inside the group
   * commit's transaction). Optional: without it every write checks its holder before it queues.
   */
  subjectStatuses?(executor: Kysely<Tables>, subjectIds: readonly string[]): Promise<Map<string, string>>;
  /**
   * PostgreSQL: SQL selecting (id, status) of the subjects whose id is in `ids` (a text[]
   * expression), so that a group commit can check its holders in the statement that writes it.
   */
  subjectStatusesSql?(ids: string): string;
}

const REFUSALS: ReadonlySet<ConsentAction> = new Set(['denied', 'withdrawn', 'opted_out_by_signal']);
const MAX_CHOICES = 200;

/** A holder's decision about a purpose, as the HTTP check answers it. */
function holderDecision(holder: string, purpose: string, verdict: ConsentDecision, state: { action: ConsentAction; decided_at: string } | undefined): HolderDecision {
  return { holder, purpose, allowed: verdict.allowed, reason: verdict.reason, decision: state?.action ?? null, decidedAt: state?.decided_at ?? null };
}

/** Is this an id a consent holder can have: a subject or an anonymous visitor? */
export function holderKind(holder: string): 'subject' | 'visitor' {
  if (isId(holder, 'sub')) return 'subject';
  if (isId(holder, 'vis')) return 'visitor';
  throw new PledgeError('validation_failed', 'a consent holder is a subject id (sub_…) or a visitor id (vis_…)');
}

/** One request's writes, waiting for the next group commit. */
interface PendingWrite {
  actor: Actor;
  holder: string;
  rows: ConsentEventsTable[];
  receipt: ConsentReceiptsTable;
  auditAction: string;
  auditDetails: Record<string, string> | undefined;
  /** Signal applications: each row is kept only if its (holder, signal, purpose) was not applied yet. */
  signals: Array<{ signal: 'gpc' | 'dnt'; purpose: string; eventId: string }> | undefined;
  /** The subject holder is checked in the batch's transaction (one query for the batch) rather than before queueing. */
  checkHolder?: boolean;
  /** Topics the subject holder explicitly opted in to: the mail side lifts its opt-outs in the same transaction. */
  optIns?: string[];
  resolve(kept: ConsentEventsTable[]): void;
  reject(error: unknown): void;
}

const GROUP_LIMIT = 256;

/** A visitor id is one browser before sign-in: once it is someone, it cannot become someone else. */
const VISITOR_TAKEN = () => new PledgeError('visitor_already_identified', 'this visitor id was already identified as another subject; issue a new visitor id (POST /v1/visitors) for this browser');

const ERASED_HOLDER = () => new PledgeError('subject_erased', 'the subject was erased; no consent can be recorded for it');

/** Why a subject holder with this status (undefined or null: no such subject) takes no choice, if it does not. */
function holderRefusal(status: string | null | undefined): PledgeError | undefined {
  if (status === undefined || status === null) return new PledgeError('subject_not_found', 'no subject has this id');
  return status === 'erased' ? ERASED_HOLDER() : undefined;
}

function notServing(recipientId: string, purposeId: string): ConsentDecision {
  return { allowed: false, reason: `recipient "${recipientId}" does not receive data for purpose "${purposeId}" under the policy` };
}

function settle(write: PendingWrite, outcome: ConsentEventsTable[] | PledgeError): void {
  if (outcome instanceof PledgeError) write.reject(outcome);
  else write.resolve(outcome);
}

export class ConsentService implements ConsentGate {
  private readonly queue: PendingWrite[] = [];
  private flushing = false;
  private mailOptIns: MailOptInHandler | undefined;

  /** PostgreSQL: the states this process read recently, answered behind a fence (consent.cache.ts). */
  private readonly stateCache: ConsentStateCache | undefined;

  constructor(private readonly deps: ConsentServiceDeps) {
    const { database } = deps;
    this.stateCache = database.changes ? new ConsentStateCache(database.changes, (holder, kind, target) => store.stateOf(database.db, holder, kind, target)) : undefined;
  }

  /**
   * One recorded decision. Outside a transaction on PostgreSQL, from the process's memory when a
   * fence says nothing changed it; in a transaction (the outbox's claim), always from it.
   */
  private stateOf(executor: Kysely<Tables>, holder: string, kind: ConsentTargetKind, target: string): Promise<RecordedState | undefined> {
    if (this.stateCache && executor === this.deps.database.db) return this.stateCache.stateOf(holder, kind, target);
    return store.stateOf(executor, holder, kind, target);
  }

  /** Decisions answered from the process's memory since it started (PostgreSQL), for metrics and tests. */
  get cachedDecisions(): number {
    return this.stateCache?.hits ?? 0;
  }

  /** The mail outbox registers here (it is built after the ledger, which it asks in turn). */
  onMailOptIn(handler: MailOptInHandler): void {
    this.mailOptIns = handler;
  }

  /**
   * Group commit: the writes that arrive while a transaction is running are written together in
   * the next one, as multi-row statements with one audit append. Every write takes the audit
   * chain's head anyway, so they could not run side by side; one commit for many choices is
   * what lets a banner's traffic through. Each write was validated before it queued; if the
   * shared transaction fails all the same, each write is retried in a transaction of its own,
   * so one failure never takes its neighbours with it.
   */
  private enqueue(write: Omit<PendingWrite, 'resolve' | 'reject'>): Promise<ConsentEventsTable[]> {
    return new Promise((resolve, reject) => {
      this.queue.push({ ...write, resolve, reject });
      if (!this.flushing) {
        this.flushing = true;
        // Let the requests already under way reach the queue before the batch is taken.
        setImmediate(() => void this.flush());
      }
    });
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    const { db } = this.deps.database;
    try {
      while (this.queue.length > 0) {
        let batch: PendingWrite[] = [];
        let kept: Array<ConsentEventsTable[] | PledgeError> | undefined;
        try {
          if (this.canWriteInOneStatement()) {
            batch = this.queue.splice(0, GROUP_LIMIT);
            kept = await this.writeInOneStatement(batch);
          }
          // The batch is taken once the transaction holds its connection: the writes that
          // queued while it waited for it go in too.
          kept ??= await db.transaction().execute((trx) => {
            if (batch.length === 0) batch = this.queue.splice(0, GROUP_LIMIT);
            return this.writeBatch(trx, batch);
          });
        } catch (error) {
          if (batch.length === 0) {
            // The transaction could not even begin: every queued write fails with it.
            for (const write of this.queue.splice(0, GROUP_LIMIT)) write.reject(error);
            continue;
          }
          if (batch.length === 1) {
            batch[0]!.reject(error);
            continue;
          }
          for (const write of batch) {
            try {
              settle(write, (await db.transaction().execute((trx) => this.writeBatch(trx, [write])))[0]!);
            } catch (single) {
              write.reject(single);
            }
          }
          continue;
        }
        batch.forEach((write, index) => settle(write, kept[index]!));
      }
    } finally {
      this.flushing = false;
    }
  }

  private canWriteInOneStatement(): boolean {
    return this.deps.database.dialect === 'postgres' && this.deps.subjectStatusesSql !== undefined && this.deps.audit.statementAppend !== undefined;
  }

  /**
   * PostgreSQL: the group as one statement committed on its own, its audit entries and the
   * holders' check included (consentStore.writeDecisionsWithAudit), so the audit chain's head
   * — which every append in every process waits for — is held only while that statement runs,
   * not from a transaction's append across round trips to its commit. A holder found unknown
   * or erased is refused and the rest written again without it (nothing was written).
   * Undefined, with nothing written, where the path is not available: signals to apply (each
   * is a conditional insert), or the audit not yet checked against this database.
   */
  private async writeInOneStatement(batch: readonly PendingWrite[]): Promise<Array<ConsentEventsTable[] | PledgeError> | undefined> {
    const statusesSql = this.deps.subjectStatusesSql!;
    // Signals are conditional inserts, and opt-ins to mail run the outbox's own writes: both need a transaction.
    if (batch.some((write) => write.signals || write.optIns)) return undefined;
    const outcomes = new Map<PendingWrite, ConsentEventsTable[] | PledgeError>();
    for (const write of batch) if (write.rows.length === 0) outcomes.set(write, []);
    let writes = batch.filter((write) => !outcomes.has(write));
    while (writes.length > 0) {
      const append = this.deps.audit.statementAppend!(writes.map((write) => this.auditEvent(write.actor, write.holder, write.auditAction, write.rows, write.receipt.id, write.auditDetails)));
      if (!append) return undefined;
      const events = writes.flatMap((write) => write.rows);
      const holders = [...new Set(writes.filter((write) => write.checkHolder).map((write) => write.holder))];
      const { chain, refused } = await store.writeDecisionsWithAudit(this.deps.database.db, append, statusesSql, {
        events,
        states: events.map((row) => this.stateRow(row)),
        receipts: writes.map((write) => write.receipt),
        holders,
      });
      // Nothing was written: no chain means no audit head, a database not migrated.
      if (refused.size === 0 && chain.length === 0) throw new PledgeError('internal', 'the audit chain has no head row (was migration 0003-audit applied?)');
      if (refused.size === 0) {
        // Committed: a failure from here on must not send the writes round again.
        const settled = await append.settle(chain).then(
          () => undefined,
          (error: unknown) => (error instanceof PledgeError ? error : new PledgeError('internal', 'the consent choices were stored, but their audit checkpoints were not', { cause: error })),
        );
        for (const write of writes) outcomes.set(write, settled ?? write.rows);
        break;
      }
      for (const write of writes) {
        if (!write.checkHolder || !refused.has(write.holder)) continue;
        // The statement refuses only unknown and erased subjects.
        outcomes.set(write, holderRefusal(refused.get(write.holder))!);
      }
      writes = writes.filter((write) => !outcomes.has(write));
    }
    return batch.map((write) => outcomes.get(write)!);
  }

  private async writeBatch(trx: Transaction<Tables>, batch: readonly PendingWrite[]): Promise<Array<ConsentEventsTable[] | PledgeError>> {
    const refused = await this.refusedHolders(trx, batch);
    const refusals = batch.map((write) => (write.checkHolder ? refused.get(write.holder) : undefined));
    const kept: ConsentEventsTable[][] = [];
    for (const [index, write] of batch.entries()) {
      if (refusals[index]) {
        kept.push([]);
        continue;
      }
      if (!write.signals) {
        kept.push(write.rows);
        continue;
      }
      // Another request (or process) may have applied the same signal a moment ago: its event stands, ours is dropped.
      const applied = new Set<string>();
      for (const signal of write.signals) {
        if (await store.insertSignal(trx, { holder: write.holder, signal: signal.signal, purpose: signal.purpose, event_id: signal.eventId, applied_at: write.receipt.issued_at })) applied.add(signal.eventId);
      }
      kept.push(write.rows.filter((row) => applied.has(row.id)));
    }
    const outcome = batch.map((_write, index) => refusals[index] ?? kept[index]!);
    const rows = kept.flat();
    if (rows.length === 0) return outcome;
    const written = batch.filter((_write, index) => kept[index]!.length > 0);
    await store.writeDecisions(trx, rows, rows.map((row) => this.stateRow(row)), written.map((write) => write.receipt));
    const lifted = new Map<PendingWrite, string[]>();
    for (const [index, write] of batch.entries()) {
      if (!write.optIns || !this.mailOptIns || kept[index]!.length === 0) continue;
      const topics = await this.mailOptIns(trx, write.holder, write.optIns, write.receipt.issued_at);
      if (topics.length > 0) lifted.set(write, topics);
    }
    await this.deps.audit.appendWithin(
      trx,
      batch.flatMap((write, index) => {
        if (kept[index]!.length === 0) return [];
        const event = this.auditEvent(write.actor, write.holder, write.auditAction, kept[index]!, write.receipt.id, write.auditDetails);
        // The opt-in also ended an unsubscribe (and the address's suppression) for these topics.
        const topics = lifted.get(write);
        if (topics) event.details = { ...event.details, optOutsLifted: topics.map((topic) => `topic:${topic}`) };
        return [event];
      }),
    );
    return outcome;
  }

  /** Subject holders of the batch that may take no choice, with the reason: unknown, or erased. */
  private async refusedHolders(trx: Transaction<Tables>, batch: readonly PendingWrite[]): Promise<Map<string, PledgeError>> {
    const refused = new Map<string, PledgeError>();
    const holders = [...new Set(batch.filter((write) => write.checkHolder).map((write) => write.holder))];
    if (holders.length === 0 || !this.deps.subjectStatuses) return refused;
    const statuses = await this.deps.subjectStatuses(trx, holders);
    for (const holder of holders) {
      const refusal = holderRefusal(statuses.get(holder));
      if (refusal) refused.set(holder, refusal);
    }
    return refused;
  }

  /** Choices are recorded for subjects that exist and were not erased (a closed account may still withdraw). */
  private async requireSubject(subjectId: string): Promise<void> {
    const subject = await this.deps.subject(subjectId);
    if (subject.status === 'erased') throw ERASED_HOLDER();
  }

  private get policy(): Policy {
    return this.deps.policy;
  }

  private topic(topicId: string): Communication {
    const topic = this.policy.document.communications?.find((item) => item.id === topicId);
    if (!topic) throw new PledgeError('unknown_topic', `communication topic "${topicId}" is not declared under communications in the policy`);
    return topic;
  }

  private purpose(purposeId: string): Purpose {
    const purpose = this.policy.purposes.get(purposeId);
    if (!purpose) throw new PledgeError('unknown_purpose', `purpose "${purposeId}" is not declared in the policy`);
    return purpose;
  }

  /** Necessary purposes and legal obligations leave the person no choice to record. */
  private isOptional(purpose: Purpose): boolean {
    return effectiveChoice(purpose) !== 'none' && purpose.legal_basis !== 'legal_obligation';
  }

  /** Only marketing mail can be refused; service mail, policy changes and request notices are always sent. */
  private topicIsOptional(topic: Communication): boolean {
    return topic.kind === 'marketing';
  }

  private async requireHolder(holder: string): Promise<'subject' | 'visitor'> {
    const kind = holderKind(holder);
    if (kind === 'subject') await this.requireSubject(holder);
    return kind;
  }

  private recipient(recipientId: string): Recipient {
    const recipient = this.policy.recipients.get(recipientId);
    if (!recipient) throw new PledgeError('unknown_recipient', `recipient "${recipientId}" is not declared under recipients in the policy`);
    return recipient;
  }

  /** The affiliates the person may opt out of sharing with (what sharingWithAffiliates switches). */
  private optOutAffiliates(): Recipient[] {
    return (this.policy.document.recipients ?? []).filter((recipient) => recipient.role === 'affiliate' && recipient.opt_out === true);
  }

  /**
   * Only a recipient the policy lets people opt out of can be refused: as for purposes, a choice
   * recorded while it could be refused no longer counts once the policy takes the choice away.
   */
  private recipientRefused(recipient: Recipient, state: { action: ConsentAction } | undefined): boolean {
    return recipient.opt_out === true && state !== undefined && REFUSALS.has(state.action);
  }

  private recipientRefusal(recipientId: string): ConsentDecision {
    return { allowed: false, reason: `the person opted out of sharing with recipient "${recipientId}"` };
  }

  /**
   * A purpose that is only sharing (disclosure: true) whose every recipient can be refused: the
   * one kind of purpose whose decision reads the recipients' states too.
   */
  private sharingCanBeRefused(purpose: Purpose): boolean {
    if (!purpose.disclosure) return false;
    const recipients = this.policy.recipientsServing(purpose.id);
    return recipients.length > 0 && recipients.every((recipient) => recipient.opt_out === true);
  }

  private async statesByKey(executor: Kysely<Tables>, holder: string): Promise<StatesByKey> {
    return new Map((await store.statesOf(executor, holder)).map((row) => [`${row.target_kind}:${row.target}`, row]));
  }

  profilingPurposes(): string[] {
    return this.policy.document.purposes.filter((purpose) => purpose.profiling && this.isOptional(purpose)).map((purpose) => purpose.id);
  }

  // --- decisions -------------------------------------------------------------------------------

  private verdict(purpose: Purpose, state: { action: ConsentAction } | undefined): ConsentDecision {
    if (!this.isOptional(purpose)) return { allowed: true, reason: purpose.legal_basis === 'legal_obligation' ? 'required by a legal obligation' : 'necessary for this purpose' };
    if (state) {
      if (state.action === 'granted') return { allowed: true, reason: 'the person consented' };
      if (state.action === 'opted_out_by_signal') return { allowed: false, reason: `the person opted out of purpose "${purpose.id}" with a browser privacy signal` };
      return { allowed: false, reason: `the person ${state.action === 'denied' ? 'refused' : 'withdrew consent to'} purpose "${purpose.id}"` };
    }
    if (effectiveChoice(purpose) === 'opt_in') return { allowed: false, reason: `purpose "${purpose.id}" needs the person's consent, and none is recorded` };
    return { allowed: true, reason: 'allowed until the person objects' };
  }

  /**
   * A purpose's decision from a holder's states: its own, and — for a purpose that is only
   * sharing — refused once the person opted out of every recipient serving it, since nothing
   * of it is left to do (a recipient that cannot be refused keeps it going).
   */
  private purposeVerdict(purpose: Purpose, states: StatesByKey): ConsentDecision {
    const verdict = this.verdict(purpose, states.get(`purpose:${purpose.id}`));
    if (!verdict.allowed || !this.sharingCanBeRefused(purpose)) return verdict;
    const recipients = this.policy.recipientsServing(purpose.id);
    if (!recipients.every((recipient) => this.recipientRefused(recipient, states.get(`recipient:${recipient.id}`)))) return verdict;
    const ids = recipients.map((recipient) => `"${recipient.id}"`).join(', ');
    return { allowed: false, reason: `purpose "${purpose.id}" is only sharing with its recipients, and the person opted out of sharing with ${recipients.length === 1 ? `recipient ${ids}` : `every one of them (${ids})`}` };
  }

  /**
   * The vault's seam (ConsentGate): one primary-key read, the policy default when nothing is
   * recorded. A purpose that is only sharing reads the holder's states, its recipients' included.
   */
  async decide(subjectId: string, purposeId: string, executor: Kysely<Tables> = this.deps.database.db): Promise<ConsentDecision> {
    const purpose = this.policy.purposes.get(purposeId);
    if (!purpose) return { allowed: false, reason: `purpose "${purposeId}" is not declared in the policy` };
    if (this.sharingCanBeRefused(purpose)) return this.purposeVerdict(purpose, await this.statesByKey(executor, subjectId));
    if (!this.isOptional(purpose)) return this.verdict(purpose, undefined);
    return this.verdict(purpose, await this.stateOf(executor, subjectId, 'purpose', purposeId));
  }

  /**
   * The vault's seam for a read on behalf of a recipient: may data go to it for this purpose
   * now? The purpose's decision and the recipient's come in one read. A recipient that does not
   * serve the purpose is refused; one that does and is not refused keeps a purpose that is only
   * sharing going, so the other recipients' states need not be read.
   */
  async decideSharing(subjectId: string, purposeId: string, recipientId: string, executor: Kysely<Tables> = this.deps.database.db): Promise<ConsentDecision> {
    const purpose = this.policy.purposes.get(purposeId);
    if (!purpose) return { allowed: false, reason: `purpose "${purposeId}" is not declared in the policy` };
    const recipient = this.policy.recipients.get(recipientId);
    if (!recipient) return { allowed: false, reason: `recipient "${recipientId}" is not declared in the policy` };
    if (!recipient.purposes.includes(purposeId)) return notServing(recipientId, purposeId);
    if (!recipient.opt_out && !this.isOptional(purpose)) return this.verdict(purpose, undefined);
    const states = await store.purposeAndRecipientStates(executor, subjectId, purposeId, recipientId);
    if (this.recipientRefused(recipient, states.recipient)) return this.recipientRefusal(recipientId);
    return this.verdict(purpose, states.purpose);
  }

  /**
   * The disclosure check: may data go to this recipient now — for this purpose, or (without
   * one) for any of its purposes? Allowed when the person has not refused the recipient and the
   * purpose is one it serves and is allowed (without a purpose: at least one of its purposes
   * is allowed). Not audited, like the purpose decision: it answers yes or no. An unknown
   * holder is reported only when nothing is recorded for it.
   *
   *   await consent.mayShare('sub_…', 'sister_shops', 'affiliate_sharing'); // { allowed: false, reason: 'the person opted out of sharing with recipient "sister_shops"', purposes: [], … }
   */
  async mayShare(holder: string, recipientId: string, purposeId?: string): Promise<SharingDecision> {
    const kind = holderKind(holder);
    const recipient = this.recipient(recipientId);
    const purpose = purposeId === undefined ? undefined : this.purpose(purposeId);
    const states = await this.statesByKey(this.deps.database.db, holder);
    if (states.size === 0 && kind === 'subject') await this.requireSubject(holder);
    const state = states.get(`recipient:${recipientId}`);
    const refused = this.recipientRefused(recipient, state);
    const purposes = refused ? [] : recipient.purposes.filter((id) => this.purposeVerdict(this.purpose(id), states).allowed);
    let answer: ConsentDecision;
    if (refused) answer = this.recipientRefusal(recipientId);
    else if (purpose && !recipient.purposes.includes(purpose.id)) answer = notServing(recipientId, purpose.id);
    else if (purpose) answer = this.purposeVerdict(purpose, states);
    else if (purposes.length > 0) answer = { allowed: true, reason: `data may go to recipient "${recipientId}" for ${purposes.map((id) => `"${id}"`).join(', ')}` };
    else answer = { allowed: false, reason: `none of the purposes recipient "${recipientId}" receives data for is allowed now` };
    return { holder, recipient: recipientId, purpose: purposeId ?? null, ...answer, purposes, decision: state?.action ?? null, decidedAt: state?.decided_at ?? null };
  }

  /** Same as decide; the name the mail outbox uses. */
  mayUse(subjectId: string, purposeId: string): Promise<ConsentDecision> {
    return this.decide(subjectId, purposeId);
  }

  /**
   * The decision with its record, for the HTTP check. An unknown holder is reported only when
   * nothing is recorded for it, so the common case stays one read.
   */
  decision(holder: string, purposeId: string): Promise<HolderDecision> {
    // Not an async function: the common case (a state recorded) is one read and one callback,
    // on the hottest route there is. A failure still arrives as a rejection.
    try {
      const purpose = this.purpose(purposeId);
      if (this.sharingCanBeRefused(purpose)) return this.sharingPurposeDecision(holder, purpose);
      return this.stateOf(this.deps.database.db, holder, 'purpose', purposeId).then((state) => {
        const answer = holderDecision(holder, purposeId, this.verdict(purpose, state), state);
        return state || holderKind(holder) !== 'subject' ? answer : this.requireSubject(holder).then(() => answer);
      });
    } catch (error) {
      return Promise.reject(error as Error);
    }
  }

  private async sharingPurposeDecision(holder: string, purpose: Purpose): Promise<HolderDecision> {
    const states = await this.statesByKey(this.deps.database.db, holder);
    if (states.size === 0 && holderKind(holder) === 'subject') await this.requireSubject(holder);
    return holderDecision(holder, purpose.id, this.purposeVerdict(purpose, states), states.get(`purpose:${purpose.id}`));
  }

  /** A declared purpose the person may refuse (not necessary, not a legal obligation). */
  isRefusable(purposeId: string): boolean {
    const purpose = this.policy.purposes.get(purposeId);
    return purpose !== undefined && this.isOptional(purpose);
  }

  /** A marketing topic of the policy: the only mail a person can refuse. */
  isMarketingTopic(topicId: string): boolean {
    const topic = this.policy.document.communications?.find((item) => item.id === topicId);
    return topic !== undefined && this.topicIsOptional(topic);
  }

  /** May mail on this topic go to the subject: its purpose allowed, and the topic not refused. */
  async mayReceive(subjectId: string, topicId: string, executor: Kysely<Tables> = this.deps.database.db): Promise<boolean> {
    const topic = this.topic(topicId);
    if (!(await this.decide(subjectId, topic.purpose, executor)).allowed) return false;
    if (!this.topicIsOptional(topic)) return true;
    const state = await this.stateOf(executor, subjectId, 'topic', topicId);
    return !state || !REFUSALS.has(state.action);
  }

  // --- recording -------------------------------------------------------------------------------

  /**
   * Checks a request's choices: every target declared, no refusal of what cannot be refused,
   * no target decided two ways. Nothing is stored when any check fails.
   */
  private validateChoices(choices: readonly ConsentChoice[]): Array<{ kind: ConsentTargetKind; target: string; action: Decision }> {
    if (choices.length === 0) throw new PledgeError('validation_failed', 'a consent request records at least one choice');
    if (choices.length > MAX_CHOICES) throw new PledgeError('validation_failed', `a consent request records at most ${MAX_CHOICES} choices`);
    const seen = new Map<string, Decision>();
    const out: Array<{ kind: ConsentTargetKind; target: string; action: Decision }> = [];
    for (const choice of choices) {
      const named = [choice.purpose, choice.topic, choice.recipient].filter((target) => target !== undefined);
      if (named.length !== 1) throw new PledgeError('validation_failed', 'each choice names exactly one of a purpose, a topic or a recipient');
      const kind: ConsentTargetKind = choice.purpose !== undefined ? 'purpose' : choice.topic !== undefined ? 'topic' : 'recipient';
      const target = named[0]!;
      // Nothing is recorded for what the person cannot decide, a grant included: a receipt
      // would otherwise present a necessary purpose as consent given "until withdrawn".
      if (kind === 'purpose') {
        const purpose = this.purpose(target);
        if (!this.isOptional(purpose)) {
          throw new PledgeError('consent_not_optional', `purpose "${target}" is ${purpose.legal_basis === 'legal_obligation' ? 'a legal obligation' : 'necessary'}: there is no choice to grant, refuse or withdraw`, { details: { target: `purpose:${target}` } });
        }
      } else if (kind === 'topic') {
        const topic = this.topic(target);
        if (!this.topicIsOptional(topic)) {
          throw new PledgeError('consent_not_optional', `topic "${target}" is ${topic.kind} mail, which is always sent: there is no choice to grant or refuse`, { details: { target: `topic:${target}` } });
        }
      } else if (!this.recipient(target).opt_out) {
        throw new PledgeError('consent_not_optional', `recipient "${target}" is not one people can opt out of (the policy does not give it opt_out: true): there is no choice to grant, refuse or withdraw`, { details: { target: `recipient:${target}` } });
      }
      const key = `${kind}:${target}`;
      const earlier = seen.get(key);
      if (earlier !== undefined) {
        if (earlier !== choice.action) throw new PledgeError('consent_conflict', `the request both ${earlier} and ${choice.action} ${kind} "${target}"; send one decision per ${kind}`, { details: { target: key } });
        continue;
      }
      seen.set(key, choice.action);
      out.push({ kind, target, action: choice.action });
    }
    return out;
  }

  private defaultSource(actor: Actor): BodySource {
    if (actor.type === 'staff') return 'staff';
    if (actor.type === 'subject') return 'privacy_center';
    return 'api';
  }

  private eventRow(holder: string, entry: { kind: ConsentTargetKind; target: string; action: ConsentAction }, source: ConsentSource, evidence: ConsentEvidence | undefined, receiptId: string, now: Date, extra: { decidedAt?: string; mergedFrom?: string; policyVersion?: string } = {}): ConsentEventsTable {
    const stamp = now.toISOString();
    return {
      id: newId('cns', now.getTime()),
      holder,
      target_kind: entry.kind,
      target: entry.target,
      action: entry.action,
      source,
      policy_version: extra.policyVersion ?? this.policy.version,
      country: evidence?.country ?? null,
      ua_family: evidence?.uaFamily ?? null,
      banner_version: evidence?.bannerVersion ?? null,
      merged_from: extra.mergedFrom ?? null,
      decided_at: extra.decidedAt ?? stamp,
      receipt_id: receiptId,
      recorded_at: stamp,
    };
  }

  private stateRow(row: ConsentEventsTable): ConsentStateTable {
    return { holder: row.holder, target_kind: row.target_kind, target: row.target, action: row.action, source: row.source, policy_version: row.policy_version, event_id: row.id, decided_at: row.decided_at };
  }

  private auditEvent(actor: Actor, holder: string, action: string, rows: readonly ConsentEventsTable[], receiptId: string, extra: Record<string, string> = {}): AuditEvent {
    const label = (row: ConsentEventsTable) => (row.target_kind === 'purpose' ? row.target : `${row.target_kind}:${row.target}`);
    return {
      actor,
      action,
      target: { type: holderKind(holder), id: holder },
      details: {
        receipt: receiptId,
        sources: [...new Set(rows.map((row) => row.source))],
        granted: rows.filter((row) => row.action === 'granted').map(label),
        refused: rows.filter((row) => row.action !== 'granted').map(label),
        ...extra,
      },
    };
  }

  /** Writes events, their projection, the receipt and the audit entry in one transaction (shared, see enqueue). */
  private commit(actor: Actor, holder: string, rows: ConsentEventsTable[], receipt: KantaraReceipt, auditAction: string, now: Date, extra: { signals?: PendingWrite['signals']; auditDetails?: Record<string, string>; checkHolder?: boolean; optIns?: string[] } = {}): Promise<ConsentEventsTable[]> {
    return this.enqueue({
      actor,
      holder,
      rows,
      receipt: { id: receipt.consentReceiptID, holder, issued_at: now.toISOString(), body: JSON.stringify(receipt) },
      auditAction,
      auditDetails: extra.auditDetails,
      signals: extra.signals,
      checkHolder: extra.checkHolder ?? false,
      ...(extra.optIns ? { optIns: extra.optIns } : {}),
    });
  }

  private receipt(holder: string, now: Date, source: ConsentSource | 'merge', entries: readonly ReceiptEntry[]): KantaraReceipt {
    return buildReceipt(this.policy, { id: uuidV7(now.getTime()), holder, at: now, source, publicUrl: this.deps.publicUrl, entries });
  }

  private recorded(holder: string, receiptId: string | null, rows: readonly ConsentEventsTable[]): Recorded {
    return { holder, receiptId, events: rows.map((row) => ({ id: row.id, kind: row.target_kind, target: row.target, action: row.action, source: row.source })) };
  }

  /** Records a request's choices for one holder and issues their receipt. All or nothing. */
  async record(actor: Actor, input: RecordInput): Promise<Recorded> {
    const entries = this.validateChoices(input.choices);
    // With a batch look-up, a subject holder is checked inside the group commit: one query for
    // the whole batch instead of one round trip per request before it.
    const checkInBatch = this.deps.subjectStatuses !== undefined && holderKind(input.holder) === 'subject';
    if (!checkInBatch) await this.requireHolder(input.holder);
    const now = this.deps.clock.now();
    const source = input.source ?? this.defaultSource(actor);
    const receipt = this.receipt(input.holder, now, source, entries);
    const rows = entries.map((entry) => this.eventRow(input.holder, entry, source, input.evidence, receipt.consentReceiptID, now));
    // An explicit opt-in to a mail topic undoes an earlier unsubscribe, suppression included.
    const optIns = holderKind(input.holder) === 'subject' ? entries.filter((entry) => entry.kind === 'topic' && entry.action === 'granted').map((entry) => entry.target) : [];
    await this.commit(actor, input.holder, rows, receipt, 'consent.recorded', now, { checkHolder: checkInBatch, ...(optIns.length > 0 ? { optIns } : {}) });
    return this.recorded(input.holder, receipt.consentReceiptID, rows);
  }

  /**
   * Applies the browser signals a request carries to its holder: each honoured signal opts out of
   * the purposes the policy names, once per (holder, purpose, signal). Applying only once is the
   * rule that keeps a later explicit opt-in: the person who grants a purpose after their browser
   * said no has decided again, and the same signal on the next request is not a new decision.
   * A signal seen for the first time after a grant does opt out (the later expression wins).
   */
  async applySignals(actor: Actor, holder: string, signals: Signals, evidence?: ConsentEvidence): Promise<Recorded> {
    // A staff member's browser speaks for the staff member, not for the person whose record
    // they open: a support agent with GPC switched on must not opt out everyone they look at.
    // The person's signal reaches Pledge through the company's services (API keys), which
    // forward their visitors' headers, or from the person themselves.
    if (actor.type === 'staff') return { holder, receiptId: null, events: [] };
    const wanted: Array<{ signal: 'gpc' | 'dnt'; purposes: readonly string[] }> = [];
    const document = this.policy.document.signals;
    if (signals.gpc && document?.gpc?.honoured) wanted.push({ signal: 'gpc', purposes: document.gpc.opts_out_of ?? [] });
    if (signals.dnt && document?.dnt?.honoured) wanted.push({ signal: 'dnt', purposes: document.dnt.opts_out_of ?? [] });
    if (wanted.length === 0) return { holder, receiptId: null, events: [] };
    const { db } = this.deps.database;
    const now = this.deps.clock.now();
    const pending: Array<{ signal: 'gpc' | 'dnt'; purpose: string }> = [];
    for (const { signal, purposes } of wanted) {
      const done = new Set((await store.signalsOf(db, holder, signal)).map((row) => row.purpose));
      for (const purpose of purposes) {
        const declared = this.policy.purposes.get(purpose);
        if (declared && this.isOptional(declared) && !done.has(purpose)) pending.push({ signal, purpose });
      }
    }
    if (pending.length === 0) return { holder, receiptId: null, events: [] };
    await this.requireHolder(holder);
    // One receipt per signal kind would split one request's evidence; the receipt names the first.
    const entries = pending.map((item) => ({ kind: 'purpose' as const, target: item.purpose, action: 'opted_out_by_signal' as const }));
    const receipt = this.receipt(holder, now, pending[0]!.signal, entries);
    const rows = pending.map((item, index) => this.eventRow(holder, entries[index]!, item.signal, evidence, receipt.consentReceiptID, now));
    const kept = await this.commit(actor, holder, rows, receipt, 'consent.signal_applied', now, {
      signals: pending.map((item, index) => ({ signal: item.signal, purpose: item.purpose, eventId: rows[index]!.id })),
    });
    return this.recorded(holder, kept.length > 0 ? receipt.consentReceiptID : null, kept);
  }

  /**
   * The unsubscribe link: withdraws the topic for the subject, source email_link. Idempotent — a
   * second click (or a mail client prefetching the link) records nothing new.
   */
  async optOutByEmailLink(subjectId: string, topicId: string, evidence?: ConsentEvidence): Promise<Recorded> {
    const topic = this.topic(topicId);
    if (!this.topicIsOptional(topic)) throw new PledgeError('consent_not_optional', `topic "${topicId}" is ${topic.kind} mail, which is always sent: it cannot be refused`);
    const state = await store.stateOf(this.deps.database.db, subjectId, 'topic', topicId);
    if (state && REFUSALS.has(state.action)) return { holder: subjectId, receiptId: null, events: [] };
    return this.record({ type: 'subject', id: subjectId }, { holder: subjectId, source: 'email_link', choices: [{ topic: topicId, action: 'withdrawn' }], ...(evidence ? { evidence } : {}) });
  }

  // --- reading ---------------------------------------------------------------------------------

  private async overviewOf(holder: string): Promise<ConsentOverview> {
    const byKey = await this.statesByKey(this.deps.database.db, holder);
    const purposes: PurposeState[] = this.policy.document.purposes.map((purpose) => {
      const state = byKey.get(`purpose:${purpose.id}`);
      return {
        id: purpose.id,
        name: purpose.name,
        choice: effectiveChoice(purpose),
        optional: this.isOptional(purpose),
        profiling: purpose.profiling === true,
        allowed: this.purposeVerdict(purpose, byKey).allowed,
        decision: state?.action ?? null,
        source: state?.source ?? null,
        decidedAt: state?.decided_at ?? null,
      };
    });
    const allowed = new Map(purposes.map((purpose) => [purpose.id, purpose.allowed]));
    const topics: TopicState[] = (this.policy.document.communications ?? []).map((topic) => {
      const state = byKey.get(`topic:${topic.id}`);
      const subscribed = !this.topicIsOptional(topic) || !state || !REFUSALS.has(state.action);
      return {
        id: topic.id,
        name: topic.name,
        kind: topic.kind,
        purpose: topic.purpose,
        optional: this.topicIsOptional(topic),
        subscribed,
        receives: subscribed && allowed.get(topic.purpose) === true,
        decision: state?.action ?? null,
        decidedAt: state?.decided_at ?? null,
      };
    });
    const recipients: RecipientState[] = (this.policy.document.recipients ?? []).map((recipient) => {
      const state = byKey.get(`recipient:${recipient.id}`);
      return {
        id: recipient.id,
        name: recipient.name,
        role: recipient.role,
        purposes: [...recipient.purposes],
        optional: recipient.opt_out === true,
        shares: !this.recipientRefused(recipient, state) && recipient.purposes.some((id) => allowed.get(id) === true),
        decision: state?.action ?? null,
        decidedAt: state?.decided_at ?? null,
      };
    });
    const affiliates = this.optOutAffiliates();
    const profiling = this.profilingPurposes();
    return {
      holder,
      purposes,
      topics,
      sharing: {
        recipients,
        affiliates: {
          recipients: affiliates.map((recipient) => recipient.id),
          purposes: [...new Set(affiliates.flatMap((recipient) => recipient.purposes))],
          optedOut: affiliates.length > 0 && affiliates.every((recipient) => this.recipientRefused(recipient, byKey.get(`recipient:${recipient.id}`))),
        },
      },
      profiling: { purposes: profiling, optedOut: profiling.length > 0 && profiling.every((id) => allowed.get(id) === false) },
    };
  }

  /** A holder's current choices, per purpose, topic and recipient. Audited: it says what a person decided. */
  async overview(actor: Actor, holder: string): Promise<ConsentOverview> {
    await this.requireHolder(holder);
    const overview = await this.overviewOf(holder);
    await this.deps.audit.record([{ actor, action: 'consent.read', target: { type: holderKind(holder), id: holder } }]);
    return overview;
  }

  /** The ledger of one holder, oldest first. */
  async history(actor: Actor, holder: string, limit = 1000): Promise<LedgerEvent[]> {
    await this.requireHolder(holder);
    const rows = await store.eventsOf(this.deps.database.db, holder, limit);
    await this.deps.audit.record([{ actor, action: 'consent.history_read', target: { type: holderKind(holder), id: holder }, details: { events: rows.length } }]);
    return rows.map((row) => ({
      id: row.id,
      kind: row.target_kind,
      target: row.target,
      action: row.action,
      source: row.source,
      policyVersion: row.policy_version,
      decidedAt: row.decided_at,
      recordedAt: row.recorded_at,
      receiptId: row.receipt_id,
      mergedFrom: row.merged_from,
      evidence: { country: row.country, uaFamily: row.ua_family, bannerVersion: row.banner_version },
    }));
  }

  async receiptById(actor: Actor, id: string): Promise<KantaraReceipt> {
    const row = await store.getReceipt(this.deps.database.db, id);
    if (!row) throw new PledgeError('receipt_not_found', 'no consent receipt has this id');
    await this.deps.audit.record([{ actor, action: 'consent.receipt_read', target: { type: holderKind(row.holder), id: row.holder }, details: { receipt: id } }]);
    return JSON.parse(row.body) as KantaraReceipt;
  }

  // --- preferences -----------------------------------------------------------------------------

  /** Preferences are the overview of a subject; set them per purpose, per topic, per recipient, or by group. */
  preferences(actor: Actor, subjectId: string): Promise<ConsentOverview> {
    return this.overview(actor, subjectId);
  }

  /**
   * Turns preference switches into ledger choices. The groups stand for their members: sharing
   * with affiliates for the affiliates a person can opt out of (recipient choices: the
   * purposes they serve stay as they are), profiling for the profiling purposes. A switch that
   * contradicts another one in the same request (profiling off, yet a profiling purpose on) is
   * refused and nothing is stored.
   */
  async setPreferences(actor: Actor, subjectId: string, input: PreferencesInput): Promise<ConsentOverview> {
    const wanted = new Map<string, { kind: ConsentTargetKind; target: string; on: boolean; from: string }>();
    const want = (kind: ConsentTargetKind, target: string, on: boolean, from: string) => {
      const key = `${kind}:${target}`;
      const earlier = wanted.get(key);
      if (earlier && earlier.on !== on) {
        throw new PledgeError('consent_conflict', `${earlier.from} turns ${kind} "${target}" ${earlier.on ? 'on' : 'off'} but ${from} turns it ${on ? 'on' : 'off'}; send one decision per ${kind}`, { details: { target: key } });
      }
      if (!earlier) wanted.set(key, { kind, target, on, from });
    };
    for (const [id, on] of Object.entries(input.purposes ?? {})) {
      this.purpose(id);
      want('purpose', id, on, `purposes.${id}`);
    }
    for (const [id, on] of Object.entries(input.topics ?? {})) {
      this.topic(id);
      want('topic', id, on, `topics.${id}`);
    }
    for (const [id, on] of Object.entries(input.recipients ?? {})) {
      this.recipient(id);
      want('recipient', id, on, `recipients.${id}`);
    }
    if (input.sharingWithAffiliates !== undefined) {
      const affiliates = this.optOutAffiliates();
      if (affiliates.length === 0) throw new PledgeError('consent_not_optional', 'the policy names no affiliate a person can opt out of sharing with (a recipient with role affiliate and opt_out: true)');
      for (const recipient of affiliates) want('recipient', recipient.id, input.sharingWithAffiliates, 'sharingWithAffiliates');
    }
    if (input.profiling !== undefined) {
      const ids = this.profilingPurposes();
      if (ids.length === 0) throw new PledgeError('consent_not_optional', 'the policy names no profiling a person can opt out of');
      for (const id of ids) want('purpose', id, input.profiling, 'profiling');
    }
    if (wanted.size === 0) throw new PledgeError('validation_failed', 'set at least one preference');
    await this.requireHolder(subjectId);
    const states = new Map((await store.statesOf(this.deps.database.db, subjectId)).map((row) => [`${row.target_kind}:${row.target}`, row]));
    const choices: ConsentChoice[] = [];
    for (const [key, item] of wanted) {
      // Off after a grant is a withdrawal; off with nothing granted is a refusal.
      const action: Decision = item.on ? 'granted' : states.get(key)?.action === 'granted' ? 'withdrawn' : 'denied';
      choices.push({ [item.kind]: item.target, action });
    }
    await this.record(actor, { holder: subjectId, choices, ...(input.source ? { source: input.source } : {}), ...(input.evidence ? { evidence: input.evidence } : {}) });
    return this.overviewOf(subjectId);
  }

  // --- visitors --------------------------------------------------------------------------------

  newVisitorId(): string {
    return newId('vis', this.deps.clock.now().getTime());
  }

  /**
   * A visitor signed in or otherwise identified: its choices join the subject's. Per target the
   * later decision wins (a visitor's newer "no" beats the account's older "yes", and the other
   * way round); each choice taken over is recorded on the subject as an event naming the
   * visitor, with the visitor's evidence and time. Applied signals travel too, so a signal the
   * visitor already sent is not applied again over the subject's later opt-in.
   */
  async identify(actor: Actor, visitorId: string, subjectId: string): Promise<Recorded & { merged: number }> {
    if (holderKind(visitorId) !== 'visitor') throw new PledgeError('validation_failed', 'only a visitor id (vis_…) can be identified');
    if (holderKind(subjectId) !== 'subject') throw new PledgeError('validation_failed', 'a visitor is identified as a subject (sub_…)');
    await this.requireSubject(subjectId);
    const { db } = this.deps.database;
    const now = this.deps.clock.now();
    const owner = await store.visitorSubject(db, visitorId);
    if (owner !== undefined && owner !== subjectId) throw VISITOR_TAKEN();
    const [visitorStates, subjectStates, visitorEvents, visitorSignals] = await Promise.all([
      store.statesOf(db, visitorId),
      store.statesOf(db, subjectId),
      store.eventsOf(db, visitorId, 100_000),
      store.allSignalsOf(db, visitorId),
    ]);
    const current = new Map(subjectStates.map((row) => [`${row.target_kind}:${row.target}`, row]));
    const events = new Map(visitorEvents.map((row) => [row.id, row]));
    const taken = visitorStates.filter((row) => {
      const existing = current.get(`${row.target_kind}:${row.target}`);
      return !existing || existing.decided_at < row.decided_at;
    });
    const receipt = this.receipt(subjectId, now, 'merge', taken.map((row) => ({ kind: row.target_kind, target: row.target, action: row.action })));
    const rows = taken.map((state) => {
      const origin = events.get(state.event_id);
      const evidence = origin ? { country: origin.country, uaFamily: origin.ua_family, bannerVersion: origin.banner_version } : undefined;
      return this.eventRow(subjectId, { kind: state.target_kind, target: state.target, action: state.action }, state.source, evidence, receipt.consentReceiptID, now, { decidedAt: state.decided_at, mergedFrom: visitorId, policyVersion: state.policy_version });
    });
    await db.transaction().execute(async (trx) => {
      // The first write of the transaction, and the authority: of two identifications racing, one wins.
      if ((await store.identifyVisitor(trx, { visitor: visitorId, subject_id: subjectId, identified_at: now.toISOString() })) !== subjectId) throw VISITOR_TAKEN();
      for (const signal of visitorSignals) await store.insertSignal(trx, { ...signal, holder: subjectId });
      if (rows.length > 0) {
        await store.insertEvents(trx, rows);
        await store.upsertStates(trx, rows.map((row) => this.stateRow(row)));
        await store.insertReceipts(trx, [{ id: receipt.consentReceiptID, holder: subjectId, issued_at: now.toISOString(), body: JSON.stringify(receipt) }]);
      }
      const event = this.auditEvent(actor, subjectId, 'consent.merged', rows, receipt.consentReceiptID, { visitor: visitorId });
      // Nothing taken over: no receipt was issued, so none is named.
      if (rows.length === 0) delete event.details!.receipt;
      await this.deps.audit.appendWithin(trx, [event]);
    });
    return { ...this.recorded(subjectId, rows.length > 0 ? receipt.consentReceiptID : null, rows), merged: rows.length };
  }
}
