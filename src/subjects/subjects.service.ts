import type { Kysely, Transaction } from 'kysely';
import type { AuditEvent, AuditWriter } from '../audit/audit.types.js';
import type { Clock } from '../core/clock.js';
import { blindIndex, open, seal } from '../core/crypto.js';
import type { Database } from '../core/db.js';
import type { Tables } from '../core/db.tables.js';
import { deepFreeze } from '../core/freeze.js';
import { PledgeError, isPledgeError, type ErrorCode } from '../core/errors.js';
import { newId } from '../core/ids.js';
import type { Keyring } from '../core/keyring.js';
import type { Policy } from '../policy/policy.model.js';
import type { CollectionEntry } from '../policy/policy.schema.js';
import { covers } from '../policy/taxonomy.js';
import { keptOnlyByException, RetentionRules } from '../retention/retention.rules.js';
import { actorMayUsePurpose, JUSTIFICATION_REQUIRED, type Actor } from '../staff/permissions.js';
import { checkAgeGate } from './age-gate.js';
import { requireShallowValue, requireValidEmailField } from './field-values.js';
import type { ConsentGate } from './consent-gate.js';
import { normalizeIdentity, type IdentityKind } from './identities.js';
import type { KeyStore, OpenedField, SubjectKey } from './keystore.js';
import { subjectsStore as store, type FieldRetentionQuery } from './subjects.store.js';
import type { SubjectFieldsTable, SubjectIdentitiesTable, SubjectsTable } from './subjects.tables.js';

/**
 * The vault: the one door through which personal data enters and leaves Pledge.
 *
 * - Every field is encrypted with its subject's own data key (AES-256-GCM), bound to the
 *   subject and the category, so a ciphertext moved to another row does not open.
 * - Identities are found through a blind index (HMAC), never by scanning or decrypting.
 * - Writes are refused unless the policy collects the category from that source and the
 *   purpose may use it; reads return only what the purpose may use, and only while consent
 *   and restriction allow it.
 * - Every read and write is audited: writes in the same transaction, reads before any data
 *   is returned.
 */
export type FieldSource = SubjectFieldsTable['source'];

export interface IdentityInput {
  kind: IdentityKind;
  value: string;
}

export interface DataWrite {
  purpose: string;
  source: FieldSource;
  /** With source: partner, the policy's source id. */
  partner?: string;
  fields: Record<string, unknown>;
}

export interface CreateSubjectInput {
  kinds: string[];
  identities?: IdentityInput[];
  data?: DataWrite;
}

/** One item of a batch update: the subject, and what changes (at least one of the three). */
export interface BatchUpdateInput {
  id: string;
  kinds?: string[];
  addIdentities?: IdentityInput[];
  data?: DataWrite;
}

/** A batch update item once checked, with the subject row it changes. */
interface PreparedUpdate {
  row: SubjectsTable;
  kinds: string[] | undefined;
  identities: PreparedIdentity[];
  data: PreparedData | undefined;
}

export interface SubjectSummary {
  id: string;
  kinds: string[];
  status: SubjectsTable['status'];
  restricted: boolean;
  createdAt: string;
  updatedAt: string;
  lastActivityAt: string;
  closedAt: string | null;
  erasedAt: string | null;
}

export interface FieldValue {
  value: unknown;
  source: FieldSource;
  partner: string | null;
  collectedFor: string;
  collectedAt: string;
  updatedAt: string;
}

export interface PurposeRead {
  subjectId: string;
  purpose: string;
  /** The recipient the data is read for, when the read names one. */
  recipient?: string;
  fields: Record<string, FieldValue>;
}

export interface BatchItemError {
  index: number;
  code: ErrorCode;
  message: string;
}

export const MAX_BATCH = 1000;
const MAX_FIELD_BYTES = 64 * 1024;

interface PreparedIdentity {
  kind: IdentityKind;
  normalized: string;
  blindIndex: string;
}

interface PreparedCreate {
  kinds: string[];
  identities: PreparedIdentity[];
  data: PreparedData | undefined;
}

interface PreparedData {
  purpose: string;
  source: FieldSource;
  partner: string | null;
  fields: Array<{ category: string; json: string }>;
}

export interface SubjectsServiceDeps {
  database: Database;
  keystore: KeyStore;
  keyring: Keyring;
  policy: Policy;
  audit: AuditWriter;
  consent: ConsentGate;
  clock: Clock;
  /** Legal holds (kept by the retention domain): a held subject is never erased. */
  holds?: { isHeld(subjectId: string): Promise<boolean> };
}

function summary(row: SubjectsTable): SubjectSummary {
  return {
    id: row.id,
    kinds: JSON.parse(row.kinds) as string[],
    status: row.status,
    restricted: row.restricted === 1,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    lastActivityAt: row.last_activity_at,
    closedAt: row.closed_at,
    erasedAt: row.erased_at,
  };
}

/** Does a collection entry concern any of these subject kinds? An entry naming none concerns everyone. */
function collectsAbout(entry: Pick<CollectionEntry, 'subjects'>, kinds: readonly string[]): boolean {
  const concerned: readonly string[] | undefined = entry.subjects;
  return !concerned || concerned.length === 0 || concerned.some((kind) => kinds.includes(kind));
}

/** Does a collection entry take data from `source` (and, from a partner, from this one)? */
function takesFrom(entry: Pick<CollectionEntry, 'source' | 'partner'>, source: FieldSource, partner: string | null): boolean {
  return entry.source === source && (source !== 'partner' || entry.partner === partner);
}

/** Unique-constraint violations on SQLite and PostgreSQL. */
function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: string })?.code;
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === '23505';
}

export class SubjectsService {
  private readonly blindKey: Buffer;
  private readonly refusals = new Map<string, { code: ErrorCode; message: string } | undefined>();

  constructor(private readonly deps: SubjectsServiceDeps) {
    this.blindKey = deps.keyring.secret('blind_index');
  }

  private get policy(): Policy {
    return this.deps.policy;
  }

  // --- validation ------------------------------------------------------------------------------

  private prepareIdentity(input: IdentityInput): PreparedIdentity {
    const normalized = normalizeIdentity(input.kind, input.value);
    return { kind: input.kind, normalized, blindIndex: blindIndex(this.blindKey, input.kind, normalized) };
  }

  private prepareKinds(kinds: readonly string[]): string[] {
    const declared = new Set(this.policy.document.subject_kinds.map((kind) => kind.id));
    for (const kind of kinds) {
      if (!declared.has(kind)) throw new PledgeError('unknown_subject_kind', `subject kind "${kind}" is not declared in the policy (declared: ${[...declared].join(', ')})`);
    }
    return [...new Set(kinds)];
  }

