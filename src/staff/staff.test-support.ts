import type { FastifyInstance } from 'fastify';
import { sql, type Transaction } from 'kysely';
import type { AuditEvent, AuditWriter } from '../audit/audit.types.js';
import { manualClock, type ManualClock } from '../core/clock.js';
import { loadConfig } from '../core/config.js';
import type { Tables } from '../core/db.tables.js';
import { migrate, openDatabase, type Database } from '../core/db.js';
import { createLogger } from '../core/logger.js';
import { registerAuth } from '../http/auth.js';
import { createHttpApp } from '../http/server.js';
import { createTestDatabase, temporaryDirectory, type TestDialect } from '../../test/support/databases.js';
import { registerStaffRoutes } from './staff.routes.js';
import { StaffService, type StaffServiceOptions } from './staff.service.js';

/**
 * A stand-in for the audit chain (built in parallel): it keeps the events in memory so tests
 * can read what would have been written. The real writer replaces it in createApp.
 */
export class RecordingAudit implements AuditWriter {
  readonly events: AuditEvent[] = [];

  async appendWithin(_trx: Transaction<Tables>, events: readonly AuditEvent[]): Promise<void> {
    this.events.push(...events);
  }

  async record(events: readonly AuditEvent[]): Promise<void> {
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
    if (dialect === 'postgres') await precreateMigrationTables(database);
    await migrate(database);
    const clock = manualClock('2026-03-02T09:00:00.000Z');
    const audit = new RecordingAudit();
    const staff = new StaffService(database, audit, clock, { secret: () => Buffer.alloc(32, 7) }, options.service);
    const env = options.bodyLimit ? { PLEDGE_BODY_LIMIT: String(options.bodyLimit) } : {};
    const { config } = loadConfig(env, { dataDir: directory.path, databaseUrl: testDatabase.url, publicUrl: options.publicUrl ?? 'http://127.0.0.1:4400' });
    const logLines: string[] = [];
    const logger = createLogger('trace', { write: (line: string) => void logLines.push(line) });
    const http = await createHttpApp({ config, logger, version: 'test' });
    await registerAuth(http, { staff, publicUrl: config.publicUrl, audit });
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
        await database.close();
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

/**
 * Kysely's migrator looks for its own tables in every schema of the database, not just the
 * search_path: while another test's schema exists, it finds that one's tables, skips creating
 * its own and then fails ("relation kysely_migration_lock does not exist"). Creating them in
 * this test's schema first (with Kysely's own definitions) sidesteps that. The lasting fix
 * belongs in core/db.ts: pass `migrationTableSchema` (the current schema) to the Migrator.
 */
async function precreateMigrationTables(database: Database): Promise<void> {
  await sql`create table if not exists kysely_migration (name varchar(255) not null primary key, timestamp varchar(255) not null)`.execute(database.db);
  await sql`create table if not exists kysely_migration_lock (id varchar(255) not null primary key, is_locked integer not null default 0)`.execute(database.db);
}
