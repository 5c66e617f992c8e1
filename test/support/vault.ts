import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { AuditService } from '../../src/audit/audit.service.js';
import type { CommsService } from '../../src/comms/comms.service.js';
import { manualClock, type Clock } from '../../src/core/clock.js';
import { loadConfig } from '../../src/core/config.js';
import type { Database } from '../../src/core/db.js';
import type { Keyring } from '../../src/core/keyring.js';
import { createLogger } from '../../src/core/logger.js';
import { createEngine } from '../../src/engine.js';
import { loadPolicyFile, requirePolicy } from '../../src/policy/policy.load.js';
import type { Policy } from '../../src/policy/policy.model.js';
import type { KeyStore } from '../../src/subjects/keystore.js';
import type { KeystoreTables } from '../../src/subjects/subjects.tables.js';
import type { SubjectsService } from '../../src/subjects/subjects.service.js';
import { createTestDatabase, temporaryDirectory, type TestDatabase, type TestDialect } from './databases.js';

/**
 * The engine as `pledge serve` builds it (createEngine), without HTTP, on fresh test
 * databases: a main database and a separate key store (a second SQLite file, or a second
 * PostgreSQL schema). For service-level tests and benchmarks of the vault.
 */
export interface TestVault {
  subjects: SubjectsService;
  audit: AuditService;
  database: Database;
  keystoreDatabase: Database<KeystoreTables>;
  keystore: KeyStore;
  keyring: Keyring;
  /** The outbox: `pledge keys rotate` re-wraps what it seals. */
  comms: CommsService;
  policy: Policy;
  clock: Clock;
  masterKey: Buffer;
  main: TestDatabase;
  keys: TestDatabase;
  close(): Promise<void>;
}

export async function createTestVault<C extends Clock = ReturnType<typeof manualClock>>(
  dialect: TestDialect,
  /** `sharing`: a second engine (another `pledge serve` process) over the databases of this one. */
  options: { policy?: Policy; masterKey?: Buffer; previousMasterKeys?: readonly Buffer[]; clock?: C; sharing?: TestVault } = {},
): Promise<TestVault & { clock: C }> {
  const owned = !options.sharing;
  const main = options.sharing?.main ?? (await createTestDatabase(dialect));
  const keys = options.sharing?.keys ?? (await createTestDatabase(dialect));
  const directory = temporaryDirectory('pledge-vault-');
  const clock = (options.clock ?? manualClock('2026-03-01T12:00:00Z')) as C;
  const policy = options.policy ?? requirePolicy(loadPolicyFile(path.resolve('examples/demo/pledge.yaml')));
  const masterKey = options.masterKey ?? options.sharing?.masterKey ?? randomBytes(32);
  const { config } = loadConfig(
    {
      PLEDGE_MASTER_KEY: masterKey.toString('hex'),
      PLEDGE_KEYSTORE_URL: keys.url,
      ...(options.previousMasterKeys ? { PLEDGE_PREVIOUS_MASTER_KEYS: options.previousMasterKeys.map((key) => key.toString('hex')).join(',') } : {}),
    },
    { dataDir: directory.path, databaseUrl: main.url },
  );
  const engine = await createEngine(config, { policy, clock, logger: createLogger('silent') });
  return {
    subjects: engine.subjects,
    audit: engine.audit,
    database: engine.database,
    keystoreDatabase: engine.keystoreDatabase,
    keystore: engine.keystore,
    keyring: engine.keyring,
    comms: engine.comms,
    policy,
    clock,
    masterKey,
    main,
    keys,
    async close() {
      await engine.close();
      if (owned) {
        await main.cleanup();
        await keys.cleanup();
      }
      directory.remove();
    },
  };
}

export { temporaryDirectory };