  /**
   * Applies the policy to a write about a subject of `kinds`: purpose, source, categories
   * (collected from these kinds of people, from this source), sizes and the age gate.
   */
  private prepareData(write: DataWrite, kinds: readonly string[], now: Date): PreparedData {
    // First of all: every later check, and the serialisation, reads the values recursively.
    for (const [category, value] of Object.entries(write.fields)) requireShallowValue(category, value);
    const purpose = this.policy.purposes.get(write.purpose);
    if (!purpose) throw new PledgeError('unknown_purpose', `purpose "${write.purpose}" is not declared in the policy`);
    // Ignored, it would leave the caller believing the partner was recorded.
    if (write.partner !== undefined && write.source !== 'partner') {
      throw new PledgeError('unexpected_partner', `"partner" is accepted only with source "partner", not "${write.source}"; nothing was stored`, { details: { field: 'partner' } });
    }
    const partner = write.source === 'partner' ? (write.partner ?? null) : null;
    if (write.source === 'partner' && (!partner || !this.policy.document.sources?.some((source) => source.id === partner))) {
      throw new PledgeError('category_not_collected', `source: partner needs a partner declared under sources in the policy`);
    }
    const fields: PreparedData['fields'] = [];
    for (const [category, value] of Object.entries(write.fields)) {
      const refusal = this.categoryRefusal(purpose.id, write.source, partner, kinds, category);
      if (refusal) throw new PledgeError(refusal.code, refusal.message);
      if (value === undefined) continue;
      requireValidEmailField(category, value);
      const json = JSON.stringify(value);
      if (Buffer.byteLength(json) > MAX_FIELD_BYTES) throw new PledgeError('invalid_field_value', `the value of "${category}" is larger than ${MAX_FIELD_BYTES / 1024} KB`);
      checkAgeGate(category, value, this.policy.document.children?.minimum_age, now);
      fields.push({ category, json });
    }
    return { purpose: purpose.id, source: write.source, partner, fields };
  }

  /**
   * Why the policy refuses `category` from `source` about a subject of `kinds` (declared
   * kinds) for `purposeId`, or undefined when it allows it. Remembered per combination:
   * batch imports ask the same question many times.
   */
  private categoryRefusal(purposeId: string, source: FieldSource, partner: string | null, kinds: readonly string[], category: string): { code: ErrorCode; message: string } | undefined {
    const key = `${purposeId}\u0000${source}\u0000${partner ?? ''}\u0000${[...kinds].sort().join(',')}\u0000${category}`;
    if (this.refusals.has(key)) return this.refusals.get(key);
    let refusal: { code: ErrorCode; message: string } | undefined;
    const collecting = this.policy.document.collection.filter((entry) => entry.categories.some((reference) => covers(reference, category)));
    const entries = collecting.filter((entry) => collectsAbout(entry, kinds));
    if (!this.policy.categories.has(category)) {
      refusal = { code: 'category_not_collected', message: `"${category}" is not a data category of the policy` };
    } else if (collecting.length === 0) {
      refusal = { code: 'category_not_collected', message: `the policy does not collect "${category}"` };
    } else if (entries.length === 0) {
      refusal = { code: 'category_not_collected', message: `the policy does not collect "${category}" about subjects of kind ${kinds.join(', ')}` };
    } else if (!entries.some((entry) => takesFrom(entry, source, partner))) {
      refusal = { code: 'category_not_collected', message: `the policy does not collect "${category}" from source ${source}${partner ? ` (${partner})` : ''}` };
    } else if (!this.policy.purposeAllows(purposeId, category)) {
      refusal = { code: 'category_not_permitted', message: `purpose "${purposeId}" may not use "${category}" under the policy` };
    }
    // Bounded: category names come from callers, and a flood of made-up ones must not grow it.
    if (this.refusals.size < 10_000) this.refusals.set(key, refusal);
    return refusal;
  }

  private prepareCreate(input: CreateSubjectInput, now: Date): PreparedCreate {
    if (input.kinds.length === 0) throw new PledgeError('unknown_subject_kind', 'a subject needs at least one kind');
    const kinds = this.prepareKinds(input.kinds);
    const identities = (input.identities ?? []).map((identity) => this.prepareIdentity(identity));
    const seen = new Set<string>();
    for (const identity of identities) {
      const key = `${identity.kind}:${identity.blindIndex}`;
      if (seen.has(key)) throw new PledgeError('invalid_identity', `the same ${identity.kind} identity is given twice`);
      seen.add(key);
    }
    return { kinds, identities, data: input.data ? this.prepareData(input.data, kinds, now) : undefined };
  }

  // --- creation ----------------------------------------------------------------------------------

  /**
   * An API key writes only for the purposes it is scoped to, whichever route the data comes
   * through. An undeclared purpose is left to prepareData, which names it as unknown.
   */
  private requirePurposeScope(actor: Actor, purposeIds: readonly string[]): void {
    const refused = [...new Set(purposeIds)].filter((id) => this.policy.purposes.has(id) && !actorMayUsePurpose(actor, id));
    if (refused.length === 0) return;
    const named = refused.map((id) => `"${id}"`).join(', ');
    throw new PledgeError('purpose_not_permitted', `this API key may not use purpose ${named}; nothing was stored`, { details: { reason: 'api_key_scope' } });
  }

  async create(actor: Actor, input: CreateSubjectInput): Promise<SubjectSummary> {
    const now = this.deps.clock.now();
    if (input.data) this.requirePurposeScope(actor, [input.data.purpose]);
    const prepared = this.prepareCreate(input, now);
    const [taken] = await this.identityConflicts([{ index: 0, item: prepared }]);
    if (taken) throw new PledgeError('identity_taken', taken.message);
    const [created] = await this.insertPrepared(actor, [prepared], now, async () => {
      throw new PledgeError('identity_taken', 'an identity already belongs to another subject');
    });
    return created!;
  }

