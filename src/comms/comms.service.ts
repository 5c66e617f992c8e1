import path from 'node:path';
import type { Transaction } from 'kysely';
import type { AuditWriter } from '../audit/audit.types.js';
import type { Clock } from '../core/clock.js';
import type { MailConfig } from '../core/config.js';
import { randomToken } from '../core/crypto.js';
import type { Database } from '../core/db.js';
import type { Tables } from '../core/db.tables.js';
import { PledgeError } from '../core/errors.js';
import { isId, newId } from '../core/ids.js';
import type { Keyring } from '../core/keyring.js';
import type { Logger } from '../core/logger.js';
import type { Policy } from '../policy/policy.model.js';
import type { PolicyService, PublishedVersion } from '../policy/policy.service.js';
import { actorMayUsePurpose, type Actor } from '../staff/permissions.js';
import { normalizeIdentity } from '../subjects/identities.js';
import type { SubjectsService } from '../subjects/subjects.service.js';
import type { MailConsent } from './comms.consent.js';
import { countOutboxToRewrap, rewrapOutbox } from './comms.rotation.js';
import { openPart, sealPart } from './comms.sealing.js';
import { commsStore as store, type OutboxFilter } from './comms.store.js';
import type { CommsOutboxTable, MessageKind, MessageStatus } from './comms.tables.js';
import { headerText, requireTemplate, type MailContent, type TemplateData } from './comms.templates.js';
import { UnsubscribeTokens } from './comms.tokens.js';
import { failureCode, fileTransport, smtpTransport, type MailTransport, type OutgoingMail } from './comms.transport.js';
import { OutboxWorker } from './comms.worker.js';

/**
 * Everything Pledge sends goes through the outbox: a message is a row first (durable, with an
 * idempotency key), and a worker claims due rows, resolves the recipient, renders, and hands
 * the message to SMTP (or writes an .eml file when no SMTP server is configured). Delivery is
 * at least once; the effect is once: a retried message keeps its Message-ID, and enqueueing
 * the same key twice stores one row.
 *
 * Recipients are subjects (resolved from the vault at send time, so an erased subject gets
 * nothing and no address sits in the outbox) or, for people who are not subjects yet (a
 * request's verification code), an address sealed with the keyring and cleared once sent.
 */
export interface EnqueueInput {
  /** A communication topic declared in the policy, or the built-in `policy_change` / `request_notice`. */
  topic: string;
  subjectId?: string;
  /** Only for someone who is not a subject (never for marketing). */
  to?: { address: string; name?: string };
  /** A template name: `message` (data: subject, body, name?), `verification_code` (data: code), `policy_change`. */
  template: string;
  data?: TemplateData;
  /** Unique per (kind, recipient, topic) with the caller's meaning: "order o_123 shipped". */
  idempotencyKey: string;
  policyVersionId?: string;
  /** Not before this time (ISO 8601); default now. */
  sendAt?: string;
}

/** What POST /v1/outbox takes: a `message` to a subject on a topic of the policy. */
export interface QueueMessageInput {
  topic: string;
  subjectId: string;
  /** The subject line. */
  subject: string;
  body: string;
  name?: string;
  idempotencyKey: string;
  sendAt?: string;
}

export interface MessageSummary {
  id: string;
  kind: MessageKind;
  topic: string;
  purpose: string | null;
  subjectId: string | null;
  template: string;
  policyVersionId: string | null;
  status: MessageStatus;
  attempts: number;
  nextAttemptAt: string;
  lastError: string | null;
  createdAt: string;
  updatedAt: string;
  sentAt: string | null;
}

export interface DeliveryReport {
  claimed: number;
  delivered: number;
  dropped: number;
  retried: number;
  failed: number;
}

export interface CommsServiceDeps {
  database: Database;
  keyring: Keyring;
  policy: Policy;
  policyService: PolicyService;
  subjects: SubjectsService;
  audit: AuditWriter;
  consent: MailConsent;
  clock: Clock;
  logger: Logger;
  mail: MailConfig;
  publicUrl: string;
  dataDir: string;
  /** How long an unsubscribe link stays valid (default 180 days). */
  unsubscribeTtlMs?: number;
}

interface Topic {
  id: string;
  name: string;
  kind: MessageKind;
  purpose: string | null;
}

type Recipient = { address: string; name?: string };

/** What a claimed message's sealed columns hold: its template data, and the address of a recipient who is not a subject. */
interface OpenedMessage {
  data: TemplateData;
  to?: Recipient;
}

/**
 * Why a message cannot be opened, as its last_error says: sealed (or its person's data key
 * wrapped) under a master key this process does not hold, or altered.
 */
