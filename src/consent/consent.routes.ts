import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Static } from 'typebox';
import { PledgeError } from '../core/errors.js';
import type { Actor } from '../staff/permissions.js';
import { evidenceFrom, signalsFrom, type ConsentEvidence } from './consent.evidence.js';
import {
  DecisionSchema,
  HistorySchema,
  HolderQuery,
  IdentifiedSchema,
  IdentifyBodySchema,
  OverviewSchema,
  PreferencesBodySchema,
  ReceiptIdParams,
  RecordBodySchema,
  RecordedSchema,
  SharingDecisionSchema,
  SharingQuery,
  SubjectIdParams,
  SubjectPurposeParams,
  SubjectRecipientParams,
  VisitorIdParams,
  VisitorPurposeParams,
  VisitorRecipientParams,
  VisitorSchema,
} from './consent.schema.js';
import type { ConsentService } from './consent.service.js';
import { holderSignals, provideSignalApplier } from './consent.signals.js';

function actorOf(request: FastifyRequest): Actor {
  if (!request.actor) throw new PledgeError('unauthenticated', 'sign in, or send an API key');
  return request.actor;
}

type IdParams = { id: string };
type PurposeParams = { id: string; purpose: string };
type RecipientParams = { id: string; recipient: string };
const tags = ['consent'];
const SIGNALS = 'A request carrying `Sec-GPC: 1` (or `DNT: 1` where the policy honours it) first applies the signal to the holder, once per purpose (see docs/consent.md).';