  /**
   * Creates up to MAX_BATCH subjects in one transaction: every item is checked first — its
   * own validity, then its identities against the rest of the batch and against the stored
   * subjects — and if any fails nothing is written and every failure is reported by its index.
   */
  async createMany(actor: Actor, inputs: readonly CreateSubjectInput[]): Promise<SubjectSummary[]> {
    if (inputs.length > MAX_BATCH) throw new PledgeError('batch_rejected', `a batch holds at most ${MAX_BATCH} subjects, got ${inputs.length}`, { details: { errors: [] } });
    // Out of the key's scope is a refusal of the whole request, as for a single write.
    this.requirePurposeScope(actor, inputs.flatMap((input) => (input.data ? [input.data.purpose] : [])));
    const now = this.deps.clock.now();
    const errors: BatchItemError[] = [];
    const valid: Array<{ index: number; item: PreparedCreate }> = [];
    inputs.forEach((input, index) => {
      try {
        valid.push({ index, item: this.prepareCreate(input, now) });
      } catch (error) {
        if (!isPledgeError(error)) throw error;
        errors.push({ index, code: error.code, message: error.message });
      }
    });
    errors.push(...(await this.identityConflicts(valid)));
    if (errors.length > 0) throw this.batchRejected(errors);
    return this.insertPrepared(actor, valid.map(({ item }) => item), now, async () => {
      const conflicts = await this.identityConflicts(valid);
      throw conflicts.length > 0 ? this.batchRejected(conflicts) : new PledgeError('identity_taken', 'an identity of the batch already belongs to another subject');
    });
  }

  /**
   * Every identity of these items that another subject already holds, or that an earlier item
   * of the same batch also gives: one error per item and identity, by the item's index.
   */
  private async identityConflicts(items: ReadonlyArray<{ index: number; item: { identities: readonly PreparedIdentity[] } }>): Promise<BatchItemError[]> {
    const byKind = new Map<IdentityKind, Set<string>>();
    for (const { item } of items) {
      for (const identity of item.identities) {
        if (!byKind.has(identity.kind)) byKind.set(identity.kind, new Set());
        byKind.get(identity.kind)!.add(identity.blindIndex);
      }
    }
    const stored = new Set<string>();
    for (const [kind, indexes] of byKind) {
      for (const row of await store.findByIdentities(this.deps.database.db, kind, [...indexes])) stored.add(`${kind}:${row.blind_index}`);
    }
    const conflicts: BatchItemError[] = [];
    const owners = new Map<string, number>();
    for (const { index, item } of items) {
      for (const identity of item.identities) {
        const key = `${identity.kind}:${identity.blindIndex}`;
        const first = owners.get(key);
        if (stored.has(key)) conflicts.push({ index, code: 'identity_taken', message: `this ${identity.kind} identity already belongs to another subject` });
        else if (first !== undefined) conflicts.push({ index, code: 'identity_taken', message: `a ${identity.kind} identity of this item is also given to item ${first}` });
        else owners.set(key, index);
      }
    }
    return conflicts;
  }

  private batchRejected(errors: BatchItemError[]): PledgeError {
    errors.sort((a, b) => a.index - b.index);
    const failing = new Set(errors.map((error) => error.index)).size;
    return new PledgeError('batch_rejected', `${failing} item(s) of the batch are invalid; nothing was written`, { details: { errors } });
  }

  /**
   * Writes items already checked, identity conflicts included. `onIdentityRace` reports the
   * identities another request took between that check and this insert.
   */
  private async insertPrepared(actor: Actor, items: readonly PreparedCreate[], now: Date, onIdentityRace: () => Promise<never>): Promise<SubjectSummary[]> {
    const { database, keystore, audit } = this.deps;
    const stamp = now.toISOString();
    const ids = items.map(() => newId('sub', now.getTime()));
    const keys = await keystore.create(ids, now);
    const subjects: SubjectsTable[] = [];
    const identities: SubjectIdentitiesTable[] = [];
    const fields: SubjectFieldsTable[] = [];
    const events: AuditEvent[] = [];
    items.forEach((item, index) => {
      const id = ids[index]!;
      const key = keys.get(id)!;
      subjects.push({ id, kinds: JSON.stringify(item.kinds), status: 'active', restricted: 0, created_at: stamp, updated_at: stamp, last_activity_at: stamp, closed_at: null, erased_at: null });
      for (const identity of item.identities) {
        identities.push(this.identityRow(id, key, identity, stamp));
      }
      for (const field of item.data?.fields ?? []) {
        fields.push(this.fieldRow(id, key, field, item.data!, stamp));
      }
      events.push({
        actor,
        action: 'subject.created',
        target: { type: 'subject', id },
        ...(item.data ? { purpose: item.data.purpose } : {}),
        details: { kinds: item.kinds, identities: item.identities.map((identity) => identity.kind), categories: (item.data?.fields ?? []).map((field) => field.category) },
      });
    });
    try {
      await database.db.transaction().execute(async (trx) => {
        await store.insertSubjects(trx, subjects);
        await store.insertIdentities(trx, identities);
        await store.insertFields(trx, fields);
        await audit.appendWithin(trx, events);
      });
    } catch (error) {
      await keystore.destroy(ids);
      if (isUniqueViolation(error)) await onIdentityRace();
      throw error;
    }
    return subjects.map(summary);
  }

  /** An identity as stored: found by its blind index, its value sealed under the subject's key. */
  private identityRow(subjectId: string, key: Buffer, identity: PreparedIdentity, stamp: string): SubjectIdentitiesTable {
    return { subject_id: subjectId, kind: identity.kind, blind_index: identity.blindIndex, value: seal(key, Buffer.from(identity.normalized), `identity:${subjectId}:${identity.kind}`), created_at: stamp };
  }

  private fieldRow(subjectId: string, key: Buffer, field: { category: string; json: string }, data: PreparedData, stamp: string): SubjectFieldsTable {
    return {
      subject_id: subjectId,
      category: field.category,
      value: seal(key, Buffer.from(field.json), `field:${subjectId}:${field.category}`),
      source: data.source,
      partner: data.partner,
      purpose: data.purpose,
      collected_at: stamp,
      updated_at: stamp,
    };
  }

  // --- look-up and metadata -----------------------------------------------------------------

  private async requireSubject(id: string, options: { active?: boolean } = {}): Promise<SubjectsTable> {
    const row = await store.getSubject(this.deps.database.db, id);
    if (!row) throw new PledgeError('subject_not_found', 'no subject has this id');
    if (row.status === 'erased') throw new PledgeError('subject_erased', 'the subject was erased; its data can no longer be read');
    if (options.active && row.status === 'closed') throw new PledgeError('subject_closed', 'the subject is closed; no data can be added');
    return row;
  }

  /** SQL selecting (id, status) of the subjects whose id is in `ids`, a PostgreSQL text[] expression. */
  statusesSql(ids: string): string {
    return store.statusesSql(ids);
  }

  /** The status of each of these subjects that exists, read with `executor` (a caller's transaction). */
  statusesOf(executor: Kysely<Tables>, ids: readonly string[]): Promise<Map<string, string>> {
    return store.statusesOf(executor, ids);
  }

