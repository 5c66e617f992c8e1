import type { FastifyInstance } from 'fastify';
import { randomBytes } from 'node:crypto';
import type { Transaction } from 'kysely';
import { AuditService } from '../audit/audit.service.js';
import { Keyring } from '../core/keyring.js';
import type { AuditEvent, AuditWriter } from '../audit/audit.types.js';
import { manualClock, type ManualClock } from '../core/clock.js';
import { loadConfig } from '../core/config.js';
import type { Tables } from '../core/db.tables.js';
import { migrate, openDatabase, type Database } from '../core/db.js';
import { createLogger } from '../core/logger.js';
import { registerAuth } from '../http/auth.js';
import { createHttpApp, registerApiDocs } from '../http/server.js';
import { createTestDatabase, temporaryDirectory, type TestDialect } from '../../test/support/databases.js';
import { registerStaffRoutes } from './staff.routes.js';
import { StaffService, type StaffServiceOptions } from './staff.service.js';

/**
 * The real audit chain, with a copy of every event it was given so tests can read exactly
 * what the domain wrote (and the chain itself is verified when the test app is cleaned up).
 */
export class RecordingAudit implements AuditWriter {
  readonly events: AuditEvent[] = [];

  constructor(readonly chain: AuditService) {}

  async appendWithin(trx: Transaction<Tables>, events: readonly AuditEvent[]): Promise<void> {
    await this.chain.appendWithin(trx, events);
    this.events.push(...events);
  }

  async record(events: readonly AuditEvent[]): Promise<void> {
    await this.chain.record(events);
    this.events.push(...events);
  }

  actions(): string[] {
    return this.events.map((event) => event.action);
  }
}

export interface StaffTestApp {
  http: FastifyInstance;
  staff: StaffService;
  database: Database;
  audit: RecordingAudit;
  clock: ManualClock;
  logLines: string[];
  cleanup(): Promise<void>;
}

/**
 * The staff domain behind the real HTTP server (problem+json, helmet, docs), with the auth
 * layer, its routes and two throwaway routes that need data permissions:
 * GET /test/data (data:read), POST /test/data (data:write), GET /test/open (public).
 */
export async function createStaffTestApp(
  dialect: TestDialect,
  options: { publicUrl?: string; service?: StaffServiceOptions; bodyLimit?: number } = {},
): Promise<StaffTestApp> {
  const testDatabase = await createTestDatabase(dialect);
  const directory = temporaryDirectory('pledge-staff-');
  const database = openDatabase(testDatabase.url);
  try {
    await migrate(database);
    const clock = manualClock('2026-03-02T09:00:00.000Z');
    const keyring = await Keyring.open(database, randomBytes(32), [], clock);
    const audit = new RecordingAudit(new AuditService(database, keyring, clock));
    const staff = new StaffService(database, audit, clock, keyring, options.service);
    const env = options.bodyLimit ? { PLEDGE_BODY_LIMIT: String(options.bodyLimit) } : {};
    const { config } = loadConfig(env, { dataDir: directory.path, databaseUrl: testDatabase.url, publicUrl: options.publicUrl ?? 'http://127.0.0.1:4400' });
    const logLines: string[] = [];
    const logger = createLogger('trace', { write: (line: string) => void logLines.push(line) });
    const http = await createHttpApp({ config, logger, version: 'test' });
    await registerAuth(http, { staff, publicUrl: config.publicUrl, audit });
    await registerApiDocs(http);
    registerStaffRoutes(http, staff, { publicUrl: config.publicUrl, clock });
    http.get('/test/open', { config: { public: true } }, async (request) => ({ actor: request.actor }));
    http.get('/test/data', { config: { permission: 'data:read' } }, async (request) => ({ actor: request.actor }));
    http.post('/test/data', { config: { permission: 'data:write' } }, async (request) => ({ actor: request.actor }));
    await http.ready();
    return {
      http,
      staff,
      database,
      audit,
      clock,
      logLines,
      cleanup: async () => {
        await http.close();
        const report = await audit.chain.verify();
        await audit.chain.close();
        await database.close();
        if (!report.ok) throw new Error(`the audit chain does not verify: ${JSON.stringify(report.firstProblem)}`);
        await testDatabase.cleanup();
        directory.remove();
      },
    };
  } catch (error) {
    await database.close();
    await testDatabase.cleanup();
    directory.remove();
    throw error;
  }
}
