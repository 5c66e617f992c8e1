import type { Clock } from '../core/clock.js';
import type { ChangedRow, FoundRow, KeptRow } from '../datasets/datasets.service.js';
import { parseDuration, addDuration } from '../policy/duration.js';
import type { Policy } from '../policy/policy.model.js';
import { covers } from '../policy/taxonomy.js';
import type { Actor } from '../staff/permissions.js';
import type { IdentityInput, SubjectsService } from '../subjects/subjects.service.js';

/**
 * The datastores a request reaches. Each is one task of the request (retried and resumed on its
 * own): the vault is one, each connected dataset another. A handler's operations must be
 * idempotent — after a crash a task runs again, and finding, erasing or correcting twice must
 * leave the same state as once.
 */
/** Rows, changes and kept fields are described the same way by every datastore (the datasets domain defines them). */
export type { ChangedRow, FoundRow, KeptRow } from '../datasets/datasets.service.js';

export interface FindSummary {
  rows: number;
  collections?: string[];
}

export interface ErasureResult {
  dryRun: boolean;
  changed: ChangedRow[];
  kept: KeptRow[];
}

export interface CorrectionResult {
  changed: ChangedRow[];
  /** Categories asked for that this datastore does not hold for the person. */
  notHeld: string[];
}

export interface RestrictionResult {
  restricted: number;
}

export interface HandlerContext {
  actor: Actor;
  requestId: string;
}

export interface DatastoreHandler {
  readonly id: string;
  find(identities: readonly IdentityInput[], sink: (row: FoundRow) => void | Promise<void>, context: HandlerContext): Promise<FindSummary>;
  erase(identities: readonly IdentityInput[], options: HandlerContext & { dryRun: boolean }): Promise<ErasureResult>;
  correct(identities: readonly IdentityInput[], corrections: Record<string, unknown>, context: HandlerContext): Promise<CorrectionResult>;
  /** Datastores that can mark a person as restricted do it here; others omit it (their data is not processed by Pledge). */
  restrict?(identities: readonly IdentityInput[], context: HandlerContext): Promise<RestrictionResult>;
  /** Objection and withdrawal of consent: only the vault, through the consent ledger. */
  withdraw?(identities: readonly IdentityInput[], purposes: readonly string[], context: HandlerContext & { type: 'objection' | 'withdraw_consent' }): Promise<WithdrawResult>;
}

export interface WithdrawResult {
  subjects: number;
  /** False when no consent ledger is connected: the decision could not be recorded. */
  applied: boolean;
}

/**
 * How an objection or a withdrawal reaches the consent ledger (the consent domain implements
 * it): from then on the vault refuses those purposes for the person.
 */
/** Subjects under a legal hold (the retention domain keeps them): never erased while held. */
export interface LegalHolds {
  isHeld(subjectId: string): Promise<boolean>;
}

/** The exception a held subject's kept data is listed under in an erasure result. */
export const LEGAL_HOLD = 'legal_hold';

export interface ConsentForRequests {
  withdraw(actor: Actor, subjectId: string, purposes: readonly string[], context: { requestId: string; type: 'objection' | 'withdraw_consent' }): Promise<void>;
}

/**
 * The registry of datastores, keyed by id. The engine registers the vault; connected datasets
 * are registered from the datasets domain with `registerDatasets`.
 *
 *   const systems = new RequestSystems();
 *   systems.register(new VaultHandler(subjects, policy, clock));
 *   registerDatasets(systems, datasets);
 */
export class RequestSystems {
  private readonly handlers = new Map<string, DatastoreHandler>();

  register(handler: DatastoreHandler): void {
    if (this.handlers.has(handler.id)) throw new Error(`datastore ${handler.id} is registered twice`);
    this.handlers.set(handler.id, handler);
  }

  get(id: string): DatastoreHandler | undefined {
    return this.handlers.get(id);
  }

  /** Datastore ids in a stable order: the vault first, then the others by id. */
  ids(): string[] {
    return [...this.handlers.keys()].sort((a, b) => (a === VAULT ? -1 : b === VAULT ? 1 : a.localeCompare(b)));
  }
}