  async get(id: string): Promise<SubjectSummary> {
    const row = await store.getSubject(this.deps.database.db, id);
    if (!row) throw new PledgeError('subject_not_found', 'no subject has this id');
    return summary(row);
  }

  /** Finds a subject by one identity, through the blind index. */
  async lookup(actor: Actor, input: IdentityInput): Promise<SubjectSummary> {
    const identity = this.prepareIdentity(input);
    const [match] = await store.findByIdentities(this.deps.database.db, identity.kind, [identity.blindIndex]);
    await this.deps.audit.record([
      { actor, action: 'subject.lookup', ...(match ? { target: { type: 'subject', id: match.subject_id } } : {}), details: { kind: identity.kind, found: Boolean(match) } },
    ]);
    if (!match) throw new PledgeError('subject_not_found', `no subject has this ${identity.kind}`);
    return this.get(match.subject_id);
  }

  // --- data ------------------------------------------------------------------------------------

  private async dataKey(subjectId: string): Promise<Buffer> {
    return (await this.keyEntry(subjectId)).key;
  }

  /** The subject's key with the values opened with it (see KeyStore). */
  private async keyEntry(subjectId: string): Promise<SubjectKey> {
    const entry = await this.deps.keystore.entry(subjectId);
    if (!entry) throw new PledgeError('subject_erased', 'the subject\'s data key is destroyed; its data can no longer be read');
    return entry;
  }

  async writeData(actor: Actor, subjectId: string, write: DataWrite): Promise<{ categories: string[] }> {
    const now = this.deps.clock.now();
    this.requirePurposeScope(actor, [write.purpose]);
    const subject = await this.requireSubject(subjectId, { active: true });
    const prepared = this.prepareData(write, JSON.parse(subject.kinds) as string[], now);
    const key = await this.dataKey(subjectId);
    const stamp = now.toISOString();
    const categories = prepared.fields.map((field) => field.category);
    await this.deps.database.db.transaction().execute(async (trx) => {
      for (const field of prepared.fields) await store.upsertField(trx, this.fieldRow(subjectId, key, field, prepared, stamp));
      await store.updateSubject(trx, subjectId, { updated_at: stamp, last_activity_at: stamp });
      await this.deps.audit.appendWithin(trx, [{ actor, action: 'data.written', target: { type: 'subject', id: subjectId }, purpose: prepared.purpose, details: { categories, source: prepared.source } }]);
    });
    return { categories };
  }

  /**
   * Returns the subject's data that `purpose` may use — only the categories the policy allows
   * it, and only while consent and restriction allow the purpose. The audit entry is stored
   * before anything is returned.
   *
   * With `recipientId`, the data is read to pass it to that recipient: the recipient must serve
   * the purpose and the person must not have opted out of sharing with it, and only the
   * categories both the purpose and the recipient may have come back.
   */
  async readData(actor: Actor, subjectId: string, purposeId: string, justification?: string, recipientId?: string): Promise<PurposeRead> {
    const purpose = this.policy.purposes.get(purposeId);
    if (!purpose) throw new PledgeError('unknown_purpose', `purpose "${purposeId}" is not declared in the policy`);
    if (recipientId !== undefined && !this.policy.recipients.has(recipientId)) {
      throw new PledgeError('unknown_recipient', `recipient "${recipientId}" is not declared under recipients in the policy`);
    }
    if (!actorMayUsePurpose(actor, purposeId)) {
      throw new PledgeError('purpose_not_permitted', `this API key may not use purpose "${purposeId}"`, { details: { reason: 'api_key_scope' } });
    }
    const cleanJustification = justification?.trim();
    if (actor.type === 'staff' && JUSTIFICATION_REQUIRED.includes(actor.role) && !cleanJustification) {
      throw new PledgeError('justification_required', 'say why you read this person\'s data (header X-Pledge-Justification); it is written to the audit log');
    }
    if (recipientId !== undefined && !this.policy.recipients.get(recipientId)!.purposes.includes(purposeId)) {
      throw new PledgeError('purpose_not_permitted', `recipient "${recipientId}" does not receive data for purpose "${purposeId}" under the policy`, { details: { reason: 'recipient_purpose' } });
    }
    // Both reads at once: on a networked database they share a round trip's wait.
    const [found, decision] = await Promise.all([
      store.subjectWithSeals(this.deps.database.db, subjectId),
      recipientId === undefined ? this.deps.consent.decide(subjectId, purposeId) : this.deps.consent.decideSharing(subjectId, purposeId, recipientId),
    ]);
    if (!found) throw new PledgeError('subject_not_found', 'no subject has this id');
    const subject = found.subject;
    if (subject.status === 'erased') throw new PledgeError('subject_erased', 'the subject was erased; its data can no longer be read');
    if (subject.restricted === 1 && purpose.legal_basis !== 'legal_obligation') {
      throw new PledgeError('purpose_not_permitted', 'processing of this person\'s data is restricted: only legal obligations may use it', { details: { reason: 'restricted' } });
    }
    if (!decision.allowed) throw new PledgeError('purpose_not_permitted', decision.reason, { details: { reason: 'consent' } });

    const readable = (category: string) => this.policy.purposeAllows(purposeId, category) && (recipientId === undefined || this.policy.recipientAllows(recipientId, category));
    const seals = found.seals.filter((seal) => readable(seal.category));
    const fields: Record<string, FieldValue> = {};
    if (seals.length > 0) {
      const entry = await this.keyEntry(subjectId);
      let opened = seals.map((seal) => entry.opened.get(seal.category)).filter((known, index) => known?.sealed === seals[index]!.value);
      if (opened.length < seals.length) {
        // Something is not open yet (or changed): read the fields whole and open what is new.
        const rows = await store.fieldsOf(this.deps.database.db, subjectId);
        opened = rows
          .filter((row) => readable(row.category))
          .map((row) => {
            const known = entry.opened.get(row.category);
            if (known?.sealed === row.value) return known;
            const value = deepFreeze(JSON.parse(open(entry.key, row.value, `field:${subjectId}:${row.category}`).toString('utf8'))) as FieldValue['value'];
            const answer = Object.freeze({ value, source: row.source, partner: row.partner, collectedFor: row.purpose, collectedAt: row.collected_at, updatedAt: row.updated_at });
            const fresh: OpenedField = { sealed: row.value, row, answer };
            entry.opened.set(row.category, fresh);
            return fresh;
          });
      }
      for (const field of opened as OpenedField[]) {
        if (purpose.legal_basis !== 'legal_obligation' && this.keptOnlyByException(subject, field.row)) continue;
        fields[field.row.category] = field.answer;
      }
    }
    await this.deps.audit.record([
      {
        actor,
        action: 'data.read',
        target: { type: 'subject', id: subjectId },
        purpose: purposeId,
        details: { categories: Object.keys(fields), ...(recipientId !== undefined ? { recipient: recipientId } : {}), ...(cleanJustification ? { justification: cleanJustification.slice(0, 200) } : {}) },
      },
    ]);
    return recipientId === undefined ? { subjectId, purpose: purposeId, fields } : { subjectId, purpose: purposeId, recipient: recipientId, fields };
  }

