import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { isPledgeError } from '../core/errors.js';
import { isId } from '../core/ids.js';
import { signalsFrom, type Signals } from './consent.evidence.js';

/**
 * Browser signals (Sec-GPC, DNT) on any route that names a subject or a visitor, not only on the
 * consent routes: the GPC specification asks that the signal be honoured on every request that
 * identifies the person. A route opts in with the hook, and the signal is applied — once per
 * holder, purpose and signal, as on the consent routes — before the route's own check, so a
 * purpose-checked read with `Sec-GPC: 1` is already refused:
 *
 *   app.get('/v1/subjects/:id/data', { config: { permission: 'data:read' }, preHandler: holderSignals }, handler);
 *
 * The holders are the `:id` of the path and a `subjectId` of the body (identifying a visitor
 * names both). Without either header the hook returns at once: no promise, no look-up.
 */
export type SignalApplier = (request: FastifyRequest, holder: string, signals: Signals) => Promise<unknown>;

const APPLIER = Symbol('pledge.consent.signals');

/** Called by the consent routes' registration: from then on the hook applies signals with `apply`. */
export function provideSignalApplier(app: FastifyInstance, apply: SignalApplier): void {
  if (!app.hasDecorator(APPLIER)) app.decorate(APPLIER, apply);
}

function holdersOf(request: FastifyRequest): string[] {
  const holders: string[] = [];
  const id = (request.params as { id?: unknown } | undefined)?.id;
  if (typeof id === 'string' && (isId(id, 'sub') || isId(id, 'vis'))) holders.push(id);
  const subjectId = (request.body as { subjectId?: unknown } | undefined | null)?.subjectId;
  if (typeof subjectId === 'string' && isId(subjectId, 'sub') && !holders.includes(subjectId)) holders.push(subjectId);
  return holders;
}

async function applyAll(apply: SignalApplier, request: FastifyRequest, signals: Signals): Promise<void> {
  for (const holder of holdersOf(request)) {
    try {
      await apply(request, holder, signals);
    } catch (error) {
      // An unknown or erased subject: the route gives its own answer (404, 410, or an erased subject's summary).
      if (isPledgeError(error) && (error.code === 'subject_not_found' || error.code === 'subject_erased')) continue;
      throw error;
    }
  }
}

/** preHandler of a route that names a holder (see above). */
export function holderSignals(this: FastifyInstance, request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction): void {
  const headers = request.headers;
  // The hot path: no signal header at all.
  if (headers['sec-gpc'] === undefined && headers.dnt === undefined) return done();
  const signals = signalsFrom(headers);
  const apply = (this as unknown as Record<symbol, SignalApplier | undefined>)[APPLIER];
  if ((!signals.gpc && !signals.dnt) || !apply || !request.actor) return done();
  applyAll(apply, request, signals).then(() => done(), done);
}