export const VAULT = 'vault';

/** What the datasets domain offers for requests (DatasetsService satisfies it). */
/** What requests use of the datasets domain (DatasetsService satisfies it). */
export interface DatasetsForRequests {
  datastores(): string[];
  find(datastoreId: string, identities: IdentityInput[], sink: (row: FoundRow) => void | Promise<void>, options: { actor?: Actor; requestId?: string }): Promise<{ rows: number; collections: Record<string, number> }>;
  erase(datastoreId: string, identities: IdentityInput[], options: { dryRun: boolean; actor: Actor; requestId: string }): Promise<ErasureResult>;
  correct(
    datastoreId: string,
    identities: IdentityInput[],
    corrections: Record<string, unknown>,
    options: { actor: Actor; requestId: string },
  ): Promise<{ updated: Array<{ collection: string; primaryKey: Record<string, unknown>; fields: string[] }>; unmatched: string[] }>;
  restrict(datastoreId: string, identities: IdentityInput[], options: { actor: Actor; requestId: string }): Promise<{ restricted: number; collections: string[]; unsupported: string[] }>;
}

/** Registers one handler per declared dataset. */
export function registerDatasets(systems: RequestSystems, datasets: DatasetsForRequests): void {
  for (const id of datasets.datastores()) {
    systems.register({
      id,
      find: async (identities, sink, context) => {
        const summary = await datasets.find(id, [...identities], sink, { actor: context.actor, requestId: context.requestId });
        return { rows: summary.rows, collections: Object.keys(summary.collections).filter((name) => (summary.collections[name] ?? 0) > 0) };
      },
      erase: (identities, options) => datasets.erase(id, [...identities], { dryRun: options.dryRun, actor: options.actor, requestId: options.requestId }),
      correct: async (identities, corrections, context) => {
        const result = await datasets.correct(id, [...identities], corrections, { actor: context.actor, requestId: context.requestId });
        return { changed: result.updated.map((row) => ({ ...row, action: 'update' as const })), notHeld: result.unmatched };
      },
      restrict: async (identities, context) => {
        const result = await datasets.restrict(id, [...identities], { actor: context.actor, requestId: context.requestId });
        return { restricted: result.restricted };
      },
    });
  }
}

/**
 * The retention exception that keeps `category` collected at `collectedAt`, if one still
 * runs at `now` (legal obligations outlive an erasure request).
 */
export function keepingException(policy: Policy, category: string, collectedAt: string, now: Date): string | undefined {
  for (const rule of policy.document.retention) {
    for (const exception of rule.exceptions ?? []) {
      if (!exception.categories.some((reference) => covers(reference, category))) continue;
      const duration = parseDuration(exception.duration);
      if (duration && addDuration(new Date(collectedAt), duration) > now) return exception.id;
    }
  }
  return undefined;
}

/** The vault as a datastore: one row per subject in collection "subject_fields", plus its identities. */
export class VaultHandler implements DatastoreHandler {
  readonly id = VAULT;

  constructor(
    private readonly subjects: SubjectsService,
    private readonly policy: Policy,
    private readonly clock: Clock,
    private readonly consent?: ConsentForRequests,
    private readonly holds?: LegalHolds,
  ) {}

  async withdraw(identities: readonly IdentityInput[], purposes: readonly string[], context: HandlerContext & { type: 'objection' | 'withdraw_consent' }): Promise<WithdrawResult> {
    const ids = await this.subjects.findForRequest(context.actor, identities, context.requestId);
    if (!this.consent) return { subjects: ids.length, applied: false };
    for (const subjectId of ids) await this.consent.withdraw(context.actor, subjectId, purposes, { requestId: context.requestId, type: context.type });
    return { subjects: ids.length, applied: true };
  }

