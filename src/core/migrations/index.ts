import type { Migration } from 'kysely';
import * as policyVersions from './0001-policy-versions.js';

/**
 * Every migration, in order. Listed by hand (not read from a folder) so the compiled package
 * carries them and their order is reviewed like code. Never edit a migration that has
 * shipped; add the next one.
 */
export const MIGRATIONS: Record<string, Migration> = {
  '0001-policy-versions': policyVersions,
};
