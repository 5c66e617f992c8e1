import swagger, { type SwaggerTransformObject } from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Config } from '../core/config.js';
import type { Logger } from '../core/logger.js';
import { trackRoutes } from './auth.js';
import { registerBodyParsers } from './body-parsers.js';
import { holdNextTickShape } from './next-tick-shape.js';
import { documentErrors, documentRoute } from './openapi.js';
import { registerProblemHandlers } from './problem.js';
import { requestIdGenerator } from './request-ids.js';
import { lazyChildLogger, requestLogController } from './request-logger.js';
import { registerSecurityHeaders } from './security-headers.js';

export type HttpApp = FastifyInstance;

type AddFormats = (ajv: Ajv, formats: string[]) => Ajv;
// ajv-formats is CommonJS; under ESM its function arrives as the default export.
const addFormats = ((addFormatsModule as unknown as { default?: AddFormats }).default ?? addFormatsModule) as unknown as AddFormats;

function newAjv(options: { coerceTypes: boolean | 'array' }): Ajv {
  const ajv = new Ajv({ ...options, removeAdditional: false, useDefaults: true, allErrors: false, strict: false });
  addFormats(ajv, ['date', 'date-time', 'email', 'uri', 'uuid']);
  // OpenAPI's "password" format only tells documentation tools to mask the field.
  ajv.addFormat('password', true);
  return ajv;
}

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
  // Before the routes are compiled (see next-tick-shape.ts).
  holdNextTickShape();
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    childLoggerFactory: lazyChildLogger,
    logController: requestLogController(),
    bodyLimit: config.bodyLimit,
    genReqId: requestIdGenerator(),
    requestIdHeader: false,
    // The union is what Fastify accepts; its overloads just do not spell it out.
    trustProxy: config.trustProxy as boolean,
    routerOptions: { ignoreTrailingSlash: true },
  }).withTypeProvider<TypeBoxTypeProvider>() as unknown as FastifyInstance;
  // Before anything registers a route: registerAuth refuses to start with a route it did not check.
  trackRoutes(app);

  // Bodies are checked strictly: a wrong type is an error, never silently converted. Query
  // strings, path parameters and headers arrive as text, so there numbers and lists are read
  // from their text form.
  const strict = newAjv({ coerceTypes: false });
  const lenient = newAjv({ coerceTypes: 'array' });
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? strict : lenient).compile(schema));

  registerProblemHandlers(app);
  registerBodyParsers(app);

  registerSecurityHeaders(app, {
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
        { name: 'subjects', description: 'The vault: people, their identities and their personal data, read and written for a purpose.' },
        { name: 'auth', description: 'Staff sign-in for the console (session cookie + CSRF token).' },
        { name: 'staff', description: 'Staff accounts and roles.' },
        { name: 'api-keys', description: 'Keys for company services, scoped to permissions and purposes.' },
        { name: 'system', description: 'Health and API description.' },
        { name: 'consent', description: 'The consent ledger: choices per purpose and mail topic, browser signals, preferences, visitors and Kantara receipts.' },
        { name: 'comms', description: 'The outbox, one-click unsubscribe and policy acceptances.' },
        { name: 'retention', description: 'Retention sweeps (dry run and run) and legal holds.' },
        { name: 'requests', description: 'Data-subject requests: intake, verification, review, execution, deadlines and download packages.' },
        { name: 'audit', description: 'The tamper-evident audit log: entries, signed checkpoints and verification.' },
      ],
      components: {
        securitySchemes: {
          apiKey: { type: 'http', scheme: 'bearer', description: 'An API key (pk_…) created by staff with keys:manage.' },
          session: { type: 'apiKey', in: 'cookie', name: 'pledge_session', description: 'The console session; unsafe methods also need the X-CSRF-Token header.' },
        },
      },
      security: [{ apiKey: [] }, { session: [] }],
    },
    // Error answers (one Problem schema) and `security: []` on public routes: see openapi.ts.
    transform: documentRoute,
    // The plugin types the document for each OpenAPI and Swagger version; this is OpenAPI 3.1.
    transformObject: documentErrors as unknown as SwaggerTransformObject,
  });
  return app;
}

/** The API documentation pages (/docs), public; registered after registerAuth, like every route. */
export async function registerApiDocs(app: FastifyInstance): Promise<void> {
  await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: false, uiConfig: { docExpansion: 'list', deepLinking: true } });
}
