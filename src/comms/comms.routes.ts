import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Static } from 'typebox';
import { holderSignals } from '../consent/consent.signals.js';
import { escapeHtml } from '../core/html.js';
import { isPledgeError, PledgeError } from '../core/errors.js';
import type { Actor } from '../staff/permissions.js';
import { SubjectIdParams } from '../subjects/subjects.schema.js';
import { AcceptanceBodySchema, AcceptanceSchema, MessageIdParams, MessageSummarySchema, OutboxListSchema, OutboxQuery, QueuedMessageSchema, QueueMessageBodySchema, UnsubscribedSchema, UnsubscribeQuery } from './comms.schema.js';
import type { CommsService } from './comms.service.js';

function actorOf(request: FastifyRequest): Actor {
  const actor = (request as FastifyRequest & { actor?: Actor | null }).actor;
  if (!actor) throw new PledgeError('unauthenticated', 'sign in, or send an API key');
  return actor;
}

function page(title: string, body: string): string {
  return `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><meta name="robots" content="noindex"><title>${escapeHtml(title)}</title>\n<style>body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}button{font:inherit;padding:.5rem 1rem}</style></head>\n<body><h1>${escapeHtml(title)}</h1>\n${body}\n</body></html>\n`;
}

function wantsHtml(request: FastifyRequest): boolean {
  return (request.headers.accept ?? '').includes('text/html');
}

/**
 * The outbox for staff (metadata only: addresses and bodies are personal data, resolved at
 * send time), policy acceptances, and the public unsubscribe endpoints:
 * - `GET /v1/unsubscribe?token=…` shows a page with a button and changes nothing (link
 *   scanners and previews follow GET links);
 * - `POST /v1/unsubscribe?token=…` is RFC 8058 one-click: no login, no cookie, body
 *   `List-Unsubscribe=One-Click`; idempotent.
 */