  // --- lifecycle ---------------------------------------------------------------------------------

  async update(actor: Actor, subjectId: string, changes: { kinds?: string[]; addIdentities?: IdentityInput[] }): Promise<SubjectSummary> {
    const now = this.deps.clock.now();
    const kinds = changes.kinds ? this.prepareKinds(changes.kinds) : undefined;
    if (kinds && kinds.length === 0) throw new PledgeError('unknown_subject_kind', 'a subject needs at least one kind');
    const added = (changes.addIdentities ?? []).map((identity) => this.prepareIdentity(identity));
    await this.requireSubject(subjectId, { active: true });
    if (kinds) await this.requireKindsCoverStoredFields(subjectId, kinds);
    for (const identity of added) {
      const taken = await store.findByIdentities(this.deps.database.db, identity.kind, [identity.blindIndex]);
      if (taken.length > 0) throw new PledgeError('identity_taken', taken[0]!.subject_id === subjectId ? `the subject already has this ${identity.kind}` : `this ${identity.kind} identity already belongs to another subject`);
    }
    const key = added.length > 0 ? await this.dataKey(subjectId) : undefined;
    const stamp = now.toISOString();
    try {
      await this.deps.database.db.transaction().execute(async (trx) => {
        await store.updateSubject(trx, subjectId, { ...(kinds ? { kinds: JSON.stringify(kinds) } : {}), updated_at: stamp, last_activity_at: stamp });
        await store.insertIdentities(
          trx,
          added.map((identity) => this.identityRow(subjectId, key!, identity, stamp)),
        );
        await this.deps.audit.appendWithin(trx, [{ actor, action: 'subject.updated', target: { type: 'subject', id: subjectId }, details: { ...(kinds ? { kinds } : {}), identitiesAdded: added.map((identity) => identity.kind) } }]);
      });
    } catch (error) {
      if (isUniqueViolation(error)) throw new PledgeError('identity_taken', 'an identity already belongs to another subject');
      throw error;
    }
    return this.get(subjectId);
  }

  /**
   * Updates up to MAX_BATCH subjects in one transaction: per item, new kinds, added identities
   * and data written for a purpose. As createMany: every item is checked first — against the
   * policy (the kinds an item ends with decide what may be collected), the stored subject, and
   * the identities other subjects hold or other items give — and if any fails, nothing is
   * written and each failure is reported by its index.
   */
  async updateMany(actor: Actor, inputs: readonly BatchUpdateInput[]): Promise<SubjectSummary[]> {
    if (inputs.length > MAX_BATCH) throw new PledgeError('batch_rejected', `a batch holds at most ${MAX_BATCH} subjects, got ${inputs.length}`, { details: { errors: [] } });
    this.requirePurposeScope(actor, inputs.flatMap((input) => (input.data ? [input.data.purpose] : [])));
    const now = this.deps.clock.now();
    const rows = new Map<string, SubjectsTable>();
    for (const row of await store.subjectsByIds(this.deps.database.db, [...new Set(inputs.map((input) => input.id))])) rows.set(row.id, row);
    const errors: BatchItemError[] = [];
    const valid: Array<{ index: number; item: PreparedUpdate }> = [];
    const firstIndex = new Map<string, number>();
    inputs.forEach((input, index) => {
      try {
        const earlier = firstIndex.get(input.id);
        if (earlier !== undefined) throw new PledgeError('validation_failed', `item ${earlier} already updates this subject: give each subject once per batch`);
        firstIndex.set(input.id, index);
        valid.push({ index, item: this.prepareUpdate(input, rows.get(input.id), now) });
      } catch (error) {
        if (!isPledgeError(error)) throw error;
        errors.push({ index, code: error.code, message: error.message });
      }
    });
    errors.push(...(await this.identityConflicts(valid)));
    const kindChecks = await Promise.all(
      valid.map(async ({ index, item }) => {
        if (!item.kinds) return undefined;
        try {
          await this.requireKindsCoverStoredFields(item.row.id, item.kinds, item.data?.fields.map((field) => field.category));
          return undefined;
        } catch (error) {
          if (!isPledgeError(error)) throw error;
          return { index, code: error.code, message: error.message };
        }
      }),
    );
    for (const failure of kindChecks) if (failure) errors.push(failure);
    if (errors.length > 0) throw this.batchRejected(errors.sort((a, b) => a.index - b.index));

    const stamp = now.toISOString();
    const identities: SubjectIdentitiesTable[] = [];
    const fields: SubjectFieldsTable[] = [];
    const events: AuditEvent[] = [];
    // Asked together: the key store's reads of one round share a transaction (or a query).
    const keys = await Promise.all(valid.map(({ item }) => (item.identities.length > 0 || item.data ? this.dataKey(item.row.id) : undefined)));
    for (const [position, { item }] of valid.entries()) {
      const id = item.row.id;
      const key = keys[position];
      for (const identity of item.identities) {
        identities.push(this.identityRow(id, key!, identity, stamp));
      }
      for (const field of item.data?.fields ?? []) fields.push(this.fieldRow(id, key!, field, item.data!, stamp));
      if (item.kinds || item.identities.length > 0) {
        events.push({ actor, action: 'subject.updated', target: { type: 'subject', id }, details: { ...(item.kinds ? { kinds: item.kinds } : {}), identitiesAdded: item.identities.map((identity) => identity.kind) } });
      }
      if (item.data) {
        events.push({ actor, action: 'data.written', target: { type: 'subject', id }, purpose: item.data.purpose, details: { categories: item.data.fields.map((field) => field.category), source: item.data.source } });
      }
    }
    try {
      await this.deps.database.db.transaction().execute(async (trx) => {
        for (const { item } of valid) await store.updateSubject(trx, item.row.id, { ...(item.kinds ? { kinds: JSON.stringify(item.kinds) } : {}), updated_at: stamp, last_activity_at: stamp });
        await store.insertIdentities(trx, identities);
        for (const field of fields) await store.upsertField(trx, field);
        await this.deps.audit.appendWithin(trx, events);
      });
    } catch (error) {
      // Another request took an identity between the check and the write.
      if (!isUniqueViolation(error)) throw error;
      const conflicts = await this.identityConflicts(valid);
      throw conflicts.length > 0 ? this.batchRejected(conflicts) : new PledgeError('identity_taken', 'an identity of the batch already belongs to another subject');
    }
    return valid.map(({ item }) => summary({ ...item.row, ...(item.kinds ? { kinds: JSON.stringify(item.kinds) } : {}), updated_at: stamp, last_activity_at: stamp }));
  }