type Unreadable = 'master_key_missing' | 'data_integrity_failed';

/** The code of a key or integrity error; any other error (the database is down) is thrown again. */
function unreadableCode(error: unknown): Unreadable {
  if (error instanceof PledgeError && error.code === 'master_key_invalid') return 'master_key_missing';
  if (error instanceof PledgeError && error.code === 'data_integrity_failed') return 'data_integrity_failed';
  throw error;
}

const BUILT_IN_TOPICS: Topic[] = [
  { id: 'policy_change', name: 'Privacy policy changes', kind: 'policy_change', purpose: null },
  { id: 'request_notice', name: 'Your privacy requests', kind: 'request_notice', purpose: null },
];
const SYSTEM: Actor = { type: 'system', id: 'outbox' };
const NOTICE_BATCH = 1000;
const MAX_BACKOFF_MS = 6 * 3600_000;

function summary(row: Omit<CommsOutboxTable, 'idempotency_key' | 'to_sealed' | 'data_sealed' | 'claim_token' | 'claimed_until'>): MessageSummary {
  return {
    id: row.id,
    kind: row.kind,
    topic: row.topic,
    purpose: row.purpose,
    subjectId: row.subject_id,
    template: row.template,
    policyVersionId: row.policy_version_id,
    status: row.status,
    attempts: row.attempts,
    nextAttemptAt: row.next_attempt_at,
    lastError: row.last_error,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    sentAt: row.sent_at,
  };
}

export class CommsService {
  readonly transport: MailTransport;
  private readonly tokens: UnsubscribeTokens;
  private readonly topics: Map<string, Topic>;
  private readonly from: { name: string; address: string };
  private readonly worker: OutboxWorker;
  private readonly leaseMs: number;

  constructor(private readonly deps: CommsServiceDeps) {
    this.tokens = new UnsubscribeTokens(deps.keyring.secret('token_signing'));
    this.topics = new Map(BUILT_IN_TOPICS.map((topic) => [topic.id, topic]));
    for (const topic of deps.policy.document.communications ?? []) this.topics.set(topic.id, { id: topic.id, name: topic.name, kind: topic.kind, purpose: topic.purpose });
    this.from = senderOf(deps.policy, deps.mail.from, deps.publicUrl);
    this.transport = deps.mail.smtpUrl ? smtpTransport(deps.mail.smtpUrl, { timeoutMs: deps.mail.smtpTimeoutMs }) : fileTransport(path.join(deps.dataDir, 'outbox'));
    // A claim outlives the slowest send it covers (connect + greeting + data, each bounded by
    // the timeout); past it another process may take the message over.
    this.leaseMs = Math.max(4 * deps.mail.smtpTimeoutMs, 5000);
    this.worker = new OutboxWorker(() => this.step(), deps.mail.pollIntervalMs, (error) => deps.logger.error({ err: error }, 'outbox step failed'));
    deps.consent.onOptIn?.((trx, subjectId, topics, at) => this.liftOptOuts(trx, subjectId, topics, at));
  }

  private topic(id: string): Topic {
    const topic = this.topics.get(id);
    if (!topic) throw new PledgeError('unknown_topic', `no communication topic is named "${headerText(id, 60)}"`);
    return topic;
  }

  // --- enqueue -----------------------------------------------------------------------------------

  /**
   * Queues one message; the same idempotency key (for the same kind, recipient and topic)
   * returns the message already queued instead of a second one.
   *
   *   await engine.comms.enqueue({ topic: 'order_updates', subjectId, template: 'message',
   *     data: { subject: 'Your order shipped', body: '…' }, idempotencyKey: `shipped:${orderId}` });
   *   await engine.comms.enqueue({ topic: 'request_notice', to: { address }, template: 'verification_code',
   *     data: { code }, idempotencyKey: `verify:${requestId}` });
   */
  async enqueue(input: EnqueueInput, trx?: Transaction<Tables>): Promise<{ id: string; created: boolean }> {
    // Sealed under the KEK the database names now, also just after a rotation switched it (a
    // process idle since would otherwise seal once more under the old one, which then goes).
    // Inside a caller's transaction the keyring table cannot be read (on SQLite the transaction
    // holds the one connection): such a caller refreshes first, as queueMessage does.
    if (!trx) await this.deps.keyring.refresh();
    const row = this.prepare(input, this.deps.clock.now());
    const executor = trx ?? this.deps.database.db;
    const [inserted] = await store.insertMessages(executor, [row]);
    if (inserted) return { id: inserted, created: true };
    const existing = await store.byIdempotencyKey(executor, row.idempotency_key);
    return { id: existing!.id, created: false };
  }

