import { AuditService } from './audit/audit.service.js';
import { CommsService } from './comms/comms.service.js';
import { LedgerMailConsent } from './consent/consent.mail.js';
import { ConsentService } from './consent/consent.service.js';
import { systemClock, type Clock } from './core/clock.js';
import { datasetEnv, type Config } from './core/config.js';
import { loadMasterKey, parseMasterKey, readMasterKeyFiles } from './core/crypto.js';
import { migrate, openDatabase, type Database } from './core/db.js';
import { Keyring } from './core/keyring.js';
import { createLogger, type Logger } from './core/logger.js';
import { loadPolicyFile, requirePolicy } from './policy/policy.load.js';
import type { Policy } from './policy/policy.model.js';
import { PolicyService } from './policy/policy.service.js';
import { RetentionService } from './retention/retention.service.js';
import { StaffService } from './staff/staff.service.js';
import { KeyStore } from './subjects/keystore.js';
import { KEYSTORE_MIGRATIONS } from './subjects/keystore.migrations.js';
import type { KeystoreTables } from './subjects/subjects.tables.js';
import { SubjectsService } from './subjects/subjects.service.js';
import { JobRunner, type JobRunnerOptions } from './core/jobs.js';
import { LedgerRequestConsent } from './consent/consent.requests.js';
import { OutboxRequestNotifier } from './requests/requests.mail.js';
import type { RequestNotifier } from './requests/requests.notifier.js';
import { RequestsService } from './requests/requests.service.js';
import { registerDatasets, RequestSystems, VaultHandler } from './requests/requests.systems.js';
import { datasetVariableNames } from './datasets/datasets.model.js';
import { datasetHashKey, DatasetsService } from './datasets/datasets.service.js';

export interface EngineOptions {
  clock?: Clock;
  logger?: Logger;
  /** A policy already loaded (tests, serve); otherwise read from config.policyPath. */
  policy?: Policy;
  /** Where start-up warnings go (the CLI prints them for people); default: the log. */
  warn?: (message: string) => void;
  /** Where request messages go (verification codes, notices); default: the outbox. */
  requestNotifier?: RequestNotifier;
  jobs?: JobRunnerOptions;
  /** Datastore handlers registered beside the vault (tests; connected datasets). */
  requestSystems?: (systems: RequestSystems) => void;
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
  readonly consent: ConsentService;
  /** The outbox: mail, unsubscribe, policy-change notices. `pledge serve` starts its worker. */
  readonly comms: CommsService;
  readonly jobs: JobRunner;
  readonly requestSystems: RequestSystems;
  readonly requests: RequestsService;
  readonly retention: RetentionService;
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

  const database = openDatabase(config.databaseUrl, { listenUrl: config.databaseListenUrl });
  const keystoreDatabase = config.keystoreSharesDatabase ? (database as unknown as Database<KeystoreTables>) : openDatabase<KeystoreTables>(config.keystoreUrl);
  const closeDatabases = async () => {
    await database.close();
    if (!config.keystoreSharesDatabase) await keystoreDatabase.close();
  };
  try {
    await migrate(database);
    await migrate(keystoreDatabase, KEYSTORE_MIGRATIONS, 'keystore_');
    // Development: a rotation may be replacing the key file while this process runs.
    const reload = masterKey.source === 'environment' ? undefined : () => readMasterKeyFiles(config.dataDir);
    const keyring = await Keyring.open(database, masterKey.key, [...previousMasterKeys, ...(reload?.() ?? [])], clock, reload ? { reload } : {});
    const audit = new AuditService(database, keyring, clock, { onError: (error) => logger.error({ err: error }, 'audit checkpoint failed') });
    const policyService = new PolicyService(policy, database, clock);
    await policyService.recordFirstVersion(audit);
    const staff = new StaffService(database, audit, clock, keyring, { declaredPurposes: policy.purposes });
    const keystore = new KeyStore(keystoreDatabase, keyring);
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
    // The ledger checks holders through the vault, and the vault asks the ledger: the closure breaks the cycle.
    const consent: ConsentService = new ConsentService({
      database,
      policy,
      audit,
      clock,
      publicUrl: config.publicUrl,
      subject: (id: string) => subjects.get(id),
      subjectStatuses: (executor, ids) => subjects.statusesOf(executor, ids),
      subjectStatusesSql: (ids) => subjects.statusesSql(ids),
    });
    // Holds live in the retention domain, built on the vault: the closure is only called later.
    const subjects: SubjectsService = new SubjectsService({ database, keystore, keyring, policy, audit, consent, clock, holds: { isHeld: (id: string): Promise<boolean> => retention.isHeld(id) } });
    const comms = new CommsService({
      database,
      keyring,
      policy,
      policyService,
      subjects,
      audit,
      consent: new LedgerMailConsent(consent),
      clock,
      logger,
      mail: config.mail,
      publicUrl: config.publicUrl,
      dataDir: config.dataDir,
    });
    const jobs = new JobRunner(database, clock, logger, options.jobs);
    const requestSystems = new RequestSystems();
    const retention: RetentionService = new RetentionService({ database, subjects, audit, policy, clock });
    // Dataset rows follow the same rules, by their timestamps and by the people they belong to.
    retention.addDatasets(datasets);
    requestSystems.register(new VaultHandler(subjects, policy, clock, new LedgerRequestConsent(consent), retention));
    registerDatasets(requestSystems, datasets);
    options.requestSystems?.(requestSystems);
    const requests = new RequestsService({ database, policy, audit, keyring, clock, jobs, systems: requestSystems, notifier: options.requestNotifier ?? new OutboxRequestNotifier(comms, policy), publicUrl: config.publicUrl });
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
      consent,
      comms,
      jobs,
      requestSystems,
      requests,
      retention,
      datasets,
      async close() {
        await jobs.stop();
        await comms.close();
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
