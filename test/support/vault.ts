import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { AuditService } from '../../src/audit/audit.service.js';
import { manualClock, type ManualClock } from '../../src/core/clock.js';
import { migrate, openDatabase, type Database } from '../../src/core/db.js';
import { Keyring } from '../../src/core/keyring.js';
import { loadPolicyFile, requirePolicy } from '../../src/policy/policy.load.js';
import type { Policy } from '../../src/policy/policy.model.js';
import { PolicyDefaultConsentGate, type ConsentGate } from '../../src/subjects/consent-gate.js';
import { KeyStore } from '../../src/subjects/keystore.js';
import { KEYSTORE_MIGRATIONS } from '../../src/subjects/keystore.migrations.js';
import type { KeystoreTables } from '../../src/subjects/subjects.tables.js';
import { SubjectsService } from '../../src/subjects/subjects.service.js';
import { createTestDatabase, temporaryDirectory, type TestDatabase, type TestDialect } from './databases.js';

/**
 * The vault on real databases, without HTTP: a main database and a separate key store (a
 * second SQLite file, or a second PostgreSQL schema), the keyring, the audit chain and the
 * subjects service — what the engine builds, for service-level tests.
 */
export interface TestVault {
  subjects: SubjectsService;
  audit: AuditService;
  database: Database;
  keystoreDatabase: Database<KeystoreTables>;
  keystore: KeyStore;
  keyring: Keyring;
  policy: Policy;
  clock: ManualClock;
  masterKey: Buffer;
  main: TestDatabase;
  keys: TestDatabase;
  close(): Promise<void>;
}

export async function createTestVault(
  dialect: TestDialect,
  options: { policy?: Policy; consent?: (policy: Policy) => ConsentGate; masterKey?: Buffer } = {},
): Promise<TestVault> {
  const main = await createTestDatabase(dialect);
  const keys = await createTestDatabase(dialect);
  const clock = manualClock('2026-03-01T12:00:00Z');
  const policy = options.policy ?? requirePolicy(loadPolicyFile(path.resolve('examples/demo/pledge.yaml')));
  const masterKey = options.masterKey ?? randomBytes(32);
  const database = openDatabase(main.url);
  const keystoreDatabase = openDatabase<KeystoreTables>(keys.url);
  await migrate(database);
  await migrate(keystoreDatabase, KEYSTORE_MIGRATIONS, 'keystore_');
  const keyring = await Keyring.open(database, masterKey, [], clock);
  const keystore = new KeyStore(keystoreDatabase, keyring);
  const audit = new AuditService(database, keyring, clock);
  const subjects = new SubjectsService({
    database,
    keystore,
    keyring,
    policy,
    audit,
    consent: options.consent ? options.consent(policy) : new PolicyDefaultConsentGate(policy),
    clock,
  });
  return {
    subjects,
    audit,
    database,
    keystoreDatabase,
    keystore,
    keyring,
    policy,
    clock,
    masterKey,
    main,
    keys,
    async close() {
      await audit.close();
      await database.close();
      await keystoreDatabase.close();
      await main.cleanup();
      await keys.cleanup();
    },
  };
}

export { temporaryDirectory };