  async find(identities: readonly IdentityInput[], sink: (row: FoundRow) => void | Promise<void>, context: HandlerContext): Promise<FindSummary> {
    const ids = await this.subjects.findForRequest(context.actor, identities, context.requestId);
    let rows = 0;
    for (const subjectId of ids) {
      const data = await this.subjects.readAllForRequest(context.actor, subjectId, context.requestId);
      if (data.identities.length > 0) {
        await sink({ datastore: VAULT, collection: 'identities', primaryKey: { subject: subjectId }, fields: data.identities.map((identity) => ({ name: identity.kind, category: identityCategory(identity.kind), value: identity.value })) });
        rows++;
      }
      if (data.fields.length > 0) {
        await sink({ datastore: VAULT, collection: 'profile', primaryKey: { subject: subjectId }, fields: data.fields.map((field) => ({ name: field.category, category: field.category, value: field.value })) });
        rows++;
      }
    }
    return { rows, collections: ['identities', 'profile'] };
  }

  async erase(identities: readonly IdentityInput[], options: HandlerContext & { dryRun: boolean }): Promise<ErasureResult> {
    const ids = await this.subjects.findForRequest(options.actor, identities, options.requestId);
    const now = this.clock.now();
    const result: ErasureResult = { dryRun: options.dryRun, changed: [], kept: [] };
    for (const subjectId of ids) {
      if (await this.holds?.isHeld(subjectId)) {
        // A legal hold outranks erasure: nothing is deleted, processing is restricted, and the
        // result says why; the request is answered with the hold as its legal ground.
        if (!options.dryRun) await this.subjects.setRestricted(options.actor, subjectId, true);
        result.kept.push({ collection: 'profile', primaryKey: { subject: subjectId }, fields: ['*'], exception: LEGAL_HOLD });
        continue;
      }
      const held = await this.subjects.heldCategories(subjectId);
      const keptBy = new Map<string, string[]>();
      const erase: string[] = [];
      for (const field of held) {
        const exception = keepingException(this.policy, field.category, field.collectedAt, now);
        if (exception) keptBy.set(exception, [...(keptBy.get(exception) ?? []), field.category]);
        else erase.push(field.category);
      }
      const keep = [...keptBy.values()].flat();
      if (!options.dryRun) await this.subjects.eraseForRequest(options.actor, subjectId, keep, options.requestId);
      result.changed.push({ collection: 'identities', primaryKey: { subject: subjectId }, action: 'delete', fields: ['*'] });
      if (erase.length > 0) result.changed.push({ collection: 'profile', primaryKey: { subject: subjectId }, action: keep.length > 0 ? 'update' : 'delete', fields: erase });
      for (const [exception, fields] of keptBy) result.kept.push({ collection: 'profile', primaryKey: { subject: subjectId }, fields, exception });
    }
    return result;
  }

  async correct(identities: readonly IdentityInput[], corrections: Record<string, unknown>, context: HandlerContext): Promise<CorrectionResult> {
    const ids = await this.subjects.findForRequest(context.actor, identities, context.requestId);
    const result: CorrectionResult = { changed: [], notHeld: [] };
    if (ids.length === 0) return { changed: [], notHeld: Object.keys(corrections).sort() };
    const notHeld = new Set(Object.keys(corrections));
    for (const subjectId of ids) {
      const outcome = await this.subjects.correctForRequest(context.actor, subjectId, corrections, context.requestId);
      if (outcome.updated.length > 0) result.changed.push({ collection: 'profile', primaryKey: { subject: subjectId }, action: 'update', fields: outcome.updated });
      for (const category of outcome.updated) notHeld.delete(category);
    }
    result.notHeld = [...notHeld].sort();
    return result;
  }

  async restrict(identities: readonly IdentityInput[], context: HandlerContext): Promise<RestrictionResult> {
    const ids = await this.subjects.findForRequest(context.actor, identities, context.requestId);
    for (const subjectId of ids) {
      const subject = await this.subjects.get(subjectId);
      if (subject.status !== 'erased' && !subject.restricted) await this.subjects.setRestricted(context.actor, subjectId, true);
    }
    return { restricted: ids.length };
  }
}

function identityCategory(kind: string): string {
  switch (kind) {
    case 'email':
      return 'user.contact.email';
    case 'phone':
      return 'user.contact.phone_number';
    case 'cookie_id':
      return 'user.device.cookie_id';
    default:
      return 'user.unique_id';
  }
}
