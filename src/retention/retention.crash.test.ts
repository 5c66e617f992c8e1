import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import type { ManualClock } from '../core/clock.js';
import type { Actor } from '../staff/permissions.js';
import { createTestVault, temporaryDirectory, type TestVault } from '../../test/support/vault.js';
import { testDialects } from '../../test/support/databases.js';
import { RetentionService } from './retention.service.js';

const WORKER = fileURLToPath(new URL('./retention.test-worker.js', import.meta.url));
const DAY = 86_400_000;
const officer: Actor = { type: 'staff', id: 'stf_officer', role: 'privacy_officer' };

/** Runs the worker and kills it with SIGKILL after its third committed batch. */
function sweepAndKill(args: string[]): Promise<{ batches: number; finished: boolean }> {
  const child = spawn(process.execPath, [WORKER, ...args], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
  let stdout = '';
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    if (stdout.split('\n').filter((line) => line.startsWith('batch ')).length >= 3) child.kill('SIGKILL');
  });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (signal !== 'SIGKILL' && code !== 0) reject(new Error(`worker exited with ${code}: ${stderr}`));
      else resolve({ batches: stdout.split('\n').filter((line) => line.startsWith('batch ')).length, finished: stdout.includes('finished') });
    });
  });
}

for (const dialect of testDialects()) {
  describe(`a retention sweep killed mid-way on ${dialect}`, () => {
    let vault: TestVault & { clock: ManualClock };
    let directory: ReturnType<typeof temporaryDirectory>;
    before(async () => {
      vault = await createTestVault(dialect);
      directory = temporaryDirectory('pledge-retention-crash-');
    });
    after(async () => {
      await vault.close();
      directory.remove();
    });

    test('leaves whole, audited batches; the next sweep (once the lease lapses) finishes the work', async () => {
      const visitor = (index: number) => ({ kinds: ['visitor'], data: { purpose: 'analytics', source: 'automatic' as const, fields: { 'user.device.ip_address': `198.51.100.${index % 250}`, 'user.device.browser': 'Firefox' } } });
      for (let offset = 0; offset < 1000; offset += 500) await vault.subjects.createMany(officer, Array.from({ length: 500 }, (_, index) => visitor(offset + index)));
      vault.clock.advance(100 * DAY);

      const killed = await sweepAndKill([vault.main.url, vault.keys.url, vault.masterKey.toString('hex'), directory.path, vault.clock.now().toISOString()]);
      assert.ok(killed.batches >= 3 && !killed.finished, 'killed in the middle of the sweep');

      const fields = async () => Number((await vault.database.db.selectFrom('subject_fields').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
      const auditedRows = async () =>
        (await vault.database.db.selectFrom('audit_entries').select('details').where('action', '=', 'retention.fields_deleted').execute()).reduce((sum, entry) => sum + (JSON.parse(entry.details) as { rows: number }).rows, 0);
      const left = await fields();
      assert.ok(left > 0 && left < 2000, `part of the work done: ${left} fields left`);
      assert.equal(2000 - left, await auditedRows(), 'every removed row is in an audit entry: batch and entry committed together');
      assert.equal((await vault.audit.verify()).ok, true);

      const retention = new RetentionService({ database: vault.database, subjects: vault.subjects, audit: vault.audit, policy: vault.policy, clock: vault.clock });
      await assert.rejects(retention.run({ type: 'system', id: 'retention' }), (error: Error & { code?: string }) => error.code === 'retention_sweep_running', 'the dead process still holds the lease');
      vault.clock.advance(16 * 60_000);
      const resumed = await retention.run({ type: 'system', id: 'retention' });
      assert.equal(resumed.totals.rows, left);
      assert.equal(await fields(), 0);
      assert.equal(await auditedRows(), 2000);
      assert.equal((await vault.audit.verify()).ok, true);
    });
  });
}
