import { createHmac } from 'node:crypto';
import { PledgeError } from '../core/errors.js';
import type { IdentityInput } from '../subjects/subjects.service.js';
import type { DatasetModel } from './datasets.model.js';
import type { CorrectionResult, ErasureResult, FoundRow } from './datasets.service.js';

/**
 * A datastore behind the company's own HTTP endpoint (docs/datasets.md, "The HTTP protocol").
 * Pledge POSTs JSON to `<url>/find`, `/erase`, `/correct` and `/expire`; each request is signed
 * with HMAC-SHA256 over `<timestamp>.<body>` (headers X-Pledge-Timestamp and
 * X-Pledge-Signature: `v1=<hex>`), goes only to allow-listed hosts, never follows redirects,
 * and gives up after the declared timeout. Only the declared collections and fields of an
 * answer are kept.
 */
export interface HttpDatastoreOptions {
  timeoutMs: number;
  /** host or host:port entries. */
  allowedHosts: readonly string[];
}

/** Largest answer accepted: find pages through a cursor, so one page never needs more. */
const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

export function signRequest(secret: string, timestamp: string, body: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

interface WireRow {
  collection: string;
  primary_key: Record<string, unknown>;
  fields?: Record<string, unknown>;
}

export class HttpDatastore {
  private readonly base: URL;

  constructor(
    private readonly model: DatasetModel,
    url: string,
    private readonly secret: string,
    private readonly options: HttpDatastoreOptions,
  ) {
    try {
      this.base = new URL(url.endsWith('/') ? url : `${url}/`);
    } catch {
      throw new PledgeError('dataset_not_configured', `datastore "${model.id}": the connection URL is not a valid address`);
    }
    if (this.base.protocol !== 'https:' && !(this.base.protocol === 'http:' && LOOPBACK.has(this.base.hostname))) {
      throw new PledgeError('dataset_not_configured', `datastore "${model.id}": an HTTP datastore must be reached over https:// (plain http only on the loopback interface)`);
    }
    if (this.base.username || this.base.password) {
      throw new PledgeError('dataset_not_configured', `datastore "${model.id}": put no credentials in the URL; requests are signed with the secret of connection.secret_env`);
    }
    const allowed = options.allowedHosts.some((entry) => entry === this.base.host || entry === this.base.hostname);
    if (!allowed) {
      throw new PledgeError('dataset_host_not_allowed', `datastore "${model.id}": host ${this.base.host} is not in PLEDGE_DATASET_HOSTS`, { details: { datastore: model.id } });
    }
  }

  async find(identities: readonly IdentityInput[], sink: (row: FoundRow) => Promise<void>): Promise<void> {
    let cursor: string | null = null;
    const collections = [...this.model.collections.keys()];
    for (let page = 0; page < 1_000_000; page++) {
      const answer = (await this.call('find', { identities, collections, cursor })) as { rows?: unknown; cursor?: unknown };
      if (!Array.isArray(answer.rows)) throw this.protocolError('find', 'the answer has no rows list');
      for (const raw of answer.rows) await sink(this.foundRow(raw as WireRow));
      if (answer.cursor === null || answer.cursor === undefined) return;
      if (typeof answer.cursor !== 'string' || answer.cursor.length > 1000) throw this.protocolError('find', 'the cursor is not a short string');
      cursor = answer.cursor;
    }
  }

  async erase(identities: readonly IdentityInput[], dryRun: boolean): Promise<ErasureResult> {
    const collections = [...this.model.collections.values()].map((collection) => ({
      name: collection.name,
      primary_key: collection.primaryKey,
      ...(collection.exception ? { exception: collection.exception } : {}),
      fields: collection.fields.map((field) => ({
        name: field.name,
        category: field.category,
        strategy: field.erase,
        ...(field.eraseValue !== undefined ? { value: field.eraseValue } : {}),
        ...(field.exception ? { exception: field.exception } : {}),
      })),
    }));
    const answer = (await this.call('erase', { identities, dry_run: dryRun, collections })) as { changed?: unknown; kept?: unknown };
    if (!Array.isArray(answer.changed) || !Array.isArray(answer.kept)) throw this.protocolError('erase', 'the answer needs changed and kept lists');
    const result: ErasureResult = { datastore: this.model.id, dryRun, changed: [], kept: [], counts: { updated: 0, deleted: 0, kept: 0 } };
    for (const raw of answer.changed as Array<Record<string, unknown>>) {
      const collection = this.collectionOf(raw.collection, 'erase');
      const action = raw.action === 'delete' ? 'delete' : raw.action === 'update' ? 'update' : undefined;
      if (!action) throw this.protocolError('erase', 'a changed row has no action update or delete');
      result.changed.push({ collection, primaryKey: this.primaryKey(raw.primary_key, 'erase'), action, fields: this.names(raw.fields, 'erase') });
      result.counts[action === 'delete' ? 'deleted' : 'updated'] += 1;
    }
    for (const raw of answer.kept as Array<Record<string, unknown>>) {
      const collection = this.collectionOf(raw.collection, 'erase');
      if (typeof raw.exception !== 'string') throw this.protocolError('erase', 'a kept row names no exception');
      result.kept.push({ collection, primaryKey: this.primaryKey(raw.primary_key, 'erase'), fields: this.names(raw.fields, 'erase'), exception: raw.exception });
      result.counts.kept += 1;
    }
    return result;
  }

  async correct(identities: readonly IdentityInput[], corrections: Record<string, unknown>): Promise<CorrectionResult> {
    const targets: Array<{ collection: string; field: string; value: unknown }> = [];
    const matched = new Set<string>();
    for (const collection of this.model.collections.values()) {
      for (const field of collection.fields) {
        if (field.primaryKey || !(field.category in corrections)) continue;
        matched.add(field.category);
        targets.push({ collection: collection.name, field: field.name, value: corrections[field.category] ?? null });
      }
    }
    const result: CorrectionResult = { datastore: this.model.id, updated: [], unmatched: Object.keys(corrections).filter((category) => !matched.has(category)) };
    if (targets.length === 0) return result;
    const answer = (await this.call('correct', { identities, corrections: targets })) as { updated?: unknown };
    if (!Array.isArray(answer.updated)) throw this.protocolError('correct', 'the answer has no updated list');
    for (const raw of answer.updated as Array<Record<string, unknown>>) {
      result.updated.push({ collection: this.collectionOf(raw.collection, 'correct'), primaryKey: this.primaryKey(raw.primary_key, 'correct'), fields: this.names(raw.fields, 'correct') });
    }
    return result;
  }

  async expire(collection: string, options: { before: Date; action: 'delete' | 'anonymize'; dryRun: boolean }): Promise<{ rows: number }> {
    const answer = (await this.call('expire', { collection, before: options.before.toISOString(), action: options.action, dry_run: options.dryRun })) as { rows?: unknown };
    if (typeof answer.rows !== 'number' || !Number.isInteger(answer.rows) || answer.rows < 0) throw this.protocolError('expire', 'the answer has no row count');
    return { rows: answer.rows };
  }

  private foundRow(raw: WireRow): FoundRow {
    const collection = this.model.collections.get(this.collectionOf(raw?.collection, 'find'))!;
    const values = raw.fields && typeof raw.fields === 'object' ? raw.fields : {};
    return {
      datastore: this.model.id,
      collection: collection.name,
      primaryKey: this.primaryKey(raw.primary_key, 'find'),
      // Only what the policy declares: an endpoint that sends more does not widen the answer.
      fields: collection.fields.filter((field) => field.name in values).map((field) => ({ name: field.name, category: field.category, value: values[field.name] })),
    };
  }

  private collectionOf(value: unknown, operation: string): string {
    if (typeof value !== 'string' || !this.model.collections.has(value)) throw this.protocolError(operation, 'a row names a collection the policy does not declare');
    return value;
  }

  private primaryKey(value: unknown, operation: string): Record<string, unknown> {
    if (!value || typeof value !== 'object' || Array.isArray(value)) throw this.protocolError(operation, 'a row has no primary_key object');
    return value as Record<string, unknown>;
  }

  private names(value: unknown, operation: string): string[] {
    if (!Array.isArray(value) || value.some((name) => typeof name !== 'string')) throw this.protocolError(operation, 'fields must be a list of names');
    return value as string[];
  }

  private protocolError(operation: string, why: string): PledgeError {
    return new PledgeError('dataset_protocol_error', `datastore "${this.model.id}" answered ${operation} wrongly: ${why}`, { details: { datastore: this.model.id } });
  }

  private async call(operation: string, payload: unknown): Promise<unknown> {
    const body = JSON.stringify(payload);
    const timestamp = String(Math.floor(Date.now() / 1000));
    let response: Response;
    try {
      response = await fetch(new URL(operation, this.base), {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json',
          'x-pledge-datastore': this.model.id,
          'x-pledge-timestamp': timestamp,
          'x-pledge-signature': signRequest(this.secret, timestamp, body),
        },
        body,
        redirect: 'error',
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
    } catch (error) {
      const reason = (error as Error).name === 'TimeoutError' ? 'timeout' : String((error as { cause?: { code?: string } }).cause?.code ?? 'network error');
      throw new PledgeError('dataset_unavailable', `datastore "${this.model.id}" could not be reached or did not answer in time (${operation}: ${reason})`, { cause: error, details: { datastore: this.model.id, reason } });
    }
    if (response.status >= 500 || response.status === 429) {
      await response.body?.cancel();
      throw new PledgeError('dataset_unavailable', `datastore "${this.model.id}" answered ${operation} with status ${response.status}`, { details: { datastore: this.model.id, reason: `status ${response.status}` } });
    }
    if (response.status !== 200) {
      await response.body?.cancel();
      throw this.protocolError(operation, `status ${response.status}`);
    }
    const length = Number(response.headers.get('content-length') ?? 0);
    if (length > MAX_RESPONSE_BYTES) {
      await response.body?.cancel();
      throw this.protocolError(operation, 'the answer is too large (page find results with a cursor)');
    }
    let text: string;
    try {
      text = await readLimited(response, MAX_RESPONSE_BYTES);
    } catch (error) {
      if (error instanceof PledgeError) throw this.protocolError(operation, 'the answer is too large (page find results with a cursor)');
      throw new PledgeError('dataset_unavailable', `datastore "${this.model.id}" stopped answering ${operation} midway`, { cause: error, details: { datastore: this.model.id, reason: 'interrupted' } });
    }
    try {
      const parsed = JSON.parse(text) as unknown;
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
      return parsed;
    } catch {
      throw this.protocolError(operation, 'the answer is not a JSON object');
    }
  }
}

async function readLimited(response: Response, limit: number): Promise<string> {
  const reader = response.body?.getReader();
  if (!reader) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      throw new PledgeError('dataset_protocol_error', 'too large');
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}