  /**
   * New kinds must still cover the data the subject holds: the policy collects each category
   * about some kinds only (collection[].subjects), and a change of kinds must not leave a field
   * the policy would refuse to collect now — a customer's address on someone who is now only a
   * visitor. `rewritten` are categories the same change writes anew (checked as they are written).
   */
  private async requireKindsCoverStoredFields(subjectId: string, kinds: readonly string[], rewritten: readonly string[] = []): Promise<void> {
    const rows = await store.fieldsOf(this.deps.database.db, subjectId);
    const collected = (row: SubjectFieldsTable) =>
      this.policy.document.collection.some((entry) => collectsAbout(entry, kinds) && takesFrom(entry, row.source, row.partner) && entry.categories.some((reference) => covers(reference, row.category)));
    const uncovered = rows.filter((row) => !rewritten.includes(row.category) && !collected(row)).map((row) => row.category);
    if (uncovered.length === 0) return;
    throw new PledgeError(
      'category_not_collected',
      `the subject holds ${uncovered.map((category) => `"${category}"`).join(', ')}, which the policy does not collect about subjects of kind ${kinds.join(', ')}: keep a kind that covers it, or erase or correct that data first`,
      { details: { categories: uncovered } },
    );
  }

  /** One batch update item checked against its stored subject and the policy; throws its first problem. */
  private prepareUpdate(input: BatchUpdateInput, row: SubjectsTable | undefined, now: Date): PreparedUpdate {
    if (!row) throw new PledgeError('subject_not_found', 'no subject has this id');
    if (row.status === 'erased') throw new PledgeError('subject_erased', 'the subject was erased; nothing can be written for it');
    if (row.status === 'closed') throw new PledgeError('subject_closed', 'the subject is closed; no data can be added');
    if (!input.kinds && !input.addIdentities && !input.data) throw new PledgeError('validation_failed', 'an item changes kinds, adds identities or writes data');
    const kinds = input.kinds ? this.prepareKinds(input.kinds) : undefined;
    if (kinds && kinds.length === 0) throw new PledgeError('unknown_subject_kind', 'a subject needs at least one kind');
    const identities = (input.addIdentities ?? []).map((identity) => this.prepareIdentity(identity));
    if (new Set(identities.map((identity) => `${identity.kind}:${identity.blindIndex}`)).size < identities.length) {
      throw new PledgeError('invalid_identity', 'the same identity is given twice');
    }
    const data = input.data ? this.prepareData(input.data, kinds ?? (JSON.parse(row.kinds) as string[]), now) : undefined;
    return { row, kinds, identities, data };
  }

  async close(actor: Actor, subjectId: string): Promise<SubjectSummary> {
    const subject = await this.requireSubject(subjectId);
    if (subject.status === 'closed') return summary(subject);
    const stamp = this.deps.clock.now().toISOString();
    await this.deps.database.db.transaction().execute(async (trx) => {
      await store.updateSubject(trx, subjectId, { status: 'closed', closed_at: stamp, updated_at: stamp });
      await this.deps.audit.appendWithin(trx, [{ actor, action: 'subject.closed', target: { type: 'subject', id: subjectId } }]);
    });
    return this.get(subjectId);
  }

  async setRestricted(actor: Actor, subjectId: string, restricted: boolean): Promise<SubjectSummary> {
    await this.requireSubject(subjectId);
    const stamp = this.deps.clock.now().toISOString();
    await this.deps.database.db.transaction().execute(async (trx) => {
      await store.updateSubject(trx, subjectId, { restricted: restricted ? 1 : 0, updated_at: stamp });
      await this.deps.audit.appendWithin(trx, [{ actor, action: restricted ? 'subject.restricted' : 'subject.unrestricted', target: { type: 'subject', id: subjectId } }]);
    });
    return this.get(subjectId);
  }

  /**
   * Erases a subject: its data key is destroyed first (from that moment no copy of its data,
   * in this database or any backup of it, can be read), then its ciphertexts are removed and a
   * tombstone without personal data remains. Erasing twice is harmless.
   */
  async erase(actor: Actor, subjectId: string): Promise<SubjectSummary> {
    const row = await store.getSubject(this.deps.database.db, subjectId);
    if (!row) throw new PledgeError('subject_not_found', 'no subject has this id');
    if (row.status === 'erased') return summary(row);
    if (await this.deps.holds?.isHeld(subjectId)) {
      throw new PledgeError('subject_on_hold', 'the subject is under a legal hold: it cannot be erased until the hold is released');
    }
    const destroyed = await this.deps.keystore.destroy([subjectId]);
    const stamp = this.deps.clock.now().toISOString();
    await this.deps.database.db.transaction().execute(async (trx) => {
      await store.eraseSubject(trx, subjectId, stamp);
      await this.deps.audit.appendWithin(trx, [{ actor, action: 'subject.erased', target: { type: 'subject', id: subjectId }, details: { keyDestroyed: destroyed > 0 } }]);
    });
    return this.get(subjectId);
  }

  /** The subject's identities, decrypted (for the person's own access request later). */
  async identities(actor: Actor, subjectId: string): Promise<Array<{ kind: string; value: string }>> {
    await this.requireSubject(subjectId);
    const rows = await store.identitiesOf(this.deps.database.db, subjectId);
    const key = rows.length > 0 ? await this.dataKey(subjectId) : undefined;
    const values = rows.map((row) => ({ kind: row.kind, value: open(key!, row.value, `identity:${subjectId}:${row.kind}`).toString('utf8') }));
    await this.deps.audit.record([{ actor, action: 'identities.read', target: { type: 'subject', id: subjectId }, details: { kinds: rows.map((row) => row.kind) } }]);
    return values;
  }

  // --- comms

  /**
   * Active subjects with an email identity, in id order after `after`: the recipients of a
   * policy-change mailing, read in batches inside the caller's transaction.
   */
  async registeredAfter(executor: Kysely<Tables> | Transaction<Tables>, after: string, limit: number): Promise<string[]> {
    return store.registeredAfter(executor, after, limit);
  }