  private prepare(input: EnqueueInput, now: Date): CommsOutboxTable {
    const topic = this.topic(input.topic);
    requireTemplate(input.template);
    if (!input.idempotencyKey || input.idempotencyKey.length > 200) throw new PledgeError('validation_failed', 'idempotencyKey must be 1 to 200 characters');
    if ((input.subjectId === undefined) === (input.to === undefined)) throw new PledgeError('mail_not_allowed', 'a message needs exactly one recipient: a subject id or an address');
    if (topic.kind === 'marketing' && !input.subjectId) throw new PledgeError('mail_not_allowed', 'marketing is sent only to subjects, whose opt-outs are kept');
    if (input.subjectId !== undefined && !isId(input.subjectId, 'sub')) throw new PledgeError('subject_not_found', 'no subject has this id');
    const id = newId('msg', now.getTime());
    let recipientKey = `subject:${input.subjectId}`;
    let toSealed: string | null = null;
    if (input.to) {
      const address = normalizeIdentity('email', input.to.address);
      recipientKey = `address:${this.deps.subjects.emailBlindIndex(address)}`;
      toSealed = sealPart(this.deps.keyring, id, 'to', JSON.stringify({ address, ...(input.to.name ? { name: headerText(input.to.name, 100) } : {}) }));
    }
    const stamp = now.toISOString();
    if (input.sendAt !== undefined && Number.isNaN(Date.parse(input.sendAt))) throw new PledgeError('validation_failed', 'sendAt must be an ISO 8601 date-time');
    const sendAt = input.sendAt === undefined ? stamp : new Date(input.sendAt).toISOString();
    return {
      id,
      idempotency_key: `${topic.kind}:${recipientKey}:${input.policyVersionId ?? topic.id}:${input.idempotencyKey}`,
      kind: topic.kind,
      topic: topic.id,
      purpose: topic.purpose,
      subject_id: input.subjectId ?? null,
      to_sealed: toSealed,
      template: input.template,
      data_sealed: sealPart(this.deps.keyring, id, 'data', JSON.stringify(input.data ?? {})),
      policy_version_id: input.policyVersionId ?? null,
      status: 'queued',
      attempts: 0,
      next_attempt_at: sendAt,
      claim_token: null,
      claimed_until: null,
      last_error: null,
      created_at: stamp,
      updated_at: stamp,
      sent_at: null,
    };
  }

  // --- delivery ----------------------------------------------------------------------------------

  /** One round of the worker: advance a policy-change mailing by a batch, then deliver a batch. */
  async step(): Promise<number> {
    const queued = await this.advanceNotices();
    const report = await this.deliverBatch();
    return queued + report.claimed;
  }

  startWorker(): void {
    this.worker.start();
  }

