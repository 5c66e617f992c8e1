/**
 * Who may do what: one table of permissions per role. Every HTTP route names the permission
 * it needs (`config: { permission: 'data:read' }`) or declares itself public
 * (`config: { public: true }`); the auth layer refuses to register a route that does neither,
 * so a new route cannot be left open by mistake.
 */
export const PERMISSIONS = {
  'subjects:read': 'Look up subjects and see their metadata (kinds, status, identities count) — not their data.',
  'subjects:write': 'Create, update and close subjects, add identities, batch imports.',
  'subjects:erase': 'Erase a subject (destroys its data key).',
  'data:read': "Read a subject's personal data for a declared purpose.",
  'data:write': "Write a subject's personal data for a declared purpose.",
  'audit:read': 'Read the audit log.',
  'audit:verify': 'Verify the audit chain and its checkpoints.',
  'staff:manage': 'Add staff, change roles, unlock accounts.',
  'keys:manage': 'Create and revoke API keys.',
  'consent:read': "Read a person's consent choices, ledger, preferences and receipts, and check whether a purpose may be used.",
  'consent:write': 'Record consent choices, set preferences, identify visitors.',
  'comms:read': 'See the outbox: queued, sent and stored messages and their delivery state.',
  'comms:write': "Queue mail to a subject on a topic of the policy (marketing only reaches people who have not refused it).",
  'policy:accept': 'Record that a person accepted a policy version.',
  'requests:read': 'See data-subject requests, their deadlines and tasks (no personal data).',
  'requests:manage': 'Log requests (with the channel and date they came by), send verification codes, extend deadlines.',
  'requests:decide': 'Verify identities by hand, approve, deny, cancel and run requests, dry-run erasures, get package links.',
  'retention:read': 'See what a retention sweep would remove, and the legal holds.',
  'retention:manage': 'Run retention sweeps; place and release legal holds.',
} as const;

export type Permission = keyof typeof PERMISSIONS;

export const ROLES = ['owner', 'privacy_officer', 'support', 'auditor', 'developer'] as const;
export type Role = (typeof ROLES)[number];

/**
 * What each role may do, granted domain by domain (one line a role and domain). The owner may
 * do everything.
 */
const GRANTS: ReadonlyArray<readonly [Role, readonly Permission[]]> = [
  // the vault and the audit
  ['privacy_officer', ['subjects:read', 'subjects:write', 'subjects:erase', 'data:read', 'data:write', 'audit:read', 'audit:verify']],
  // Support reads data only with a written justification, which lands in the audit entry.
  ['support', ['subjects:read', 'data:read', 'data:write']],
  ['auditor', ['subjects:read', 'audit:read', 'audit:verify']],
  ['developer', ['subjects:read', 'keys:manage']],
  // consent
  ['privacy_officer', ['consent:read', 'consent:write']],
  ['support', ['consent:read', 'consent:write']],
  ['auditor', ['consent:read']],
  // comms and policy publication
  ['privacy_officer', ['comms:read', 'comms:write', 'policy:accept']],
  ['auditor', ['comms:read']],
  // data-subject requests
  ['privacy_officer', ['requests:read', 'requests:manage', 'requests:decide']],
  ['support', ['requests:read', 'requests:manage']],
  ['auditor', ['requests:read']],
  // retention and legal holds
  ['privacy_officer', ['retention:read', 'retention:manage']],
  ['auditor', ['retention:read']],
];

export const ROLE_PERMISSIONS: Record<Role, readonly Permission[]> = Object.fromEntries(
  ROLES.map((role) => [role, role === 'owner' ? (Object.keys(PERMISSIONS) as Permission[]) : [...new Set(GRANTS.filter(([grantee]) => grantee === role).flatMap(([, granted]) => granted))]]),
) as unknown as Record<Role, readonly Permission[]>;

/** Roles whose data reads must carry a justification (header X-Pledge-Justification). */
export const JUSTIFICATION_REQUIRED: readonly Role[] = ['support'];

export function roleAllows(role: Role, permission: Permission): boolean {
  return ROLE_PERMISSIONS[role].includes(permission);
}

/**
 * Who is acting. Recorded in every audit entry by id, never by name or email.
 * - staff: a person signed in to the console (id stf_…, with a role);
 * - api_key: a company service (id key_…, with permissions and the purposes it may use);
 * - subject: the person themselves (privacy center);
 * - system: the engine (retention sweeps, start-up, CLI).
 */
export type Actor =
  | { type: 'staff'; id: string; role: Role }
  | { type: 'api_key'; id: string; permissions: readonly Permission[]; purposes: readonly string[] | 'all' }
  | { type: 'subject'; id: string }
  | { type: 'system'; id: string };

export function actorAllows(actor: Actor, permission: Permission): boolean {
  switch (actor.type) {
    case 'staff':
      return roleAllows(actor.role, permission);
    case 'api_key':
      return actor.permissions.includes(permission);
    case 'system':
      return true;
    case 'subject':
      return false;
  }
}

/** May this actor use data for this purpose at all (API keys are scoped to purposes)? */
export function actorMayUsePurpose(actor: Actor, purpose: string): boolean {
  return actor.type !== 'api_key' || actor.purposes === 'all' || actor.purposes.includes(purpose);
}
