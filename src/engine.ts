import { AuditService } from './audit/audit.service.js';
import { systemClock, type Clock } from './core/clock.js';
import { datasetEnv, type Config } from './core/config.js';
import { loadMasterKey, parseMasterKey } from './core/crypto.js';
import { migrate, openDatabase, type Database } from './core/db.js';
import { Keyring } from './core/keyring.js';
import { createLogger, type Logger } from './core/logger.js';
import { loadPolicyFile, requirePolicy } from './policy/policy.load.js';
import type { Policy } from './policy/policy.model.js';
import { PolicyService } from './policy/policy.service.js';
import { StaffService } from './staff/staff.service.js';
import { PolicyDefaultConsentGate } from './subjects/consent-gate.js';
import { KeyStore } from './subjects/keystore.js';
import { KEYSTORE_MIGRATIONS } from './subjects/keystore.migrations.js';
import type { KeystoreTables } from './subjects/subjects.tables.js';
import { SubjectsService } from './subjects/subjects.service.js';
import { datasetVariableNames } from './datasets/datasets.model.js';
import { datasetHashKey, DatasetsService } from './datasets/datasets.service.js';

export interface EngineOptions {
  clock?: Clock;
  logger?: Logger;
  /** A policy already loaded (tests, serve); otherwise read from config.policyPath. */
  policy?: Policy;
  /** Where start-up warnings go (the CLI prints them for people); default: the log. */
  warn?: (message: string) => void;
  /** Connection URLs of the policy's datasets by variable name (tests); default: read from the environment. */
  datasetEnv?: Readonly<Record<string, string | undefined>>;
}

/**
 * The engine without its HTTP face: policy, keys, databases and domain services. `pledge
 * serve` puts HTTP in front of it (app.ts); commands such as `pledge audit verify` and
 * `pledge keys rotate` use it directly.
 *
 * The order matters: the policy is validated before anything is written, so an invalid policy
 * leaves no data directory, key or database behind.
 */
export interface Engine {
  readonly config: Config;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly database: Database;
  readonly keystoreDatabase: Database<KeystoreTables>;
  readonly keyring: Keyring;
  readonly masterKey: Buffer;
  readonly policy: PolicyService;
  readonly audit: AuditService;
  readonly keystore: KeyStore;
  readonly subjects: SubjectsService;
  readonly staff: StaffService;
  readonly datasets: DatasetsService;
  close(): Promise<void>;
}

export async function createEngine(config: Config, options: EngineOptions = {}): Promise<Engine> {
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? createLogger(config.logLevel);
  const warn = options.warn ?? ((message: string) => logger.warn(message));
  const policy = options.policy ?? requirePolicy(loadPolicyFile(config.policyPath));

  const masterKey = loadMasterKey(config);
  for (const warning of masterKey.warnings) warn(warning);
  const previousMasterKeys = config.previousMasterKeys.map((key, index) => parseMasterKey(key, `PLEDGE_PREVIOUS_MASTER_KEYS (key ${index + 1})`));

  const database = openDatabase(config.databaseUrl);
  const keystoreDatabase = config.keystoreSharesDatabase ? (database as unknown as Database<KeystoreTables>) : openDatabase<KeystoreTables>(config.keystoreUrl);
  const closeDatabases = async () => {
    await database.close();
    if (!config.keystoreSharesDatabase) await keystoreDatabase.close();
  };
  try {
    await migrate(database);
    await migrate(keystoreDatabase, KEYSTORE_MIGRATIONS, 'keystore_');
    const keyring = await Keyring.open(database, masterKey.key, previousMasterKeys, clock);
    const audit = new AuditService(database, keyring, clock, { onError: (error) => logger.error({ err: error }, 'audit checkpoint failed') });
    const policyService = new PolicyService(policy, database, clock);
    await policyService.recordActiveVersion(audit);
    const staff = new StaffService(database, audit, clock, keyring);
    const keystore = new KeyStore(keystoreDatabase, keyring);
    const subjects = new SubjectsService({ database, keystore, keyring, policy, audit, consent: new PolicyDefaultConsentGate(policy), clock });
    // Connections to the company's datastores open on first use, never at start.
    const datasets = new DatasetsService({
      policy,
      env: options.datasetEnv ?? datasetEnv(datasetVariableNames(policy.document.datasets)),
      audit,
      clock,
      logger,
      hashKey: datasetHashKey(keyring),
      httpHosts: config.datasetHosts,
    });
    return {
      config,
      clock,
      logger,
      database,
      keystoreDatabase,
      keyring,
      masterKey: masterKey.key,
      policy: policyService,
      audit,
      keystore,
      subjects,
      staff,
      datasets,
      async close() {
        await datasets.close();
        await audit.close();
        await closeDatabases();
      },
    };
  } catch (error) {
    await closeDatabases();
    throw error;
  }
}