  /**
   * Claims a batch of due messages and delivers it. Marketing is re-checked in the claiming
   * transaction (topic opt-out, suppression list, consent): a message whose person opted out
   * since it was queued is dropped there, never sent.
   */
  async deliverBatch(limit = this.deps.mail.batchSize): Promise<DeliveryReport> {
    const { database, clock } = this.deps;
    const now = clock.now();
    const stamp = now.toISOString();
    const token = randomToken(12);
    const report: DeliveryReport = { claimed: 0, delivered: 0, dropped: 0, retried: 0, failed: 0 };
    const { claimed, refused } = await database.db.transaction().execute(async (trx) => {
      const rows = await store.claim(trx, database.dialect, { now: stamp, leaseUntil: new Date(now.getTime() + this.leaseMs).toISOString(), token, limit });
      const marketing = rows.filter((row) => row.kind === 'marketing');
      if (marketing.length === 0) return { claimed: rows, refused: 0 };
      const subjectIds = [...new Set(marketing.map((row) => row.subject_id!))];
      const optedOut = await store.unsubscribedTopics(trx, subjectIds);
      const indexes = await this.deps.subjects.emailBlindIndexes(trx, subjectIds);
      const suppressed = await store.suppressed(trx, [...indexes.values()]);
      const refused: string[] = [];
      for (const row of marketing) {
        const index = indexes.get(row.subject_id!);
        const blocked =
          optedOut.has(`${row.subject_id}\u0000${row.topic}`) ||
          (index !== undefined && (suppressed.has(`${index}\u0000${row.topic}`) || suppressed.has(`${index}\u0000*`))) ||
          !(await this.deps.consent.mayReceive(row.subject_id!, row.topic, row.purpose!, trx));
        if (blocked) refused.push(row.id);
      }
      await store.markDropped(trx, refused, 'not_allowed', stamp);
      const dropped = new Set(refused);
      return { claimed: rows.filter((row) => !dropped.has(row.id)), refused: refused.length };
    });
    report.claimed = claimed.length + refused;
    report.dropped = refused;
    if (claimed.length === 0) return report;

    const { ready, unreadable, noAddress } = await this.openClaimed(claimed);
    for (const [code, ids] of unreadable) {
      for (const id of ids) this.deps.logger.error({ messageId: id, code }, 'message cannot be opened; marked failed');
      await store.markFailed(database.db, ids, token, code, stamp);
      report.failed += ids.length;
    }
    await store.markDropped(database.db, noAddress, 'no_address', stamp);
    report.dropped += noAddress.length;

    // Deliveries are recorded together, as soon as a few are in or the batch is over: one
    // write instead of one per message. A crash before the write means those few are sent
    // again after the lease, with the same Message-ID (at least once; one effect).
    let delivered: string[] = [];
    const status = this.transport.mode === 'smtp' ? 'sent' : 'stored';
    const flush = async () => {
      if (delivered.length === 0) return;
      const ids = delivered;
      delivered = [];
      await store.markDelivered(database.db, ids, token, status, this.deps.clock.now().toISOString());
    };
    await Promise.all(
      ready.map(async ({ row, to, data }) => {
        let mail: OutgoingMail;
        try {
          mail = this.compose(row, to, data, now);
        } catch (error) {
          this.deps.logger.error({ err: error, messageId: row.id }, 'message could not be rendered');
          await store.markAttemptFailed(database.db, row.id, token, { status: 'failed', nextAttemptAt: stamp, error: 'render_failed', now: stamp });
          report.failed += 1;
          return;
        }
        try {
          await this.transport.send(mail);
        } catch (error) {
          const code = failureCode(error);
          const finalAttempt = row.attempts >= this.deps.mail.maxAttempts;
          const delay = Math.min(this.deps.mail.backoffMs * 2 ** (row.attempts - 1), MAX_BACKOFF_MS) * (0.5 + Math.random());
          const at = this.deps.clock.now();
          await store.markAttemptFailed(database.db, row.id, token, {
            status: finalAttempt ? 'failed' : 'queued',
            nextAttemptAt: new Date(at.getTime() + delay).toISOString(),
            error: code,
            now: at.toISOString(),
          });
          this.deps.logger.warn({ messageId: row.id, attempt: row.attempts, code }, finalAttempt ? 'message failed for good' : 'message delivery failed; will retry');
          if (finalAttempt) report.failed += 1;
          else report.retried += 1;
          return;
        }
        delivered.push(row.id);
        report.delivered += 1;
        if (delivered.length >= 50) await flush();
      }),
    );
    await flush();
    return report;
  }

  /**
   * What a claimed batch needs to be sent: each message's sealed data opened, and its address —
   * a subject's from the vault (audited, per purpose), another recipient's from the sealed
   * column. A message that cannot be opened (sealed, or its person's data key wrapped, under a
   * master key this process does not hold; or altered) is set apart with a code and keeps its
   * sealed values: with the key back in PLEDGE_PREVIOUS_MASTER_KEYS, a retry sends it. One such
   * message never holds back the rest of the batch.
   */
  private async openClaimed(claimed: readonly CommsOutboxTable[]): Promise<{ ready: Array<{ row: CommsOutboxTable; to: Recipient; data: TemplateData }>; unreadable: Map<Unreadable, string[]>; noAddress: string[] }> {
    const opened = new Map<string, OpenedMessage>();
    const unreadable = new Map<Unreadable, string[]>();
    const setApart = (id: string, code: Unreadable) => unreadable.set(code, [...(unreadable.get(code) ?? []), id]);
    for (const row of claimed) {
      const message = this.openSealed(row);
      if ('data' in message) opened.set(row.id, message);
      else setApart(row.id, message.unreadable);
    }

    const byPurpose = new Map<string, string[]>();
    for (const row of claimed) {
      if (row.subject_id && opened.has(row.id)) {
        const key = row.purpose ?? '';
        byPurpose.set(key, [...(byPurpose.get(key) ?? []), row.subject_id]);
      }
    }
    const subjectAddresses = new Map<string, string>();
    const unreadableSubjects = new Map<string, Unreadable>();
    for (const [purpose, ids] of byPurpose) {
      const unique = [...new Set(ids)];
      try {
        for (const [id, address] of await this.deps.subjects.emailAddresses(SYSTEM, unique, purpose || undefined)) subjectAddresses.set(id, address);
      } catch {
        // A person whose data key cannot be opened must not hold back mail to the others: one at a time.
        for (const id of unique) {
          try {
            for (const [found, address] of await this.deps.subjects.emailAddresses(SYSTEM, [id], purpose || undefined)) subjectAddresses.set(found, address);
          } catch (error) {
            unreadableSubjects.set(id, unreadableCode(error));
          }
        }
      }
    }

    const ready: Array<{ row: CommsOutboxTable; to: Recipient; data: TemplateData }> = [];
    const noAddress: string[] = [];
    for (const row of claimed) {
      const message = opened.get(row.id);
      if (!message) continue;
      const subjectUnreadable = row.subject_id ? unreadableSubjects.get(row.subject_id) : undefined;
      if (subjectUnreadable) {
        setApart(row.id, subjectUnreadable);
        continue;
      }
      // A subject's address comes from the vault only (none: erased, or no email left).
      const address = row.subject_id ? subjectAddresses.get(row.subject_id) : undefined;
      const to = address !== undefined ? { address } : row.subject_id ? undefined : message.to;
      if (to) ready.push({ row, to, data: message.data });
      else noAddress.push(row.id);
    }
    return { ready, unreadable, noAddress };
  }

