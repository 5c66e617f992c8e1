import { createHmac } from 'node:crypto';
import type { AuditEvent, AuditWriter } from '../audit/audit.types.js';
import type { Clock } from '../core/clock.js';
import { hashToken, randomToken, safeEqual } from '../core/crypto.js';
import type { Database } from '../core/db.js';
import { PledgeError } from '../core/errors.js';
import { newId } from '../core/ids.js';
import type { Keyring } from '../core/keyring.js';
import { TtlCache } from '../core/ttl-cache.js';
import { AttemptLimiter } from './staff.limiter.js';
import { hashPassword, MAX_PASSWORD_LENGTH, needsRehash, passwordProblems, verifyPassword } from './staff.passwords.js';
import { isUniqueViolation, staffStore } from './staff.store.js';
import type { ApiKeysTable, StaffUsersTable } from './staff.tables.js';
import { actorAllows, PERMISSIONS, ROLE_PERMISSIONS, ROLES, type Actor, type Permission, type Role } from './permissions.js';

/**
 * Staff accounts, console sessions and API keys: who may sign in, how a request proves who it
 * comes from, and what it may do. Every change and every sign-in attempt is written to the
 * audit chain by staff id — never by email, never with a password.
 *
 *   const staff = new StaffService(database, audit, clock, keyring);
 *   await staff.addStaff({ email: 'ana@example.com', name: 'Ana', role: 'owner', password });
 *   const { token, csrfToken } = await staff.login('ana@example.com', password, { ip });
 *   const { actor } = await staff.authenticateSession(token);
 *   const { key } = await staff.createApiKey(actor, { name: 'shop', permissions: ['data:read'], purposes: ['orders'] });
 *   await staff.authenticateApiKey(key); // { type: 'api_key', id: 'key_…', … }
 */

/** Sessions end after 30 minutes without a request, and 12 hours after sign-in in any case. */
export const SESSION_IDLE_MS = 30 * 60_000;
export const SESSION_ABSOLUTE_MS = 12 * 60 * 60_000;
/** last_seen_at is written at most this often, so a busy console does not write on every request. */
const SESSION_TOUCH_MS = 60_000;
const API_KEY_TOUCH_MS = 60_000;
/** Five wrong passwords in a row lock the account for 15 minutes. */
export const LOCKOUT_THRESHOLD = 5;
export const LOCKOUT_MS = 15 * 60_000;
/** Per client address: 10 sign-in attempts per minute (in memory, per process). */
export const LOGIN_RATE_LIMIT = { limit: 10, windowMs: 60_000 };

export const API_KEY_PREFIX = 'pk_';
/** Characters of a key shown in lists: `pk_` and 8 of its random characters. */
const API_KEY_SHOWN = API_KEY_PREFIX.length + 8;

/** Audit actor for sign-in attempts that did not authenticate anyone. Never used to authorise. */
const UNAUTHENTICATED: Actor = { type: 'system', id: 'unauthenticated' };