export function registerCommsRoutes(app: FastifyInstance, comms: CommsService): void {
  const tags = ['comms'];

  app.get<{ Querystring: Static<typeof OutboxQuery> }>('/v1/outbox', {
    config: { permission: 'comms:read' },
    schema: { tags, summary: 'List outbox messages', description: 'Metadata only, never addresses or bodies.', querystring: OutboxQuery, response: { 200: OutboxListSchema } },
  }, async (request) => {
    const { status, kind, subject, after, limit } = request.query;
    const messages = await comms.list({ limit: limit ?? 100, ...(status ? { status } : {}), ...(kind ? { kind } : {}), ...(subject ? { subjectId: subject } : {}), ...(after ? { after } : {}) });
    return { messages, counts: await comms.counts() };
  });

  app.post<{ Body: Static<typeof QueueMessageBodySchema> }>('/v1/outbox', {
    config: { permission: 'comms:write' },
    // Names the subject in its body: a browser signal relayed with it is applied first.
    preHandler: holderSignals,
    schema: {
      tags,
      summary: 'Queue a message to a subject',
      description:
        'On a topic the policy declares, with the free message template (text, and HTML made from it, escaped). Marketing carries the unsubscribe link and headers, and is checked against the person\'s choices when it is sent: queued before an opt-out, it is dropped. 201 when queued; 200 with the message queued first when the idempotency key was used before for this person and topic.',
      body: QueueMessageBodySchema,
      response: { 200: QueuedMessageSchema, 201: QueuedMessageSchema },
    },
  }, async (request, reply) => {
    const queued = await comms.queueMessage(actorOf(request), request.body);
    return reply.status(queued.created ? 201 : 200).send(queued);
  });

  app.get<{ Params: Static<typeof MessageIdParams> }>('/v1/outbox/:id', {
    config: { permission: 'comms:read' },
    schema: { tags, summary: 'One outbox message', params: MessageIdParams, response: { 200: MessageSummarySchema } },
  }, async (request) => comms.get(request.params.id));

  app.post<{ Params: Static<typeof MessageIdParams> }>('/v1/outbox/:id/retry', {
    config: { permission: 'comms:write' },
    schema: {
      tags,
      summary: 'Retry a failed message',
      description:
        'Puts a message that failed after its last attempt back in the queue, due now, with its attempts counted from zero (same id and Message-ID). Audited. Marketing is checked against the person\'s choices when it is sent, as always. 409 message_not_failed for a message in any other state.',
      params: MessageIdParams,
      response: { 200: MessageSummarySchema },
    },
  }, async (request) => comms.retry(actorOf(request), request.params.id));

  app.post<{ Params: Static<typeof SubjectIdParams>; Body: Static<typeof AcceptanceBodySchema> }>('/v1/subjects/:id/acceptances', {
    config: { permission: 'policy:accept' },
    preHandler: holderSignals,
    schema: {
      tags,
      summary: 'Record that a person accepted a policy version',
      description: 'Against the version named, or the version in force. Recording the same acceptance twice keeps the first.',
      params: SubjectIdParams,
      body: AcceptanceBodySchema,
      response: { 200: AcceptanceSchema, 201: AcceptanceSchema },
    },
  }, async (request, reply) => {
    const result = await comms.recordAcceptance(actorOf(request), request.params.id, request.body?.version, request.body?.method ?? 'explicit');
    return reply.status(result.created ? 201 : 200).send(result);
  });

  const failurePage = (reply: FastifyReply, error: unknown) => {
    if (!isPledgeError(error)) throw error;
    return reply.status(error.status).type('text/html; charset=utf-8').send(page('This link does not work', `<p>${escapeHtml(error.message)}.</p>`));
  };

  // Scoped: the form parser serves these routes only.
  app.register(async (scope) => {
    scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 1024 }, (_request, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(body as string)));
    });
    // RFC 8058 lets a mail client post the same field as multipart/form-data.
    scope.addContentTypeParser('multipart/form-data', { parseAs: 'string', bodyLimit: 4096 }, (_request, body, done) => {
      done(null, /name="List-Unsubscribe"\r?\n\r?\nOne-Click/.test(body as string) ? { 'List-Unsubscribe': 'One-Click' } : {});
    });

    scope.get<{ Querystring: Static<typeof UnsubscribeQuery> }>('/v1/unsubscribe', {
      config: { public: true },
      schema: { tags, summary: 'Unsubscribe confirmation page', description: 'Shows a button; a GET never unsubscribes.', querystring: UnsubscribeQuery, produces: ['text/html'] },
    }, async (request, reply) => {
      reply.header('cache-control', 'no-store').header('referrer-policy', 'no-referrer');
      try {
        const { topicName } = comms.inspectUnsubscribe(request.query.token);
        const action = `/v1/unsubscribe?token=${encodeURIComponent(request.query.token)}`;
        return reply.type('text/html; charset=utf-8').send(
          page('Unsubscribe', `<p>Stop receiving “${escapeHtml(topicName)}”?</p>\n<form method="post" action="${escapeHtml(action)}"><input type="hidden" name="List-Unsubscribe" value="One-Click"><button type="submit">Unsubscribe</button></form>`),
        );
      } catch (error) {
        return failurePage(reply, error);
      }
    });

    scope.post<{ Querystring: Static<typeof UnsubscribeQuery>; Body: Record<string, string> | undefined }>('/v1/unsubscribe', {
      config: { public: true },
      schema: {
        tags,
        summary: 'One-click unsubscribe (RFC 8058)',
        description: 'No login and no cookie: the signed token in the query decides. Body `List-Unsubscribe=One-Click` (form-encoded). Idempotent.',
        querystring: UnsubscribeQuery,
        response: { 200: UnsubscribedSchema },
      },
    }, async (request, reply) => {
      reply.header('cache-control', 'no-store').header('referrer-policy', 'no-referrer');
      // Mail clients post List-Unsubscribe=One-Click; our own page posts the same field.
      const method = request.body && typeof request.body === 'object' && request.body['List-Unsubscribe'] === 'One-Click' && !wantsHtml(request) ? 'one_click' : 'page';
      if (wantsHtml(request)) {
        try {
          const result = await comms.unsubscribe(request.query.token, method);
          return reply.type('text/html; charset=utf-8').send(page('You are unsubscribed', `<p>You will no longer receive “${escapeHtml(result.topicName)}”.</p>`));
        } catch (error) {
          return failurePage(reply, error);
        }
      }
      const result = await comms.unsubscribe(request.query.token, method);
      return reply.send({ status: 'unsubscribed', topic: result.topic });
    });
  });
}