  /**
   * Blind indexes of these subjects' email identities (the suppression list's key), read in
   * the caller's transaction; no address is decrypted.
   */
  async emailBlindIndexes(executor: Kysely<Tables> | Transaction<Tables>, subjectIds: readonly string[]): Promise<Map<string, string>> {
    return new Map((await store.emailBlindIndexesOf(executor, subjectIds)).map((row) => [row.subject_id, row.blind_index]));
  }

  /** The blind index an email address has as an identity (and on the suppression list). */
  emailBlindIndex(address: string): string {
    return this.prepareIdentity({ kind: 'email', value: address }).blindIndex;
  }

  /**
   * Decrypted email addresses of these subjects, to send mail for `purpose` (when declared).
   * Erased subjects (key destroyed) and subjects without an email are absent from the result.
   * One `identities.read` audit entry per subject found, stored before the addresses are returned.
   */
  async emailAddresses(actor: Actor, subjectIds: readonly string[], purpose?: string): Promise<Map<string, string>> {
    const addresses = new Map<string, string>();
    if (subjectIds.length === 0) return addresses;
    const rows = await store.sealedEmailsOf(this.deps.database.db, subjectIds);
    const keys = await this.deps.keystore.getMany(rows.map((row) => row.subject_id));
    for (const row of rows) {
      const key = keys.get(row.subject_id);
      if (key) addresses.set(row.subject_id, open(key, row.value, `identity:${row.subject_id}:email`).toString('utf8'));
    }
    await this.deps.audit.record(
      [...addresses.keys()].map((id) => ({ actor, action: 'identities.read', target: { type: 'subject', id }, ...(purpose ? { purpose } : {}), details: { kinds: ['email'], use: 'mail' } })),
    );
    return addresses;
  }

  // requests

  /**
   * The subjects holding any of these identities, for a data-subject request. Audited under
   * the purpose "access_request"; an identity that matches no one is not an error here (the
   * request answers the same either way).
   */
  async findForRequest(actor: Actor, identities: readonly IdentityInput[], requestId: string): Promise<string[]> {
    const found = new Set<string>();
    for (const input of identities) {
      const identity = this.prepareIdentity(input);
      for (const match of await store.findByIdentities(this.deps.database.db, identity.kind, [identity.blindIndex])) found.add(match.subject_id);
    }
    await this.deps.audit.record([{ actor, action: 'subject.lookup', purpose: 'access_request', details: { kinds: identities.map((identity) => identity.kind), found: found.size, request: requestId } }]);
    return [...found].sort();
  }

  /** Categories a subject holds and when each was collected: metadata only, nothing decrypted (dry runs). */
  async heldCategories(subjectId: string): Promise<Array<{ category: string; collectedAt: string }>> {
    const row = await store.getSubject(this.deps.database.db, subjectId);
    if (!row || row.status === 'erased') return [];
    return (await store.fieldsOf(this.deps.database.db, subjectId)).map((field) => ({ category: field.category, collectedAt: field.collected_at })).sort((a, b) => a.category.localeCompare(b.category));
  }

  /**
   * Everything the vault holds about a subject — every field, whatever purpose it was collected
   * for, and its identities — for the person's own access or portability request. Not limited
   * by purpose or restriction: the person has a right to all of it. Audited as a read under
   * the purpose "access_request" before anything is returned.
   */
  async readAllForRequest(actor: Actor, subjectId: string, requestId: string): Promise<{ identities: Array<{ kind: string; value: string }>; fields: Array<{ category: string } & FieldValue> }> {
    const row = await store.getSubject(this.deps.database.db, subjectId);
    if (!row || row.status === 'erased') return { identities: [], fields: [] };
    const [identityRows, fieldRows] = await Promise.all([store.identitiesOf(this.deps.database.db, subjectId), store.fieldsOf(this.deps.database.db, subjectId)]);
    const key = identityRows.length + fieldRows.length > 0 ? await this.dataKey(subjectId) : undefined;
    const identities = identityRows.map((identity) => ({ kind: identity.kind, value: open(key!, identity.value, `identity:${subjectId}:${identity.kind}`).toString('utf8') }));
    const fields = fieldRows
      .map((field) => ({
        category: field.category,
        value: JSON.parse(open(key!, field.value, `field:${subjectId}:${field.category}`).toString('utf8')) as unknown,
        source: field.source,
        partner: field.partner,
        collectedFor: field.purpose,
        collectedAt: field.collected_at,
        updatedAt: field.updated_at,
      }))
      .sort((a, b) => a.category.localeCompare(b.category));
    await this.deps.audit.record([
      { actor, action: 'data.read', target: { type: 'subject', id: subjectId }, purpose: 'access_request', details: { categories: fields.map((field) => field.category), identities: identities.map((identity) => identity.kind), request: requestId } },
    ]);
    return { identities, fields };
  }

  /**
   * Corrects the values of categories the subject already holds (source, purpose and
   * collection time stay); categories it does not hold are reported, not created.
   */
  async correctForRequest(actor: Actor, subjectId: string, corrections: Record<string, unknown>, requestId: string): Promise<{ updated: string[]; notHeld: string[] }> {
    const row = await store.getSubject(this.deps.database.db, subjectId);
    if (!row || row.status === 'erased') return { updated: [], notHeld: Object.keys(corrections).sort() };
    const now = this.deps.clock.now();
    const held = new Map((await store.fieldsOf(this.deps.database.db, subjectId)).map((field) => [field.category, field]));
    const updated: string[] = [];
    const notHeld: string[] = [];
    const rows: SubjectFieldsTable[] = [];
    const key = await this.dataKey(subjectId);
    const stamp = now.toISOString();
    for (const [category, value] of Object.entries(corrections).sort(([a], [b]) => a.localeCompare(b))) {
      const field = held.get(category);
      if (!field) {
        notHeld.push(category);
        continue;
      }
      requireShallowValue(category, value);
      requireValidEmailField(category, value);
      const json = JSON.stringify(value);
      if (json === undefined || Buffer.byteLength(json) > MAX_FIELD_BYTES) throw new PledgeError('invalid_field_value', `the corrected value of "${category}" is missing or larger than ${MAX_FIELD_BYTES / 1024} KB`);
      checkAgeGate(category, value, this.policy.document.children?.minimum_age, now);
      rows.push({ ...field, value: seal(key, Buffer.from(json), `field:${subjectId}:${category}`), updated_at: stamp });
      updated.push(category);
    }
    await this.deps.database.db.transaction().execute(async (trx) => {
      for (const field of rows) await store.upsertField(trx, field);
      if (rows.length > 0) await store.updateSubject(trx, subjectId, { updated_at: stamp });
      await this.deps.audit.appendWithin(trx, [{ actor, action: 'data.corrected', target: { type: 'subject', id: subjectId }, purpose: 'access_request', details: { categories: updated, notHeld, request: requestId } }]);
    });
    return { updated, notHeld };
  }

