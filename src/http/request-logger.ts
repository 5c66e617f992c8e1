import { LogController, type FastifyBaseLogger, type FastifyReply, type FastifyRequest } from 'fastify';

type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
type Bindings = Record<string, unknown>;
type ChildOptions = Parameters<FastifyBaseLogger['child']>[1];
/** pino's loggers, which Fastify's type does not describe fully. */
type PinoLike = FastifyBaseLogger & { isLevelEnabled(level: string): boolean };

/**
 * The logger a request carries (`request.log`), bound to its request id — created only when
 * something is logged. Fastify makes a pino child for every request, which cost about as much
 * as routing the request; most requests log nothing (the default level logs two lines, and
 * `warn` none), so the child is made on the first line actually written.
 */
class LazyRequestLogger {
  private bound: PinoLike | undefined;

  constructor(
    private readonly base: PinoLike,
    private readonly bindings: Bindings,
    private readonly options: ChildOptions,
  ) {}

  private real(): PinoLike {
    this.bound ??= this.base.child(this.bindings, this.options) as PinoLike;
    return this.bound;
  }

  get level(): string {
    return this.bound?.level ?? this.options?.level ?? this.base.level;
  }

  set level(level: string) {
    this.real().level = level;
  }

  isLevelEnabled(level: string): boolean {
    if (this.bound) return this.bound.isLevelEnabled(level);
    const routeLevel = this.options?.level;
    if (routeLevel === undefined) return this.base.isLevelEnabled(level);
    // A route's own level (logLevel: 'warn' on /health) is the child's level, above or below
    // the base's: compared by pino's numbers, without making the child. A level pino does not
    // number here (a custom one) is left to the child itself.
    if (routeLevel === 'silent') return false;
    const values = (this.base as { levels?: { values?: Record<string, number> } }).levels?.values;
    const wanted = values?.[level];
    const threshold = values?.[routeLevel];
    if (wanted === undefined || threshold === undefined) return this.real().isLevelEnabled(level);
    return wanted >= threshold;
  }

  private write(level: Level, args: unknown[]): void {
    if (!this.isLevelEnabled(level)) return;
    (this.real()[level] as (...values: unknown[]) => void)(...args);
  }

  fatal(...args: unknown[]): void {
    this.write('fatal', args);
  }
  error(...args: unknown[]): void {
    this.write('error', args);
  }
  warn(...args: unknown[]): void {
    this.write('warn', args);
  }
  info(...args: unknown[]): void {
    this.write('info', args);
  }
  debug(...args: unknown[]): void {
    this.write('debug', args);
  }
  trace(...args: unknown[]): void {
    this.write('trace', args);
  }
  silent(): void {}

  child(bindings: Bindings, options?: ChildOptions): FastifyBaseLogger {
    return this.real().child(bindings, options);
  }
}

/** Fastify's `childLoggerFactory`: a request logger that becomes a pino child on first use. */
export function lazyChildLogger(logger: FastifyBaseLogger, bindings: Bindings, options: ChildOptions): FastifyBaseLogger {
  return new LazyRequestLogger(logger as PinoLike, bindings, options) as unknown as FastifyBaseLogger;
}

/**
 * Fastify's own per-request lines ("incoming request", "request completed"), skipped before
 * their objects are built when the request's logger would drop them (the `warn` level of a
 * busy production server): Fastify builds them first and lets the logger drop them.
 */
class LevelAwareLogController extends LogController {
  override incomingRequest(request: FastifyRequest, reply: FastifyReply): void {
    if ((request.log as PinoLike).isLevelEnabled('info')) super.incomingRequest(request, reply);
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if ((request.log as PinoLike).isLevelEnabled(error ? 'error' : 'info')) super.requestCompleted(error, request, reply);
  }
}

/** Fastify's `logController`, made for each app. */
export function requestLogController(): LogController {
  return new LevelAwareLogController();
}