/** Thin handlers: validate (schemas), authorise (config.permission), apply browser signals, call the service. */
export function registerConsentRoutes(app: FastifyInstance, consent: ConsentService, options: { countryHeader: string | undefined }): void {
  const evidence = (request: FastifyRequest, bannerVersion?: string): ConsentEvidence => evidenceFrom(request.headers, options.countryHeader, bannerVersion);

  /**
   * The request identifies a holder: the browser signals it carries are applied before anything
   * else. Undefined, at once, when it carries none — the hot routes then answer without a turn.
   */
  const withSignals = (request: FastifyRequest, holder: string, bannerVersion?: string): Promise<unknown> | undefined => {
    if (request.headers['sec-gpc'] === undefined && request.headers.dnt === undefined) return undefined;
    const signals = signalsFrom(request.headers);
    return signals.gpc || signals.dnt ? consent.applySignals(actorOf(request), holder, signals, evidence(request, bannerVersion)) : undefined;
  };

  // The same application for the other routes that name a holder (holderSignals).
  provideSignalApplier(app, (request, holder, signals) => consent.applySignals(actorOf(request), holder, signals, evidence(request)));

  app.post('/v1/visitors', {
    config: { permission: 'consent:write' },
    schema: { tags, summary: 'A new visitor id', description: 'An opaque id (vis_…) for the banner cookie of a visitor who has not signed in. Nothing is stored until a choice is recorded for it.', response: { 201: VisitorSchema } },
  }, async (_request, reply) => reply.status(201).send({ id: consent.newVisitorId() }));

  app.post<{ Body: Static<typeof RecordBodySchema> }>('/v1/consent/events', {
    config: { permission: 'consent:write' },
    schema: {
      tags,
      summary: 'Record consent choices',
      description: `Appends one event per choice to the ledger, updates the current state and issues one Kantara v1.1 consent receipt. A choice names a purpose, a mail topic, or a recipient the policy lets people opt out of (sharing with it at all). All or nothing: an unknown purpose, topic or recipient, a choice about something the person cannot refuse, or the same target decided two ways stores nothing. ${SIGNALS}`,
      body: RecordBodySchema,
      response: { 201: RecordedSchema },
    },
  }, async (request, reply) => {
    const { holder, source, bannerVersion, choices } = request.body;
    await withSignals(request, holder, bannerVersion);
    const recorded = await consent.record(actorOf(request), { holder, choices, evidence: evidence(request, bannerVersion), ...(source ? { source } : {}) });
    return reply.status(201).send(recorded);
  });

  app.get<{ Querystring: Static<typeof HolderQuery> }>('/v1/consent/events', {
    config: { permission: 'consent:read' },
    schema: { tags, summary: "A holder's consent ledger, oldest first", querystring: HolderQuery, response: { 200: HistorySchema } },
  }, async (request) => ({ holder: request.query.holder, events: await consent.history(actorOf(request), request.query.holder) }));

  app.get<{ Params: IdParams }>('/v1/consent/receipts/:id', {
    config: { permission: 'consent:read' },
    // A receipt is returned exactly as issued (Kantara Consent Receipt v1.1 JSON).
    serializerCompiler: () => (data) => JSON.stringify(data),
    schema: { tags, summary: 'A consent receipt (Kantara Consent Receipt v1.1)', params: ReceiptIdParams },
  }, async (request) => consent.receiptById(actorOf(request), request.params.id));

  for (const [prefix, params, purposeParams, recipientParams] of [
    ['/v1/subjects', SubjectIdParams, SubjectPurposeParams, SubjectRecipientParams],
    ['/v1/visitors', VisitorIdParams, VisitorPurposeParams, VisitorRecipientParams],
  ] as const) {
    app.get<{ Params: IdParams }>(`${prefix}/:id/consent`, {
      config: { permission: 'consent:read' },
      schema: { tags, summary: 'Current consent state per purpose, topic and recipient', description: SIGNALS, params, response: { 200: OverviewSchema } },
    }, async (request) => {
      await withSignals(request, request.params.id);
      return consent.overview(actorOf(request), request.params.id);
    });

    app.get<{ Params: PurposeParams }>(`${prefix}/:id/consent/:purpose`, {
      config: { permission: 'consent:read' },
      schema: { tags, summary: 'May this purpose be used for this holder now?', description: `Answers from the ledger's projection, or the policy default when nothing is recorded. ${SIGNALS}`, params: purposeParams, response: { 200: DecisionSchema } },
    }, (request) => {
      const signalled = withSignals(request, request.params.id);
      const { id, purpose } = request.params;
      return signalled ? signalled.then(() => consent.decision(id, purpose)) : consent.decision(id, purpose);
    });

    app.get<{ Params: RecipientParams; Querystring: Static<typeof SharingQuery> }>(`${prefix}/:id/sharing/:recipient`, {
      config: { permission: 'consent:read' },
      schema: {
        tags,
        summary: 'May data go to this recipient now?',
        description: `The disclosure check, before passing the holder's data to a recipient of the policy: allowed when the person has not opted out of sharing with it and, with \`purpose\`, the recipient serves that purpose and the purpose is allowed (without it: at least one of the recipient's purposes is allowed). \`purposes\` lists the purposes data may go to it for now. Not audited, like the purpose decision. ${SIGNALS}`,
        params: recipientParams,
        querystring: SharingQuery,
        response: { 200: SharingDecisionSchema },
      },
    }, async (request) => {
      await withSignals(request, request.params.id);
      return consent.mayShare(request.params.id, request.params.recipient, request.query.purpose);
    });
  }

  app.post<{ Params: IdParams; Body: Static<typeof IdentifyBodySchema> }>('/v1/visitors/:id/identify', {
    config: { permission: 'consent:write' },
    // Names a visitor and a subject: the signals apply to both before they are joined.
    preHandler: holderSignals,
    schema: {
      tags,
      summary: 'Join a visitor\'s choices to the subject it turned out to be',
      description: `Per purpose, topic and recipient the later decision wins; each choice taken over is recorded on the subject, naming the visitor. Calling it again takes over nothing new. ${SIGNALS}`,
      params: VisitorIdParams,
      body: IdentifyBodySchema,
      response: { 200: IdentifiedSchema },
    },
  }, async (request) => consent.identify(actorOf(request), request.params.id, request.body.subjectId));

  app.get<{ Params: IdParams }>('/v1/subjects/:id/preferences', {
    config: { permission: 'consent:read' },
    schema: { tags, summary: "A subject's preferences: purposes, mail topics, sharing with recipients and affiliates, profiling", description: SIGNALS, params: SubjectIdParams, response: { 200: OverviewSchema } },
  }, async (request) => {
    await withSignals(request, request.params.id);
    return consent.preferences(actorOf(request), request.params.id);
  });

  app.patch<{ Params: IdParams; Body: Static<typeof PreferencesBodySchema> }>('/v1/subjects/:id/preferences', {
    config: { permission: 'consent:write' },
    schema: {
      tags,
      summary: "Change a subject's preferences",
      description: `Each switch becomes a ledger event (off after a grant is a withdrawal); \`sharingWithAffiliates\` and \`recipients\` are choices about recipients, which leave the purposes they serve as they are. Switches that contradict each other in one request are refused and nothing is stored. ${SIGNALS}`,
      params: SubjectIdParams,
      body: PreferencesBodySchema,
      response: { 200: OverviewSchema },
    },
  }, async (request) => {
    const { bannerVersion, ...input } = request.body;
    await withSignals(request, request.params.id, bannerVersion);
    return consent.setPreferences(actorOf(request), request.params.id, { ...input, evidence: evidence(request, bannerVersion) });
  });
}