  /**
   * Erasure for a request. With nothing to keep, the subject is crypto-shredded (erase). When
   * some categories must be kept under a legal exception, every other field and every identity
   * is deleted, the kept fields stay readable under the same key, and processing is restricted
   * so only legal obligations may use them.
   */
  async eraseForRequest(actor: Actor, subjectId: string, keep: readonly string[], requestId: string): Promise<{ erased: string[]; kept: string[]; keyDestroyed: boolean }> {
    const row = await store.getSubject(this.deps.database.db, subjectId);
    if (!row || row.status === 'erased') return { erased: [], kept: [], keyDestroyed: false };
    const fields = await store.fieldsOf(this.deps.database.db, subjectId);
    const kept = fields.map((field) => field.category).filter((category) => keep.includes(category)).sort();
    const erased = fields.map((field) => field.category).filter((category) => !keep.includes(category)).sort();
    if (kept.length === 0) {
      await this.erase(actor, subjectId);
      return { erased, kept, keyDestroyed: true };
    }
    const stamp = this.deps.clock.now().toISOString();
    await this.deps.database.db.transaction().execute(async (trx) => {
      await store.deleteFields(trx, subjectId, erased);
      await store.deleteIdentities(trx, subjectId);
      await store.updateSubject(trx, subjectId, { restricted: 1, updated_at: stamp });
      await this.deps.audit.appendWithin(trx, [{ actor, action: 'subject.erased_partially', target: { type: 'subject', id: subjectId }, details: { erased, kept, request: requestId } }]);
    });
    return { erased, kept, keyDestroyed: false };
  }

  // --- retention -------------------------------------------------------------------------------

  private retentionRulesCache: RetentionRules | undefined;

  private get retentionRules(): RetentionRules {
    return (this.retentionRulesCache ??= new RetentionRules(this.policy));
  }

  /** Past its retention rule and kept only by a legal exception: only legal obligations may read it. */
  private keptOnlyByException(subject: SubjectsTable, field: SubjectFieldsTable): boolean {
    if (!this.retentionRules.mayRestrict(field.category)) return false;
    return keptOnlyByException(this.retentionRules, this.deps.clock.now(), field, { ...subject, kinds: JSON.parse(subject.kinds) as string[] });
  }

  /** Categories stored in the vault, whatever the policy now says of them. */
  async storedCategories(): Promise<string[]> {
    return store.storedCategories(this.deps.database.db);
  }

  /** How many fields a retention query reaches now (dry runs, and the progress total). */
  async countExpiredFields(query: FieldRetentionQuery): Promise<number> {
    return store.countExpiredFields(this.deps.database.db, query);
  }

  /**
   * Removes the fields a retention rule reaches, `batchSize` at a time. Each batch is one
   * transaction with its audit entry (rule, category, count — no values) and whatever
   * `withinBatch` adds, so an interrupted sweep leaves only whole batches behind and the next
   * sweep simply finds fewer rows.
   */
  async removeExpiredFields(
    actor: Actor,
    query: FieldRetentionQuery,
    options: {
      rule: string;
      action: 'delete' | 'anonymize';
      exception?: string | undefined;
      batchSize: number;
      withinBatch?: (trx: Transaction<Tables>, removed: Array<{ purpose: string; collected_at: string }>) => Promise<void>;
      onBatch?: (rows: number) => void;
      /** Checked between batches: an aborted sweep stops after its last complete batch. */
      signal?: AbortSignal | undefined;
    },
  ): Promise<number> {
    let total = 0;
    while (!options.signal?.aborted) {
      const rows = await this.deps.database.db.transaction().execute(async (trx) => {
        const result = await store.deleteExpiredFields(trx, query, { limit: options.batchSize, returning: options.action === 'anonymize', dialect: this.deps.database.dialect });
        if (result.rows === 0) return 0;
        if (options.withinBatch) await options.withinBatch(trx, result.removed);
        await this.deps.audit.appendWithin(trx, [
          {
            actor,
            action: options.action === 'anonymize' ? 'retention.fields_anonymized' : 'retention.fields_deleted',
            target: { type: 'retention_rule', id: options.rule },
            details: { category: query.category, trigger: query.trigger, cutoff: query.cutoff, rows: result.rows, ...(options.exception ? { exception: options.exception } : {}) },
          },
        ]);
        return result.rows;
      });
      total += rows;
      if (rows > 0) options.onBatch?.(rows);
      if (rows < options.batchSize) return total;
    }
    return total;
  }

  /** Closed accounts past `cutoff` with no field left, which a sweep crypto-shreds. */
  async countClosedWithoutFields(cutoff: string, exceptSubjects: readonly string[], onlySubjects?: readonly string[]): Promise<number> {
    if (onlySubjects?.length === 0) return 0;
    const row = await store.closedWithoutFields(this.deps.database.db, cutoff, exceptSubjects, onlySubjects).select((eb) => eb.fn.countAll<string | number>().as('count')).executeTakeFirst();
    return Number(row?.count ?? 0);
  }

  /**
   * Erases (as `erase` does: key destroyed first, then identities, tombstone kept) the closed
   * accounts past `cutoff` that have no field left, `batchSize` at a time. A crash between
   * destroying the keys and the transaction leaves closed subjects without keys, which the
   * next sweep erases (destroying an absent key is harmless).
   */
  async eraseClosedWithoutFields(
    actor: Actor,
    cutoff: string,
    exceptSubjects: readonly string[],
    options: { rule: string; batchSize: number; onBatch?: (subjects: number) => void; signal?: AbortSignal | undefined },
  ): Promise<number> {
    let total = 0;
    while (!options.signal?.aborted) {
      const ids = (await store.closedWithoutFields(this.deps.database.db, cutoff, exceptSubjects).select('s.id').orderBy('s.id').limit(options.batchSize).execute()).map((row) => row.id);
      if (ids.length === 0) return total;
      await this.deps.keystore.destroy(ids);
      const stamp = this.deps.clock.now().toISOString();
      await this.deps.database.db.transaction().execute(async (trx) => {
        await store.eraseSubjects(trx, ids, stamp);
        await this.deps.audit.appendWithin(
          trx,
          ids.map((id) => ({ actor, action: 'subject.erased', target: { type: 'subject', id }, details: { keyDestroyed: true, retentionRule: options.rule } })),
        );
      });
      total += ids.length;
      options.onBatch?.(ids.length);
      if (ids.length < options.batchSize) return total;
    }
    return total;
  }
}
