import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { holdNextTickShape } from './next-tick-shape.js';

test('the held nextTick entry is a queue entry (async-id symbols, callback, args), and holding is idempotent', () => {
  const held = holdNextTickShape();
  assert.ok(held, 'no TickObject was seen while the hook was enabled');
  // Node 24 adds its async context frame as a third symbol.
  const symbols = Object.getOwnPropertySymbols(held).map(String);
  for (const expected of ['Symbol(async_id_symbol)', 'Symbol(trigger_async_id_symbol)']) assert.ok(symbols.includes(expected), `${expected} in ${symbols.join(', ')}`);
  assert.deepEqual(Object.keys(held), ['callback', 'args']);
  assert.equal(holdNextTickShape(), held);
});

test('entries built after collections share the held entry’s hidden class', () => {
  // V8's own view, in a process of its own: %HaveSameMap needs --allow-natives-syntax. The entry
  // is captured with a hook enabled; what it keeps alive must be the class every later entry
  // gets, or holding it would keep nothing useful.
  const module = new URL('./next-tick-shape.js', import.meta.url).href;
  const script = `
    import { createHook } from 'node:async_hooks';
    const { holdNextTickShape } = await import(${JSON.stringify(module)});
    const held = holdNextTickShape();
    for (let round = 0; round < 3; round++) globalThis.gc();
    await new Promise((resolve) => setImmediate(resolve));
    for (let round = 0; round < 100; round++) process.nextTick(() => {});
    globalThis.gc();
    let fresh;
    const hook = createHook({ init(_id, type, _trigger, resource) { if (type === 'TickObject') fresh ??= resource; } }).enable();
    process.nextTick(() => {});
    hook.disable();
    process.stdout.write(JSON.stringify({ same: %HaveSameMap(held, fresh) }));
  `;
  const run = spawnSync(process.execPath, ['--allow-natives-syntax', '--expose-gc', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(JSON.parse(run.stdout), { same: true });
});
