import { createHook } from 'node:async_hooks';

/**
 * One entry of process.nextTick's queue, held for the life of the process.
 *
 * Why: Node's HTTP and stream code calls process.nextTick four to six times per request, and
 * each call builds a queue entry from an object literal whose hidden classes (V8 maps) live
 * only as long as some entry does. Start-up compiles every route's validators and serialisers,
 * and the major collections that follow can come at a moment when no tick is pending: the
 * chain of maps is collected and rebuilt. After a few rebuilds V8 stops specialising the
 * places that build an entry, and from then on every nextTick goes through the runtime's slow
 * path. Measured on the consent decision over PostgreSQL: 27.7 → 25.0 µs of server CPU per
 * request, 34.6k → 38.8k requests/s (three alternating pairs). Holding one entry keeps the
 * maps alive, so they are built once and the fast path stays.
 */
let heldEntry: object | undefined;

/**
 * Captures one queue entry (through an async hook enabled for the length of one nextTick
 * call, then disabled) and keeps it. Idempotent; the earlier the better, since every rebuild
 * before it counts: `pledge serve` calls it first thing, createHttpApp again for embedders.
 * Returns the held entry, for the test that checks the shape this relies on.
 */
export function holdNextTickShape(): object | undefined {
  if (heldEntry) return heldEntry;
  const hook = createHook({
    init(_asyncId, type, _triggerAsyncId, resource) {
      if (type === 'TickObject') heldEntry ??= resource;
    },
  });
  hook.enable();
  try {
    process.nextTick(doNothing);
  } finally {
    hook.disable();
  }
  return heldEntry;
}

function doNothing(): void {}