  /** A claimed message's sealed parts opened, or why they cannot be (the code its last_error records). */
  private openSealed(row: CommsOutboxTable): OpenedMessage | { unreadable: Unreadable } {
    try {
      return {
        data: JSON.parse(openPart(this.deps.keyring, row.id, 'data', row.data_sealed)) as TemplateData,
        ...(row.to_sealed ? { to: JSON.parse(openPart(this.deps.keyring, row.id, 'to', row.to_sealed)) as Recipient } : {}),
      };
    } catch (error) {
      // No I/O here: whatever failed is about the sealed values themselves.
      return { unreadable: error instanceof PledgeError && error.code === 'master_key_invalid' ? 'master_key_missing' : 'data_integrity_failed' };
    }
  }

  /** Renders a claimed message: template, unsubscribe link and headers of marketing mail. */
  private compose(row: CommsOutboxTable, to: Recipient, data: TemplateData, now: Date): OutgoingMail {
    const topic = this.topics.get(row.topic) ?? { id: row.topic, name: row.topic, kind: row.kind, purpose: row.purpose };
    let unsubscribeUrl: string | undefined;
    if (row.kind === 'marketing' && row.subject_id) {
      const token = this.tokens.issue({ messageId: row.id, subjectId: row.subject_id, topic: row.topic, expires: Math.floor((now.getTime() + (this.deps.unsubscribeTtlMs ?? 180 * 86_400_000)) / 1000) });
      unsubscribeUrl = `${this.deps.publicUrl}/v1/unsubscribe?token=${token}`;
    }
    const content: MailContent = requireTemplate(row.template).render(data, {
      organization: headerText(this.deps.policy.document.organization.name, 100),
      topicName: topic.name,
      publicUrl: this.deps.publicUrl,
      ...(unsubscribeUrl ? { unsubscribeUrl } : {}),
    });
    return {
      id: row.id,
      messageId: `<${row.id}@${this.from.address.split('@')[1] ?? 'pledge.invalid'}>`,
      from: this.from,
      to: { address: to.address, ...(to.name ? { name: headerText(to.name, 100) } : {}) },
      subject: headerText(content.subject),
      text: content.text,
      html: content.html,
      ...(unsubscribeUrl ? { unsubscribeUrl } : {}),
    };
  }

  // --- unsubscribe -------------------------------------------------------------------------------

  /** What the confirmation page shows: the topic's name. Checks the token; changes nothing. */
  inspectUnsubscribe(token: string): { topic: string; topicName: string } {
    const claims = this.tokens.verify(token, this.deps.clock.now());
    return { topic: claims.topic, topicName: this.topics.get(claims.topic)?.name ?? claims.topic };
  }

  /**
   * Takes the opt-out a signed token names: the subject's topic state, the suppression list
   * (blind index of the address) and the drop of marketing still queued for it, in one
   * transaction, so every process sharing the database honours it from the commit on. The
   * same token again changes nothing and answers the same.
   */
  async unsubscribe(token: string, method: 'one_click' | 'page'): Promise<{ topic: string; topicName: string; changed: boolean }> {
    const now = this.deps.clock.now();
    const claims = this.tokens.verify(token, now);
    const message = await store.get(this.deps.database.db, claims.messageId);
    if (!message || message.subject_id !== claims.subjectId || message.topic !== claims.topic || message.kind !== 'marketing') {
      throw new PledgeError('unsubscribe_token_invalid', 'this unsubscribe link is not valid; use the link from the message itself');
    }
    const stamp = now.toISOString();
    const changed = await this.deps.database.db.transaction().execute(async (trx) => {
      const index = (await this.deps.subjects.emailBlindIndexes(trx, [claims.subjectId])).get(claims.subjectId);
      const added = await store.addOptOut(trx, { subjectId: claims.subjectId, topic: claims.topic, blindIndex: index, messageId: claims.messageId, messageCreatedAt: message.created_at, source: method, now: stamp });
      if (!added) return false;
      const dropped = await store.dropQueuedMarketing(trx, claims.subjectId, claims.topic, stamp);
      await this.deps.audit.appendWithin(trx, [
        { actor: { type: 'subject', id: claims.subjectId }, action: 'comms.unsubscribed', target: { type: 'subject', id: claims.subjectId }, details: { topic: claims.topic, message: claims.messageId, method, dropped } },
      ]);
      return true;
    });
    if (changed) await this.deps.consent.recordUnsubscribe(claims.subjectId, claims.topic, { messageId: claims.messageId, method, at: stamp });
    return { topic: claims.topic, topicName: this.topics.get(claims.topic)?.name ?? claims.topic, changed };
  }

