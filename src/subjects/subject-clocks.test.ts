import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ManualClock } from '../core/clock.js';
import type { Actor } from '../staff/permissions.js';
import { testDialects } from '../../test/support/databases.js';
import { createTestVault, type TestVault } from '../../test/support/vault.js';
import { SubjectClocks, type SubjectClock } from './subject-clocks.js';

const officer: Actor = { type: 'staff', id: 'stf_officer', role: 'privacy_officer' };
const DAY = 86_400_000;

for (const dialect of testDialects()) {
  describe(`subject clocks on ${dialect}`, () => {
    let vault: TestVault & { clock: ManualClock };
    let clocks: SubjectClocks;
    const ids: Record<'quietA' | 'quietB' | 'quietC' | 'recent' | 'closed' | 'erased', string> = { quietA: '', quietB: '', quietC: '', recent: '', closed: '', erased: '' };

    before(async () => {
      vault = await createTestVault(dialect);
      clocks = new SubjectClocks(vault.database.db);
      // Subjects active at the same instant: pages must split ties by id.
      for (const name of ['quietA', 'quietB', 'quietC'] as const) ids[name] = (await vault.subjects.create(officer, { kinds: ['customer'] })).id;
      ids.closed = (await vault.subjects.create(officer, { kinds: ['customer'] })).id;
      ids.erased = (await vault.subjects.create(officer, { kinds: ['customer'] })).id;
      vault.clock.advance(10 * DAY);
      await vault.subjects.close(officer, ids.closed);
      await vault.subjects.erase(officer, ids.erased);
      vault.clock.advance(10 * DAY);
      ids.recent = (await vault.subjects.create(officer, { kinds: ['visitor'] })).id;
    });
    after(() => vault.close());

    async function all(trigger: 'last_activity' | 'account_closed', cutoff: string, limit: number): Promise<SubjectClock[]> {
      const found: SubjectClock[] = [];
      let last: SubjectClock | undefined;
      for (;;) {
        const page = await clocks.pastTrigger(trigger, cutoff, { limit, after: last });
        found.push(...page);
        if (page.length < limit) return found;
        last = page.at(-1);
      }
    }

    test('inactive subjects come in pages, by time then id, each once; erased ones never', async () => {
      const cutoff = new Date(vault.clock.now().getTime() - 5 * DAY).toISOString();
      const paged = await all('last_activity', cutoff, 2);
      // Closing an account is not activity: the closed one was last active with the others.
      assert.deepEqual(paged.map((subject) => subject.id), [ids.quietA, ids.quietB, ids.quietC, ids.closed].sort());
      assert.deepEqual(paged[0]!.kinds, ['customer']);
      assert.deepEqual((await all('last_activity', cutoff, 100)).map((subject) => subject.id), paged.map((subject) => subject.id), 'the page size changes nothing');
    });

    test('closed accounts past the cutoff; open ones never; `only` limits to some subjects', async () => {
      const now = vault.clock.now().getTime();
      assert.deepEqual((await all('account_closed', new Date(now - 5 * DAY).toISOString(), 1)).map((subject) => subject.id), [ids.closed]);
      assert.deepEqual(await all('account_closed', new Date(now - 15 * DAY).toISOString(), 1), [], 'closed 10 days ago: not past a 15-day cutoff');
      const only = await clocks.pastTrigger('last_activity', new Date(now).toISOString(), { limit: 10, only: [ids.recent, ids.erased] });
      assert.deepEqual(only.map((subject) => subject.id), [ids.recent]);
      assert.deepEqual(await clocks.pastTrigger('last_activity', new Date(now).toISOString(), { limit: 10, only: [] }), []);
    });
  });
}
