import type { Actor } from '../staff/permissions.js';
import type { AuditCheckpoint, AuditListQuery, AuditPage, AuditService, AuditVerifyResult } from './audit.service.js';

/** The longest one verification request runs before it answers with where to go on from. */
export const VERIFY_BUDGET_MS = 10_000;

/**
 * The audit log as staff and API keys read it over HTTP. Each read is itself an audit entry
 * (`audit.read`, `audit.verified`), committed before the answer leaves, like every other read:
 * the log tells who accessed whom, so who looked at the log is worth knowing too. The entry
 * records the filters and counts (ids and action codes), never what was returned. An entry of
 * a read lands after the page it read, so a page never contains its own read.
 */
export class AuditLog {
  constructor(private readonly audit: AuditService) {}

  async entries(actor: Actor, query: AuditListQuery): Promise<AuditPage> {
    const page = await this.audit.list(query);
    await this.audit.record([
      {
        actor,
        action: 'audit.read',
        details: {
          what: 'entries',
          fromSeq: query.fromSeq ?? 1,
          returned: page.entries.length,
          targetId: query.targetId ?? null,
          filterAction: query.action ?? null,
        },
      },
    ]);
    return page;
  }

  async checkpoints(actor: Actor, query: { fromSeq?: number; limit?: number }): Promise<{ checkpoints: AuditCheckpoint[]; keyId: string; publicKey: string }> {
    const checkpoints = await this.audit.listCheckpoints(query);
    await this.audit.record([{ actor, action: 'audit.read', details: { what: 'checkpoints', fromSeq: query.fromSeq ?? 1, returned: checkpoints.length } }]);
    return { checkpoints, keyId: this.audit.keyId, publicKey: this.audit.publicKeyPem() };
  }

  /** Verifies for at most VERIFY_BUDGET_MS; a longer chain answers `complete: false` and `nextSeq`. */
  async verify(actor: Actor, options: { fromSeq?: number; expect?: { seq: number; hash: string } }): Promise<AuditVerifyResult & { keyId: string; seconds: number }> {
    const started = performance.now();
    const result = await this.audit.verify({ ...options, budgetMs: VERIFY_BUDGET_MS });
    const seconds = Number(((performance.now() - started) / 1000).toFixed(3));
    await this.audit.record([
      {
        actor,
        action: 'audit.verified',
        details: {
          ok: result.ok,
          fromSeq: options.fromSeq ?? 1,
          entries: result.entries,
          complete: result.complete ?? true,
          problem: result.firstProblem?.problem ?? null,
          problemSeq: result.firstProblem?.seq ?? null,
        },
      },
    ]);
    return { ...result, keyId: this.audit.keyId, seconds };
  }
}