  /**
   * A subject opted in to these marketing topics again (the consent ledger calls this inside the
   * transaction that records the opt-in): the unsubscribe and the suppression of the subject's
   * address for each topic are lifted in that same commit, so the next message goes out.
   * Returns the topics where there was something to lift.
   */
  async liftOptOuts(trx: Transaction<Tables>, subjectId: string, topics: readonly string[], at: string): Promise<string[]> {
    const marketing = topics.filter((topic) => this.topics.get(topic)?.kind === 'marketing');
    if (marketing.length === 0) return [];
    const index = (await this.deps.subjects.emailBlindIndexes(trx, [subjectId])).get(subjectId);
    const lifted: string[] = [];
    for (const topic of marketing) {
      if (await store.liftOptOut(trx, { subjectId, topic, blindIndex: index, now: at })) lifted.push(topic);
    }
    return lifted;
  }

  /** A subject's topic states (the state comms keeps; the consent ledger keeps its own). */
  async topicStates(subjectId: string): Promise<Array<{ topic: string; state: string; updatedAt: string }>> {
    return (await store.topicStates(this.deps.database.db, subjectId)).map((row) => ({ topic: row.topic, state: row.state, updatedAt: row.updated_at }));
  }

  /** Is this address on the suppression list for the topic (or for all marketing)? */
  async isSuppressed(address: string, topic: string): Promise<boolean> {
    return store.isSuppressed(this.deps.database.db, this.deps.subjects.emailBlindIndex(address), topic);
  }

  // --- policy publication ----------------------------------------------------------------------

  /**
   * Publishes a policy version (`pledge policy publish`). When the change must be told by
   * email (the new policy's `changes.notify`, material changes only unless material_only is
   * false), a notice run is created in the same transaction; the worker then queues one notice
   * per registered subject in batches, resuming after the last subject queued.
   */
  async publishPolicy(actor: Actor, policy: Policy, effectiveDate: string = policy.effectiveDate): Promise<PublishedVersion & { created: boolean; noticesScheduled: boolean }> {
    let scheduled = false;
    const published = await this.deps.policyService.publish(policy, effectiveDate, actor, this.deps.audit, async (trx, version) => {
      if (!version.previous || !this.mustNotify(version)) return;
      await store.createRun(trx, {
        policy_version_id: version.version.id,
        status: 'running',
        cursor: '',
        queued: 0,
        details: JSON.stringify({
          version: version.policy.version,
          effectiveDate,
          versionId: version.version.id,
          changes: version.changes.filter((change) => change.material).map((change) => change.summary),
          acceptance: version.policy.document.changes.acceptance,
        }),
        created_at: this.deps.clock.now().toISOString(),
        finished_at: null,
      });
      scheduled = true;
    });
    return { ...published, noticesScheduled: scheduled };
  }

  private mustNotify(version: PublishedVersion): boolean {
    return version.policy.document.changes.notify.some(
      (rule) => rule.audience === 'registered' && rule.channel === 'email' && (version.material || rule.material_only === false),
    );
  }

