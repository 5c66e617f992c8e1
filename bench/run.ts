import os from 'node:os';
import { testDatabaseUrls } from '../src/core/config.js';
import { createTestDatabase } from '../test/support/databases.js';
import { benchAuditVerify } from './audit.bench.js';
import { benchConsent } from './consent.bench.js';
import { benchOutbox, benchPolicyNotices } from './comms.bench.js';
import { benchDatasets } from './datasets.bench.js';
import { benchShopRetention } from './shop-retention.bench.js';
import { benchPurposeRead } from './http.bench.js';
import { benchPolicy } from './policy.bench.js';
import { benchStartup } from './startup.bench.js';
import { benchRequests } from './requests.bench.js';
import { benchRetentionSweep } from './retention.bench.js';
import { recordResults, type ResultRow } from './support.js';
import { benchBatchCreate, benchErasure, benchLookup, benchRotation } from './vault.bench.js';

/**
 * `npm run bench [name…]`: runs the benchmarks (all, or those named: policy, startup, read,
 * batch, lookup, audit, rotation, erasure, consent, outbox, notices, requests, retention, datasets, shop-retention;
 * notices-100k and retention-quick only when named) and appends the results to bench/RESULTS.md. Benchmarks
 * measure; they never fail the test suite. A FAIL verdict here is a finding to act on, and the
 * exit code says so (1) for scripts that want to gate on it. The PostgreSQL read runs when
 * PLEDGE_TEST_POSTGRES_URL is set (in a schema of its own, dropped afterwards).
 */
// `--customers N` sizes the shop of the datasets benchmark (default 100,000; the target is 1,000,000).
const customersFlag = process.argv.indexOf('--customers');
const shopCustomers = customersFlag === -1 ? 100_000 : Number(process.argv[customersFlag + 1]);
const only = process.argv.slice(2).filter((arg, index, all) => !arg.startsWith('--') && all[index - 1] !== '--customers');
const wanted = (name: string) => only.length === 0 || only.includes(name);

const foundation: ResultRow[] = [];
if (wanted('policy')) foundation.push(...benchPolicy());
if (wanted('startup')) foundation.push(...(await benchStartup()));
if (foundation.length) recordResults('Policy and start-up', foundation);

const vault: ResultRow[] = [];
if (wanted('read')) {
  vault.push(...(await benchPurposeRead()));
  if (testDatabaseUrls().postgres) {
    const database = await createTestDatabase('postgres');
    try {
      vault.push(...(await benchPurposeRead(database.url)));
    } finally {
      await database.cleanup();
    }
  }
}
if (wanted('batch')) vault.push(...(await benchBatchCreate()));
if (wanted('lookup')) vault.push(...(await benchLookup()));
if (wanted('audit')) vault.push(...(await benchAuditVerify()));
if (wanted('rotation')) vault.push(...(await benchRotation()));
if (wanted('erasure')) vault.push(...(await benchErasure()));
if (vault.length) recordResults('Vault, audit and keys', vault);

const consent: ResultRow[] = [];
if (wanted('consent')) {
  consent.push(...(await benchConsent()));
  if (testDatabaseUrls().postgres) {
    const database = await createTestDatabase('postgres');
    try {
      consent.push(...(await benchConsent(database.url)));
    } finally {
      await database.cleanup();
    }
  }
}
// Shared machines make these numbers move a lot; the load beside them says how much to trust them.
if (consent.length) recordResults('Consent', consent, [`load average when the run ended: ${os.loadavg().map((value) => value.toFixed(1)).join(', ')} (1, 5, 15 min)`]);

const comms: ResultRow[] = [];
if (wanted('outbox')) comms.push(...(await benchOutbox('sqlite')));
if (wanted('outbox') && testDatabaseUrls().postgres) comms.push(...(await benchOutbox('postgres')));
if (wanted('notices')) comms.push(...(await benchPolicyNotices('sqlite')));
if (only.includes('notices-100k')) comms.push(...(await benchPolicyNotices('sqlite', 100_000)));
if (comms.length) recordResults('Comms', comms);

const requestRows: ResultRow[] = [];
if (wanted('requests')) requestRows.push(...(await benchRequests()));
if (requestRows.length) recordResults('Requests and durable jobs', requestRows);

// `retention` sweeps the target's 1,000,000 rows; `retention-quick` 100,000, for quick checks.
const retention: ResultRow[] = [];
for (const [name, rows] of [['retention', 1_000_000], ['retention-quick', 100_000]] as const) {
  if (name === 'retention' ? !wanted(name) : !only.includes(name)) continue;
  retention.push(...(await benchRetentionSweep('sqlite', rows)));
  if (testDatabaseUrls().postgres) retention.push(...(await benchRetentionSweep('postgres', rows)));
}
if (retention.length) recordResults('Retention', retention);

const datasets: ResultRow[] = [];
if (wanted('datasets')) datasets.push(...(await benchDatasets({ customers: shopCustomers, ...(testDatabaseUrls().postgres ? { postgresUrl: testDatabaseUrls().postgres } : {}) })));
if (wanted('shop-retention')) datasets.push(...(await benchShopRetention({ customers: shopCustomers, postgres: Boolean(testDatabaseUrls().postgres) })));
if (datasets.length) recordResults('Connected datasets', datasets, [`shop of ${shopCustomers.toLocaleString('en-US')} customers (examples/shop/build-shop), cached between runs`]);


process.exitCode = [...foundation, ...vault, ...consent, ...comms, ...requestRows, ...retention, ...datasets].some((row) => row.verdict === 'FAIL') ? 1 : 0;
