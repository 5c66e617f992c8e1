import { randomUUID } from 'node:crypto';
import helmet from '@fastify/helmet';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Config } from '../core/config.js';
import type { Logger } from '../core/logger.js';
import { registerProblemHandlers } from './problem.js';

export type HttpApp = FastifyInstance;

export interface HttpOptions {
  config: Config;
  logger: Logger;
  version: string;
}

/**
 * The Fastify instance with what every route shares: problem+json errors, security headers,
 * request ids, body limits and the OpenAPI document. Routes are registered by the caller
 * (app.ts); nothing listens until `listen` is called, so tests use `inject`.
 */
export async function createHttpApp({ config, logger, version }: HttpOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    bodyLimit: config.bodyLimit,
    genReqId: () => randomUUID(),
    requestIdHeader: false,
    trustProxy: false,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', allErrors: false } },
    routerOptions: { ignoreTrailingSlash: true },
  }).withTypeProvider<TypeBoxTypeProvider>() as unknown as FastifyInstance;

  registerProblemHandlers(app);

  await app.register(helmet, {
    contentSecurityPolicy: {
      directives: {
        defaultSrc: ["'self'"],
        // The rendered policy carries its stylesheet inline so it stays one standalone file.
        styleSrc: ["'self'", "'unsafe-inline'"],
        scriptSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        connectSrc: ["'self'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        objectSrc: ["'none'"],
        baseUri: ["'self'"],
        upgradeInsecureRequests: null,
      },
    },
    // HSTS only makes sense behind TLS; the operator's proxy sets it for production.
    strictTransportSecurity: false,
    crossOriginResourcePolicy: { policy: 'same-site' },
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Pledge API',
        version,
        description:
          'The HTTP API of Pledge, the privacy engine. Errors are RFC 9457 problem+json documents whose `code` is stable; `/problems/{code}` describes each.',
      },
      servers: [{ url: config.publicUrl }],
      tags: [
        { name: 'policy', description: 'The published privacy policy and its machine-readable forms.' },
        { name: 'system', description: 'Health and API description.' },
      ],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: false, uiConfig: { docExpansion: 'list', deepLinking: true } });

  return app;
}