  /**
   * Queues the next batch of a running notice run, with the run's cursor, in one transaction:
   * a crash loses nothing and repeats nothing (the idempotency key is per subject and version).
   */
  async advanceNotices(): Promise<number> {
    const { database, clock } = this.deps;
    // The notices are sealed inside the transaction: the KEK is looked up before (see enqueue).
    await this.deps.keyring.refresh();
    return database.db.transaction().execute(async (trx) => {
      const run = await store.lockRunningRun(trx, database.dialect);
      if (!run) return 0;
      const ids = await this.deps.subjects.registeredAfter(trx, run.cursor, NOTICE_BATCH);
      const now = clock.now();
      const rows = ids.map((subjectId) =>
        this.prepare({ topic: 'policy_change', subjectId, template: 'policy_change', data: JSON.parse(run.details) as TemplateData, idempotencyKey: 'notice', policyVersionId: run.policy_version_id }, now),
      );
      const inserted = await store.insertMessages(trx, rows);
      const done = ids.length < NOTICE_BATCH;
      await store.advanceRun(trx, run.policy_version_id, { cursor: ids.at(-1) ?? run.cursor, added: inserted.length, done, now: now.toISOString() });
      if (done) {
        await this.deps.audit.appendWithin(trx, [
          { actor: SYSTEM, action: 'policy.notices_queued', target: { type: 'policy_version', id: run.policy_version_id }, details: { queued: run.queued + inserted.length } },
        ]);
      }
      return Math.max(ids.length, done ? 0 : 1);
    });
  }

  async noticeRun(versionId: string) {
    const run = await store.getRun(this.deps.database.db, versionId);
    return run ? { versionId: run.policy_version_id, status: run.status, queued: run.queued, createdAt: run.created_at, finishedAt: run.finished_at } : undefined;
  }

  /** Records that a subject accepted a policy version (the active one when none is named). */
  async recordAcceptance(actor: Actor, subjectId: string, versionId?: string, method = 'explicit'): Promise<{ subjectId: string; versionId: string; acceptedAt: string; created: boolean }> {
    const subject = await this.deps.subjects.get(subjectId);
    if (subject.status === 'erased') throw new PledgeError('subject_erased', 'the subject was erased');
    const version = versionId ? await this.deps.policyService.getVersion(versionId) : await this.deps.policyService.activeVersionNow();
    if (!version) throw new PledgeError('policy_version_not_found', 'no published policy version has this id');
    const stamp = this.deps.clock.now().toISOString();
    const created = await this.deps.database.db.transaction().execute(async (trx) => {
      const added = await store.accept(trx, { subject_id: subjectId, policy_version_id: version.id, method: headerText(method, 40), accepted_at: stamp });
      if (added) await this.deps.audit.appendWithin(trx, [{ actor, action: 'policy.accepted', target: { type: 'subject', id: subjectId }, details: { policyVersion: version.id, method } }]);
      return added;
    });
    const row = await store.acceptance(this.deps.database.db, subjectId, version.id);
    return { subjectId, versionId: version.id, acceptedAt: row!.accepted_at, created };
  }

  // --- mail from company services ----------------------------------------------------------------

  /**
   * A message a company service asks for (POST /v1/outbox): to a subject, on a topic the policy
   * declares, with the free `message` template. The message and its audit entry are written in
   * one transaction; the same idempotency key again (same person, same topic) queues nothing and
   * answers the message queued first. Marketing is checked when it is sent, not here: a person
   * may refuse it between now and then.
   */
  async queueMessage(actor: Actor, input: QueueMessageInput): Promise<MessageSummary & { created: boolean }> {
    const topic = this.topic(input.topic);
    if (topic.kind !== 'service' && topic.kind !== 'marketing') {
      throw new PledgeError('unknown_topic', `"${topic.id}" mail is sent by Pledge itself; name a topic declared under communications in the policy`);
    }
    if (topic.purpose !== null && !actorMayUsePurpose(actor, topic.purpose)) {
      throw new PledgeError('purpose_not_permitted', `this API key may not use purpose "${topic.purpose}", which topic "${topic.id}" serves`, { details: { reason: 'api_key_scope' } });
    }
    const subject = await this.deps.subjects.get(input.subjectId);
    if (subject.status === 'erased') throw new PledgeError('subject_erased', 'the subject was erased; no mail can reach them');
    await this.deps.keyring.refresh();
    return this.deps.database.db.transaction().execute(async (trx) => {
      const queued = await this.enqueue(
        {
          topic: topic.id,
          subjectId: subject.id,
          template: 'message',
          data: { subject: input.subject, body: input.body, ...(input.name !== undefined ? { name: input.name } : {}) },
          idempotencyKey: input.idempotencyKey,
          ...(input.sendAt !== undefined ? { sendAt: input.sendAt } : {}),
        },
        trx,
      );
      const row = await store.get(trx, queued.id);
      // Last in the transaction: from the append to the commit, every other append waits.
      if (queued.created) await this.deps.audit.appendWithin(trx, [{ actor, action: 'comms.queued', target: { type: 'subject', id: subject.id }, purpose: topic.purpose ?? undefined, details: { message: queued.id, topic: topic.id } }]);
      return { ...summary(row!), created: queued.created };
    });
  }

  // --- retrying failed mail ---------------------------------------------------------------------

