import Type from 'typebox';
import { PERMISSIONS, ROLES } from './permissions.js';

/**
 * Request and response schemas of the staff, session and API-key routes. Bodies refuse unknown
 * members (additionalProperties: false); responses list exactly what is sent, so a field added
 * to a row can never leak through a response by accident.
 */
const PERMISSION_NAMES = Object.keys(PERMISSIONS) as Array<keyof typeof PERMISSIONS>;

export const RoleSchema = Type.Enum([...ROLES], { description: `A staff role: ${ROLES.join(', ')}.` });
export const PermissionSchema = Type.Enum(PERMISSION_NAMES, { description: 'A permission (see the staff roles documentation).' });
const Timestamp = (description: string) => Type.String({ format: 'date-time', description });
const NullableTimestamp = (description: string) => Type.Union([Timestamp(description), Type.Null()]);

export const StaffIdParams = Type.Object({ id: Type.String({ pattern: '^stf_[0-9a-hjkmnp-tv-z]{26}$', description: 'Staff id (stf_…).' }) }, { additionalProperties: false });
export const ApiKeyIdParams = Type.Object({ id: Type.String({ pattern: '^key_[0-9a-hjkmnp-tv-z]{26}$', description: 'API key id (key_…).' }) }, { additionalProperties: false });

export const LoginBody = Type.Object(
  {
    // No format check here: any string is answered the same way as a wrong password.
    email: Type.String({ minLength: 1, maxLength: 320, description: 'The staff member\'s email address.' }),
    password: Type.String({ minLength: 1, maxLength: 4096, format: 'password' }),
  },
  { additionalProperties: false },
);

export const StaffSummarySchema = Type.Object({ id: Type.String(), name: Type.String(), role: RoleSchema });

export const LoginResponse = Type.Object({
  staff: StaffSummarySchema,
  csrfToken: Type.String({ description: 'Send it back as the X-CSRF-Token header on every POST, PUT, PATCH and DELETE made with the session cookie.' }),
  expiresAt: Timestamp('When the session ends at the latest (12 hours after sign-in); 30 minutes without a request end it sooner.'),
});

export const MeResponse = Type.Object({
  actor: Type.Object({ type: Type.Enum(['staff', 'api_key']), id: Type.String() }),
  permissions: Type.Array(PermissionSchema),
  staff: Type.Optional(StaffSummarySchema),
  csrfToken: Type.Optional(Type.String()),
  expiresAt: Type.Optional(Timestamp('End of the session at the latest.')),
  apiKey: Type.Optional(Type.Object({ id: Type.String(), name: Type.String(), prefix: Type.String(), purposes: Type.Union([Type.Literal('all'), Type.Array(Type.String())]) })),
});

export const CreateStaffBody = Type.Object(
  {
    email: Type.String({ format: 'email', maxLength: 254 }),
    name: Type.String({ minLength: 1, maxLength: 200 }),
    role: RoleSchema,
    password: Type.String({ maxLength: 1024, format: 'password', description: 'At least 12 characters, not the email address, not a common password.' }),
  },
  { additionalProperties: false },
);

export const UpdateStaffBody = Type.Object({ role: RoleSchema }, { additionalProperties: false });

export const StaffSchema = Type.Object({
  id: Type.String(),
  email: Type.String(),
  name: Type.String(),
  role: RoleSchema,
  createdAt: Timestamp('Created.'),
  updatedAt: Timestamp('Last changed.'),
  lastLoginAt: NullableTimestamp('Last successful sign-in.'),
  lockedUntil: NullableTimestamp('Set while the account is locked after repeated failed sign-ins.'),
  disabledAt: NullableTimestamp('Set when the account was disabled.'),
});

export const StaffList = Type.Object({ items: Type.Array(StaffSchema) });

const Purposes = Type.Union([Type.Literal('all'), Type.Array(Type.String({ pattern: '^[a-z][a-z0-9_]*$', maxLength: 64 }), { maxItems: 100, uniqueItems: true })], {
  description: 'The purposes the key may use personal data for: "all", or purpose ids from the policy.',
});

export const CreateApiKeyBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100, description: 'What uses the key (e.g. "web shop").' }),
    permissions: Type.Array(PermissionSchema, { minItems: 1, uniqueItems: true }),
    purposes: Purposes,
    expiresAt: Type.Optional(Timestamp('When the key stops working; omitted: never.')),
  },
  { additionalProperties: false },
);

export const ApiKeySchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  prefix: Type.String({ description: 'The first characters of the key, to tell keys apart.' }),
  permissions: Type.Array(PermissionSchema),
  purposes: Type.Union([Type.Literal('all'), Type.Array(Type.String())]),
  createdBy: Type.String(),
  createdAt: Timestamp('Created.'),
  lastUsedAt: NullableTimestamp('Last used (to the minute).'),
  revokedAt: NullableTimestamp('Revoked.'),
  expiresAt: NullableTimestamp('Expiry, if any.'),
  status: Type.Enum(['active', 'revoked', 'expired']),
});

export const CreatedApiKey = Type.Object({
  apiKey: ApiKeySchema,
  key: Type.String({ description: 'The key itself. Shown this once; Pledge keeps only its hash.' }),
});

export const ApiKeyList = Type.Object({ items: Type.Array(ApiKeySchema) });
