import { benchPolicy } from './policy.bench.js';
import { benchStartup } from './startup.bench.js';
import { recordResults } from './support.js';

/**
 * `npm run bench`: runs every benchmark and appends the results to bench/RESULTS.md.
 * Benchmarks measure; they never fail the test suite. A FAIL verdict here is a finding to
 * act on, and the exit code says so (1) for scripts that want to gate on it.
 */
const only = process.argv.slice(2);
const wanted = (name: string) => only.length === 0 || only.includes(name);
const rows = [];
if (wanted('policy')) rows.push(...benchPolicy());
if (wanted('startup')) rows.push(...(await benchStartup()));
recordResults('Policy and start-up', rows);
process.exitCode = rows.some((row) => row.verdict === 'FAIL') ? 1 : 0;