const EMAIL_PATTERN = /^[^\s@<>()[\]\\,;:"]+@[^\s@<>()[\]\\,;:"]+\.[^\s@<>()[\]\\,;:"]+$/;
const PURPOSE_PATTERN = /^[a-z][a-z0-9_]*$/;

export interface StaffView {
  id: string;
  email: string;
  name: string;
  role: Role;
  createdAt: string;
  updatedAt: string;
  lastLoginAt: string | null;
  /** Set while the account is locked after repeated failures. */
  lockedUntil: string | null;
  disabledAt: string | null;
}

export interface StaffSummary {
  id: string;
  name: string;
  role: Role;
}

export interface ApiKeyView {
  id: string;
  name: string;
  prefix: string;
  permissions: Permission[];
  purposes: string[] | 'all';
  createdBy: string;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
  expiresAt: string | null;
  status: 'active' | 'revoked' | 'expired';
}

export interface AddStaffInput {
  email: string;
  name: string;
  role: string;
  password: string;
}

export interface CreateApiKeyInput {
  name: string;
  permissions: readonly string[];
  purposes: readonly string[] | 'all';
  /** ISO 8601 date-time; omitted: the key does not expire. */
  expiresAt?: string | null;
}

export interface LoginResult {
  /** The session token: goes into the cookie, and nowhere else. */
  token: string;
  csrfToken: string;
  staff: StaffSummary;
  /** The absolute end of the session. */
  expiresAt: string;
}

export interface SessionInfo {
  actor: Extract<Actor, { type: 'staff' }>;
  sessionId: string;
  csrfToken: string;
  staff: StaffSummary;
  expiresAt: string;
}

export interface StaffServiceOptions {
  /** Per-address sign-in limit; defaults to LOGIN_RATE_LIMIT. */
  loginRateLimit?: { limit: number; windowMs: number };
  /**
   * How long a verified API key is remembered (default API_KEY_CACHE_MS). Revoking through this
   * process takes effect at once; another process sharing the database sees it within this time.
   */
  apiKeyCacheMs?: number;
  /**
   * The purposes the policy declares: an API key may be scoped only to those (422
   * unknown_purpose otherwise). Without it — the staff domain tested on its own, with no policy —
   * purpose ids are checked for their form alone.
   */
  declaredPurposes?: { has(purpose: string): boolean; keys(): Iterable<string> };
}

/** One second: a service calling thousands of times a second pays one key look-up a second. */
export const API_KEY_CACHE_MS = 1_000;

type ApiKeyActor = Extract<Actor, { type: 'api_key' }>;

interface VerifiedApiKey {
  row: ApiKeysTable;
  known: KnownApiKey;
}

/**
 * An API key verified moments ago (knownApiKey), as one connection may keep it for its next
 * calls (see http/auth.ts): it holds until `validUntilMs` — the cache's own limit, the key's
 * expiry, its next last-used stamp, whichever comes first — and only while no key has been
 * revoked in this process since it was verified (`generation`).
 */
export interface KnownApiKey {
  readonly actor: ApiKeyActor;
  readonly validUntilMs: number;
  readonly generation: number;
}

/** The keyring's part that this domain uses: the token signing secret (for CSRF tokens). */
export type TokenSecrets = Pick<Keyring, 'secret'>;

export class StaffService {
  private readonly limiter: AttemptLimiter;
  private dummyHash: Promise<string> | undefined;
  /** Verified API keys by secret hash (never by the secret itself), with the actor they stand for. */
  private readonly apiKeys: TtlCache<string, VerifiedApiKey>;
  private readonly apiKeyCacheMs: number;
  /** Moves on with every revocation in this process: what was known before it no longer holds. */
  private apiKeyGeneration = 0;

  private readonly declaredPurposes: StaffServiceOptions['declaredPurposes'];

  constructor(
    private readonly database: Database,
    private readonly audit: AuditWriter,
    private readonly clock: Clock,
    private readonly keyring: TokenSecrets,
    options: StaffServiceOptions = {},
  ) {
    this.declaredPurposes = options.declaredPurposes;
    const limit = options.loginRateLimit ?? LOGIN_RATE_LIMIT;
    this.limiter = new AttemptLimiter(clock, limit.limit, limit.windowMs);
    this.apiKeyCacheMs = options.apiKeyCacheMs ?? API_KEY_CACHE_MS;
    this.apiKeys = new TtlCache({ max: 10_000, ttlMs: this.apiKeyCacheMs, now: () => clock.now().getTime() });
  }

  // --- staff accounts ------------------------------------------------------------------------

  /** Adds a staff account. `actor` is who adds it (the CLI passes a system actor). */
  async addStaff(input: AddStaffInput, actor: Actor = { type: 'system', id: 'cli' }): Promise<StaffView> {
    const email = normaliseEmail(input.email);
    const name = input.name.trim();
    const errors: Array<{ location: string; message: string }> = [];
    if (!isEmail(email)) errors.push({ location: 'email', message: 'is not a valid email address' });
    if (name.length === 0 || name.length > 200) errors.push({ location: 'name', message: 'must be 1 to 200 characters' });
    if (!isRole(input.role)) errors.push({ location: 'role', message: `must be one of ${ROLES.join(', ')}` });
    if (errors.length > 0) throw new PledgeError('validation_failed', 'the staff account is not valid', { details: { errors } });
    assertMayGrantRole(actor, input.role as Role);
    const problems = passwordProblems(input.password, email);
    if (problems.length > 0) {
      throw new PledgeError('weak_password', `the password is not acceptable: ${problems.map(describeProblem).join('; ')}`, { details: { reasons: problems } });
    }

    const passwordHash = await hashPassword(input.password);
    const now = this.now();
    const row: StaffUsersTable = {
      id: newId('stf', this.clock.now().getTime()),
      email,
      name,
      role: input.role,
      password_hash: passwordHash,
      failed_logins: 0,
      locked_until: null,
      created_at: now,
      updated_at: now,
      last_login_at: null,
      disabled_at: null,
    };
    try {
      await this.database.db.transaction().execute(async (trx) => {
        if (await staffStore.findStaffByEmail(trx, email)) throw emailTaken();
        await staffStore.insertStaff(trx, row);
        await this.audit.appendWithin(trx, [{ actor, action: 'staff.created', target: { type: 'staff', id: row.id }, details: { role: row.role } }]);
      });
    } catch (error) {
      if (isUniqueViolation(error)) throw emailTaken();
      throw error;
    }
    return toStaffView(row, this.clock.now());
  }

  async listStaff(): Promise<StaffView[]> {
    const now = this.clock.now();
    return (await staffStore.listStaff(this.database.db)).map((row) => toStaffView(row, now));
  }

  async getStaff(id: string): Promise<StaffView> {
    const row = await staffStore.findStaffById(this.database.db, id);
    if (!row) throw staffNotFound();
    return toStaffView(row, this.clock.now());
  }

  /** Changes a role. The last active owner cannot stop being owner (nobody could manage staff). */
  async changeRole(actor: Actor, staffId: string, role: string): Promise<StaffView> {
    if (!isRole(role)) {
      throw new PledgeError('validation_failed', 'the role is not valid', { details: { errors: [{ location: 'role', message: `must be one of ${ROLES.join(', ')}` }] } });
    }
    assertMayGrantRole(actor, role);
    const now = this.now();
    await this.database.db.transaction().execute(async (trx) => {
      const row = await staffStore.findStaffById(trx, staffId);
      if (!row) throw staffNotFound();
      if (row.role === role) return;
      if (row.role === 'owner' && row.disabled_at === null) {
        const owners = await staffStore.activeOwnerIds(trx, this.database.dialect);
        if (owners.filter((id) => id !== staffId).length === 0) {
          throw new PledgeError('last_owner', 'this is the last active owner; make someone else owner first');
        }
      }
      await staffStore.setRole(trx, staffId, role, now);
      await this.audit.appendWithin(trx, [
        { actor, action: 'staff.role_changed', target: { type: 'staff', id: staffId }, details: { from: row.role, to: role } },
      ]);
    });
    return this.getStaff(staffId);
  }

  /**
   * Disables an account (someone leaves): it can no longer sign in and its open sessions end
   * at once. The row stays, so the audit trail keeps naming a real account. The last active
   * owner cannot be disabled.
   */
  async disableStaff(actor: Actor, staffId: string): Promise<StaffView> {
    const now = this.now();
    await this.database.db.transaction().execute(async (trx) => {
      const row = await staffStore.findStaffById(trx, staffId);
      if (!row) throw staffNotFound();
      if (row.disabled_at !== null) return;
      if (row.role === 'owner') {
        const owners = await staffStore.activeOwnerIds(trx, this.database.dialect);
        if (owners.filter((id) => id !== staffId).length === 0) {
          throw new PledgeError('last_owner', 'this is the last active owner; make someone else owner first');
        }
      }
      await staffStore.disable(trx, staffId, now);
      const sessions = await staffStore.revokeSessionsOf(trx, staffId, now);
      await this.audit.appendWithin(trx, [{ actor, action: 'staff.disabled', target: { type: 'staff', id: staffId }, details: { sessions_revoked: sessions } }]);
    });
    return this.getStaff(staffId);
  }

  /** Lifts a lockout before it expires by itself. */
  async unlock(actor: Actor, staffId: string): Promise<StaffView> {
    const now = this.now();
    await this.database.db.transaction().execute(async (trx) => {
      const row = await staffStore.findStaffById(trx, staffId);
      if (!row) throw staffNotFound();
      await staffStore.unlock(trx, staffId, now);
      await this.audit.appendWithin(trx, [{ actor, action: 'staff.unlocked', target: { type: 'staff', id: staffId } }]);
    });
    return this.getStaff(staffId);
  }

  // --- sign-in and sessions ------------------------------------------------------------------

  /**
   * Signs a staff member in and opens a session. Every failure — unknown email, wrong
   * password, locked or disabled account — answers the same `invalid_credentials` after the
   * same argon2 work, so neither the answer nor its timing tells which emails exist.
   */
  async login(email: string, password: string, context: { ip: string }): Promise<LoginResult> {
    const wait = this.limiter.hit(context.ip);
    if (wait > 0) {
      throw new PledgeError('rate_limited', `too many sign-in attempts from this address; try again in ${wait} seconds`, { details: { retryAfter: wait } });
    }
    const normalised = normaliseEmail(email);
    const row = normalised.length <= 254 && isEmail(normalised) ? await staffStore.findStaffByEmail(this.database.db, normalised) : undefined;
    // An oversized password is refused after the same (bounded) work as any other wrong one.
    const candidate = password.length <= MAX_PASSWORD_LENGTH * 4 ? password : '';
    const matches = await verifyPassword(row?.password_hash ?? (await this.dummyPasswordHash()), candidate) && candidate !== '';
    const nowDate = this.clock.now();
    const now = nowDate.toISOString();

    if (!row) {
      await this.audit.record([{ actor: UNAUTHENTICATED, action: 'staff.login_failed', target: { type: 'staff', id: 'unknown' }, details: { reason: 'unknown_account' } }]);
      throw invalidCredentials();
    }
    const locked = row.locked_until !== null && row.locked_until > now;
    const reason = row.disabled_at !== null ? 'disabled' : locked ? 'locked' : matches ? undefined : 'wrong_password';
    if (reason) {
      await this.database.db.transaction().execute(async (trx) => {
        const details: Record<string, string | number | boolean> = { reason };
        if (reason === 'wrong_password') {
          const failures = await staffStore.addLoginFailure(trx, row.id, now);
          details.failures = failures;
          if (failures >= LOCKOUT_THRESHOLD) {
            await staffStore.lock(trx, row.id, new Date(nowDate.getTime() + LOCKOUT_MS).toISOString(), now);
            details.locked = true;
          }
        }
        await this.audit.appendWithin(trx, [{ actor: UNAUTHENTICATED, action: 'staff.login_failed', target: { type: 'staff', id: row.id }, details }]);
      });
      throw invalidCredentials();
    }

    const role = asRole(row.role);
    const token = randomToken(32);
    const sessionId = hashToken(token);
    const expiresAt = new Date(nowDate.getTime() + SESSION_ABSOLUTE_MS).toISOString();
    const rehashed = needsRehash(row.password_hash) ? await hashPassword(password) : undefined;
    const actor: Actor = { type: 'staff', id: row.id, role };
    await this.database.db.transaction().execute(async (trx) => {
      await staffStore.insertSession(trx, { id: sessionId, staff_id: row.id, created_at: now, expires_at: expiresAt, last_seen_at: now, revoked_at: null });
      await staffStore.recordLoginSuccess(trx, row.id, now, rehashed);
      await this.audit.appendWithin(trx, [{ actor, action: 'staff.login', target: { type: 'staff', id: row.id } }]);
    });
    return { token, csrfToken: this.csrfTokenFor(sessionId), staff: { id: row.id, name: row.name, role }, expiresAt };
  }

  /**
   * The actor behind a session cookie. Unknown, revoked or disabled: `unauthenticated`;
   * idle for 30 minutes or older than 12 hours: `session_expired`.
   */
  async authenticateSession(token: string): Promise<SessionInfo> {
    if (typeof token !== 'string' || token.length === 0 || token.length > 128) throw unauthenticated();
    const sessionId = hashToken(token);
    const row = await staffStore.findSession(this.database.db, sessionId);
    if (!row || row.revoked_at !== null || row.disabled_at !== null) throw unauthenticated();
    const nowDate = this.clock.now();
    const now = nowDate.getTime();
    const lastSeen = Date.parse(row.last_seen_at);
    if (now >= Date.parse(row.expires_at) || now >= lastSeen + SESSION_IDLE_MS) {
      throw new PledgeError('session_expired', 'the session has expired; sign in again');
    }
    if (now - lastSeen >= SESSION_TOUCH_MS) await staffStore.touchSession(this.database.db, sessionId, nowDate.toISOString());
    const role = asRole(row.role);
    return {
      actor: { type: 'staff', id: row.staff_id, role },
      sessionId,
      csrfToken: this.csrfTokenFor(sessionId),
      staff: { id: row.staff_id, name: row.name, role },
      expiresAt: row.expires_at,
    };
  }

  /** Constant-time check of the X-CSRF-Token header against the session's token. */
  checkCsrf(session: Pick<SessionInfo, 'sessionId'>, presented: string | undefined): boolean {
    return typeof presented === 'string' && safeEqual(presented, this.csrfTokenFor(session.sessionId));
  }

  /** Ends a session (idempotent). */
  async logout(token: string): Promise<void> {
    if (typeof token !== 'string' || token.length === 0 || token.length > 128) return;
    const sessionId = hashToken(token);
    const now = this.now();
    await this.database.db.transaction().execute(async (trx) => {
      const row = await staffStore.findSession(trx, sessionId);
      if (!row || !(await staffStore.revokeSession(trx, sessionId, now))) return;
      const actor: Actor = { type: 'staff', id: row.staff_id, role: asRole(row.role) };
      await this.audit.appendWithin(trx, [{ actor, action: 'staff.logout', target: { type: 'staff', id: row.staff_id } }]);
    });
  }

  /** Deletes sessions that ended more than a day ago (for a periodic job). */
  purgeEndedSessions(): Promise<number> {
    const cutoff = new Date(this.clock.now().getTime() - 24 * 60 * 60_000).toISOString();
    return staffStore.deleteSessionsEndedBefore(this.database.db, cutoff);
  }

  // --- API keys ------------------------------------------------------------------------------

  /**
   * Creates an API key and returns it — the only time the full key is ever available; only its
   * SHA-256 is stored. A key never gets a permission its creator does not hold.
   */
  /** A key scoped to a purpose the policy does not declare would be refused on every use: refuse it at once. */
  private assertDeclaredPurposes(purposes: readonly string[]): void {
    const declared = this.declaredPurposes;
    const unknown = declared ? purposes.find((purpose) => !declared.has(purpose)) : undefined;
    if (unknown === undefined) return;
    // Purpose ids have passed PURPOSE_PATTERN: names from the policy's vocabulary, not personal data.
    throw new PledgeError('unknown_purpose', `purpose "${unknown}" is not declared in the policy; it declares ${[...declared!.keys()].join(', ')}`, { details: { purpose: unknown } });
  }

  async createApiKey(actor: Actor, input: CreateApiKeyInput): Promise<{ apiKey: ApiKeyView; key: string }> {
    const name = input.name.trim();
    const errors: Array<{ location: string; message: string }> = [];
    if (name.length === 0 || name.length > 100) errors.push({ location: 'name', message: 'must be 1 to 100 characters' });
    const permissions = [...new Set(input.permissions)];
    if (permissions.length === 0) errors.push({ location: 'permissions', message: 'must name at least one permission' });
    for (const permission of permissions) {
      if (!isPermission(permission)) errors.push({ location: 'permissions', message: `unknown permission; use ${Object.keys(PERMISSIONS).join(', ')}` });
    }
    let purposes: string[] | 'all';
    if (input.purposes === 'all') purposes = 'all';
    else {
      purposes = [...new Set(input.purposes)];
      if (purposes.some((purpose) => !PURPOSE_PATTERN.test(purpose) || purpose.length > 64)) {
        errors.push({ location: 'purposes', message: 'must be "all" or a list of purpose ids from the policy' });
      }
    }
    if (errors.length === 0 && purposes !== 'all') this.assertDeclaredPurposes(purposes);
    const nowDate = this.clock.now();
    let expiresAt: string | null = null;
    if (input.expiresAt !== undefined && input.expiresAt !== null) {
      const time = Date.parse(input.expiresAt);
      if (Number.isNaN(time)) errors.push({ location: 'expiresAt', message: 'must be an ISO 8601 date-time' });
      else if (time <= nowDate.getTime()) errors.push({ location: 'expiresAt', message: 'must be in the future' });
      else expiresAt = new Date(time).toISOString();
    }
    if (errors.length > 0) throw new PledgeError('validation_failed', 'the API key is not valid', { details: { errors } });
    const granted = permissions as Permission[];
    const beyond = granted.filter((permission) => !actorAllows(actor, permission));
    if (beyond.length > 0) {
      throw new PledgeError('forbidden', 'a key cannot be given a permission you do not hold yourself', { details: { permission: beyond[0], permissions: beyond } });
    }

    const key = `${API_KEY_PREFIX}${randomToken(32)}`;
    const now = nowDate.toISOString();
    const row: ApiKeysTable = {
      id: newId('key', nowDate.getTime()),
      name,
      prefix: key.slice(0, API_KEY_SHOWN),
      secret_hash: hashToken(key),
      permissions: JSON.stringify(granted),
      purposes: JSON.stringify(purposes),
      created_by: actor.id,
      created_at: now,
      last_used_at: null,
      revoked_at: null,
      expires_at: expiresAt,
    };
    await this.database.db.transaction().execute(async (trx) => {
      await staffStore.insertApiKey(trx, row);
      const details: AuditEvent['details'] = { permissions: granted, purposes, expires_at: expiresAt };
      await this.audit.appendWithin(trx, [{ actor, action: 'api_key.created', target: { type: 'api_key', id: row.id }, details }]);
    });
    return { apiKey: toApiKeyView(row, nowDate), key };
  }

  async listApiKeys(): Promise<ApiKeyView[]> {
    const now = this.clock.now();
    return (await staffStore.listApiKeys(this.database.db)).map((row) => toApiKeyView(row, now));
  }

  /** Revokes a key for good. Revoking a revoked key changes nothing and records nothing. */
  async revokeApiKey(actor: Actor, id: string): Promise<ApiKeyView> {
    const now = this.now();
    const row = await this.database.db.transaction().execute(async (trx) => {
      const found = await staffStore.findApiKeyById(trx, id);
      if (!found) throw new PledgeError('api_key_not_found', 'no API key has this id');
      if (await staffStore.revokeApiKey(trx, id, now)) {
        await this.audit.appendWithin(trx, [{ actor, action: 'api_key.revoked', target: { type: 'api_key', id } }]);
        return { ...found, revoked_at: now };
      }
      return found;
    });
    // After the commit, so that no look-up can cache the key as it was before.
    this.apiKeys.clear();
    this.apiKeyGeneration++;
    return toApiKeyView(row, this.clock.now());
  }

  /** The actor behind `Authorization: Bearer pk_…`. */
  async authenticateApiKey(token: string): Promise<ApiKeyActor> {
    if (typeof token !== 'string' || !token.startsWith(API_KEY_PREFIX) || token.length > 128) throw unauthenticated();
    const secretHash = hashToken(token);
    const cached = this.apiKeys.get(secretHash);
    if (cached && this.isStillKnown(cached.known)) return cached.known.actor;
    const row = cached?.row ?? (await staffStore.findApiKeyBySecretHash(this.database.db, secretHash));
    // The look-up is by hash; comparing once more in constant time costs nothing and guards a collation surprise.
    if (!row || !safeEqual(row.secret_hash, secretHash)) throw unauthenticated();
    const nowDate = this.clock.now();
    if (row.revoked_at !== null) throw new PledgeError('api_key_revoked', 'this API key has been revoked');
    if (row.expires_at !== null && row.expires_at <= nowDate.toISOString()) throw new PledgeError('api_key_expired', 'this API key has expired');
    if (row.last_used_at === null || nowDate.getTime() - Date.parse(row.last_used_at) >= API_KEY_TOUCH_MS) {
      await staffStore.touchApiKey(this.database.db, row.id, nowDate.toISOString());
      row.last_used_at = nowDate.toISOString();
    }
    const view = toApiKeyView(row, nowDate);
    const actor: ApiKeyActor = { type: 'api_key', id: row.id, permissions: view.permissions, purposes: view.purposes };
    const validUntilMs = Math.min(
      nowDate.getTime() + this.apiKeyCacheMs,
      row.expires_at === null ? Infinity : Date.parse(row.expires_at),
      // When last_used_at is next written (at most once a minute per key).
      Date.parse(row.last_used_at!) + API_KEY_TOUCH_MS,
    );
    this.apiKeys.set(secretHash, { row, known: { actor, validUntilMs, generation: this.apiKeyGeneration } });
    return actor;
  }

  /**
   * The actor of a key verified moments ago, without waiting for anything — the common case of a
   * service calling many times a second; undefined when the key must be looked up (unknown, no
   * longer cached, expired or due for its last-used stamp), then authenticateApiKey decides.
   */
  knownApiKey(token: string): KnownApiKey | undefined {
    if (typeof token !== 'string' || token.length > 128) return undefined;
    const cached = this.apiKeys.get(hashToken(token));
    return cached && this.isStillKnown(cached.known) ? cached.known : undefined;
  }

  /** Whether a key known earlier (knownApiKey) still holds now: in time, and no revocation since. */
  isStillKnown(known: KnownApiKey): boolean {
    return known.generation === this.apiKeyGeneration && this.clock.now().getTime() < known.validUntilMs;
  }

  /** The key behind an API-key actor, for GET /v1/auth/me. */
  async getApiKey(id: string): Promise<ApiKeyView> {
    const row = await staffStore.findApiKeyById(this.database.db, id);
    if (!row) throw new PledgeError('api_key_not_found', 'no API key has this id');
    return toApiKeyView(row, this.clock.now());
  }

  // --- internals -----------------------------------------------------------------------------

  /**
   * The CSRF token of a session: an HMAC of the session id under the keyring's token signing
   * secret. Tied to the session (another session's token does not fit), never stored, and
   * unforgeable without the secret.
   */
  private csrfTokenFor(sessionId: string): string {
    return createHmac('sha256', this.keyring.secret('token_signing')).update('pledge/csrf/v1\u0000').update(sessionId).digest('base64url');
  }

  /** A hash of a random password, verified against when the email is unknown, to spend the same time. */
  private dummyPasswordHash(): Promise<string> {
    this.dummyHash ??= hashPassword(randomToken(24));
    return this.dummyHash;
  }

  private now(): string {
    return this.clock.now().toISOString();
  }
}

// --- helpers -------------------------------------------------------------------------------------

export function normaliseEmail(email: string): string {
  return email.trim().toLowerCase();
}

export function isEmail(value: string): boolean {
  return value.length <= 254 && EMAIL_PATTERN.test(value);
}

export function isRole(value: string): value is Role {
  return (ROLES as readonly string[]).includes(value);
}

function isPermission(value: string): value is Permission {
  return Object.hasOwn(PERMISSIONS, value);
}

/**
 * Nobody hands out more than they hold: giving someone a role needs every permission of that
 * role (today only owners manage staff and hold everything; this keeps it true if a narrower
 * staff-managing role or an API key with staff:manage appears).
 */
function assertMayGrantRole(actor: Actor, role: Role): void {
  const beyond = ROLE_PERMISSIONS[role].filter((permission) => !actorAllows(actor, permission));
  if (beyond.length > 0) {
    throw new PledgeError('forbidden', `giving the ${role} role needs every permission it carries`, { details: { permission: beyond[0], permissions: beyond } });
  }
}

function asRole(value: string): Role {
  if (!isRole(value)) throw new PledgeError('internal', 'a staff account has a role this version does not know');
  return value;
}

function describeProblem(problem: string): string {
  switch (problem) {
    case 'too_short':
      return 'it must be at least 12 characters long';
    case 'too_long':
      return `it must be at most ${MAX_PASSWORD_LENGTH} characters long`;
    case 'same_as_email':
      return 'it must not be the email address';
    case 'common':
      return 'it is a commonly used password';
    case 'repeated':
      return 'it must not be one character repeated';
    default:
      return problem;
  }
}

function toStaffView(row: StaffUsersTable, now: Date): StaffView {
  return {
    id: row.id,
    email: row.email,
    name: row.name,
    role: asRole(row.role),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    lastLoginAt: row.last_login_at,
    lockedUntil: row.locked_until !== null && row.locked_until > now.toISOString() ? row.locked_until : null,
    disabledAt: row.disabled_at,
  };
}

function toApiKeyView(row: ApiKeysTable, now: Date): ApiKeyView {
  const permissions = (JSON.parse(row.permissions) as string[]).filter(isPermission);
  const storedPurposes = JSON.parse(row.purposes) as string[] | 'all';
  const expired = row.expires_at !== null && row.expires_at <= now.toISOString();
  return {
    id: row.id,
    name: row.name,
    prefix: row.prefix,
    permissions,
    purposes: storedPurposes === 'all' ? 'all' : storedPurposes,
    createdBy: row.created_by,
    createdAt: row.created_at,
    lastUsedAt: row.last_used_at,
    revokedAt: row.revoked_at,
    expiresAt: row.expires_at,
    status: row.revoked_at !== null ? 'revoked' : expired ? 'expired' : 'active',
  };
}

function unauthenticated(): PledgeError {
  return new PledgeError('unauthenticated', 'sign in, or send an API key as Authorization: Bearer pk_…');
}

function invalidCredentials(): PledgeError {
  return new PledgeError('invalid_credentials', 'the email or the password is wrong (or the account is locked for a while after repeated failures)');
}

function emailTaken(): PledgeError {
  return new PledgeError('staff_email_taken', 'another staff account already uses this email address');
}

function staffNotFound(): PledgeError {
  return new PledgeError('staff_not_found', 'no staff account has this id');
}
