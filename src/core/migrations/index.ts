import type { Migration } from 'kysely';
import * as policyVersions from './0001-policy-versions.js';
import * as keyringAndSubjects from './0002-keyring-and-subjects.js';
import * as audit from './0003-audit.js';
import * as staff from './0004-staff.js';
import * as consent from './0005-consent.js';
import * as comms from './0006-comms.js';
import * as requests from './0007-requests.js';
import * as retention from './0008-retention.js';
import * as retentionByPerson from './0009-retention-by-person.js';
import * as consentVisitors from './0010-consent-visitors.js';
import * as consentStateNotify from './0011-consent-state-notify.js';

/**
 * Every migration, in order. Listed by hand (not read from a folder) so the compiled package
 * carries them and their order is reviewed like code. Never edit a migration that has
 * shipped; add the next one.
 */
export const MIGRATIONS: Record<string, Migration> = {
  '0001-policy-versions': policyVersions,
  '0002-keyring-and-subjects': keyringAndSubjects,
  '0003-audit': audit,
  '0004-staff': staff,
  '0005-consent': consent,
  '0006-comms': comms,
  '0007-requests': requests,
  '0008-retention': retention,
  '0009-retention-by-person': retentionByPerson,
  '0010-consent-visitors': consentVisitors,
  '0011-consent-state-notify': consentStateNotify,
};
