import { testDatabaseUrls } from '../src/core/config.js';
import { createTestDatabase } from '../test/support/databases.js';
import { benchAuditVerify } from './audit.bench.js';
import { benchDatasets } from './datasets.bench.js';
import { benchPurposeRead } from './http.bench.js';
import { benchPolicy } from './policy.bench.js';
import { benchStartup } from './startup.bench.js';
import { recordResults, type ResultRow } from './support.js';
import { benchBatchCreate, benchLookup, benchRotation } from './vault.bench.js';

/**
 * `npm run bench [name…]`: runs the benchmarks (all, or those named: policy, startup, read,
 * batch, lookup, audit, rotation, datasets) and appends the results to bench/RESULTS.md. Benchmarks
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
if (vault.length) recordResults('Vault, audit and keys', vault);

const datasets: ResultRow[] = [];
if (wanted('datasets')) datasets.push(...(await benchDatasets({ customers: shopCustomers, ...(testDatabaseUrls().postgres ? { postgresUrl: testDatabaseUrls().postgres } : {}) })));
if (datasets.length) recordResults('Connected datasets', datasets, [`shop of ${shopCustomers.toLocaleString('en-US')} customers (examples/shop/build-shop), cached between runs`]);

process.exitCode = [...foundation, ...vault, ...datasets].some((row) => row.verdict === 'FAIL') ? 1 : 0;