  /**
   * Gives failed messages a new round of attempts (POST /v1/outbox/{id}/retry, `pledge outbox
   * retry`): each goes back to the queue, due now, its attempts counted from zero, keeping its
   * id and Message-ID, and is audited (comms.retried). Nothing else changes: marketing is still
   * checked against the person's choices when it is claimed, so a person who opted out since
   * gets nothing. Returns the ids requeued; a message not failed is skipped.
   */
  async retryFailed(actor: Actor, ids: readonly string[]): Promise<string[]> {
    const stamp = this.deps.clock.now().toISOString();
    return this.deps.database.db.transaction().execute(async (trx) => {
      const requeued = await store.requeueFailed(trx, ids, stamp);
      if (requeued.length > 0) {
        await this.deps.audit.appendWithin(
          trx,
          requeued.map((row) => ({
            actor,
            action: 'comms.retried',
            target: row.subject_id ? { type: 'subject', id: row.subject_id } : { type: 'message', id: row.id },
            ...(row.purpose ? { purpose: row.purpose } : {}),
            details: { message: row.id, topic: row.topic },
          })),
        );
      }
      return requeued.map((row) => row.id);
    });
  }

  /** Retries one failed message; refused when there is no such message, or it has not failed. */
  async retry(actor: Actor, id: string): Promise<MessageSummary> {
    const before = await store.get(this.deps.database.db, id);
    if (!before) throw new PledgeError('message_not_found', 'no outbox message has this id');
    if ((await this.retryFailed(actor, [id])).length === 0) {
      const now = await store.get(this.deps.database.db, id);
      throw new PledgeError('message_not_failed', `only a failed message can be retried; this one is ${now?.status ?? before.status}`, { details: { messageStatus: now?.status ?? before.status } });
    }
    return this.get(id);
  }

  /** Every failed message, a page at a time; returns how many were requeued. */
  async retryAllFailed(actor: Actor, page = 500): Promise<number> {
    let after = '';
    let requeued = 0;
    for (;;) {
      const ids = await store.failedIds(this.deps.database.db, after, page);
      if (ids.length === 0) return requeued;
      requeued += (await this.retryFailed(actor, ids)).length;
      after = ids.at(-1)!;
    }
  }

  // --- reading the outbox ----------------------------------------------------------------------

  async list(filter: OutboxFilter): Promise<MessageSummary[]> {
    return (await store.list(this.deps.database.db, filter)).map(summary);
  }

  async counts(): Promise<Record<string, number>> {
    return store.countByStatus(this.deps.database.db);
  }

  /** One message's metadata; no address or body (those are personal data, rendered only at send). */
  async get(id: string): Promise<MessageSummary> {
    const row = await store.get(this.deps.database.db, id);
    if (!row) throw new PledgeError('message_not_found', 'no outbox message has this id');
    return summary(row);
  }

  /** Where a stored message's .eml file is (no SMTP configured). */
  emlPath(id: string): string {
    return path.join(this.deps.dataDir, 'outbox', `${id}.eml`);
  }

  // --- master key rotation ---------------------------------------------------------------------

  /**
   * Re-wraps, under PLEDGE_MASTER_KEY's KEK, the sealed address and data of every message not
   * yet delivered that is still under another one (part of `pledge keys rotate`, see
   * comms.rotation); returns how many messages.
   */
  rewrapSealed(batchSize = 1000, onProgress?: (rewrapped: number) => void): Promise<number> {
    return rewrapOutbox(this.deps.database, this.deps.keyring, batchSize, onProgress);
  }

  /** Messages still sealed under another KEK: under one this process holds (`remaining`), or under one it does not (`unreadable`). */
  countSealedToRewrap(): Promise<{ remaining: number; unreadable: number }> {
    return countOutboxToRewrap(this.deps.database, this.deps.keyring);
  }

  async close(): Promise<void> {
    await this.worker.stop();
    await this.transport.close();
  }
}

/** The From of every message: PLEDGE_MAIL_FROM, else the policy's privacy contact, else no-reply at the public host. */
function senderOf(policy: Policy, configured: string | undefined, publicUrl: string): { name: string; address: string } {
  const name = headerText(policy.document.organization.name, 100);
  if (configured) {
    const match = /^(.*)<([^<>]+)>\s*$/.exec(configured);
    return match ? { name: headerText(match[1]!.replace(/"/g, ''), 100) || name, address: match[2]!.trim() } : { name, address: configured };
  }
  const contact = policy.document.organization.contacts.find((entry) => entry.email && entry.role === 'privacy');
  if (contact?.email) return { name, address: contact.email };
  return { name, address: `no-reply@${new URL(publicUrl).hostname}` };
}
