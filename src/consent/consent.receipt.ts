import type { Policy } from '../policy/policy.model.js';
import { effectiveChoice } from '../policy/policy.model.js';
import type { ConsentAction, ConsentSource, ConsentTargetKind } from './consent.tables.js';

/**
 * Consent receipts in the Kantara Initiative Consent Receipt Specification v1.1 format: a record
 * the person (or a regulator) can keep of what was decided, under which policy, with whom.
 * `piiPrincipalId` is the holder id (sub_… or vis_…), never an email address. Each purpose entry
 * also carries `decision` (granted, denied, withdrawn, opted_out_by_signal), an extension: the
 * specification describes consent given, and Pledge issues a receipt for every decision.
 * A choice about a recipient (sharing with it at all) is listed as a purpose entry too: the
 * disclosure to that third party, with `thirdPartyDisclosure: true` and its name.
 */
export interface KantaraReceipt {
  version: 'KI-CR-v1.1.0';
  jurisdiction: string;
  consentTimestamp: number;
  collectionMethod: string;
  consentReceiptID: string;
  publicKey?: string;
  language: string;
  piiPrincipalId: string;
  piiControllers: Array<{ piiController: string; onBehalf: boolean; contact: string; address: string; email: string; phone: string; piiControllerUrl?: string }>;
  policyUrl: string;
  services: Array<{ service: string; purposes: ReceiptPurpose[] }>;
  sensitive: boolean;
  spiCat: string[];
}

export interface ReceiptPurpose {
  purpose: string;
  purposeCategory: string[];
  consentType: 'EXPLICIT' | 'IMPLICIT';
  piiCategory: string[];
  primaryPurpose: boolean;
  termination: string;
  thirdPartyDisclosure: boolean;
  thirdPartyName?: string;
  decision: ConsentAction;
}

export interface ReceiptEntry {
  kind: ConsentTargetKind;
  target: string;
  action: ConsentAction;
}

const COLLECTION_METHODS: Record<ConsentSource | 'merge', string> = {
  banner: 'consent banner',
  privacy_center: 'privacy center',
  api: 'company application (API)',
  email_link: 'link in an email',
  gpc: 'Global Privacy Control browser signal',
  dnt: 'Do Not Track browser signal',
  staff: 'recorded by staff',
  import: 'imported from an earlier system',
  merge: 'choices made before signing in, joined to the account',
};

const TERMINATION = 'Until withdrawn. Choices can be changed at any time in the privacy center, and marketing mail carries a link to stop it.';

export function buildReceipt(policy: Policy, options: { id: string; holder: string; at: Date; source: ConsentSource | 'merge'; publicUrl: string; entries: readonly ReceiptEntry[] }): KantaraReceipt {
  const document = policy.document;
  const organization = document.organization;
  const contact = organization.contacts.find((item) => item.role === 'privacy' || item.role === 'dpo') ?? organization.contacts[0]!;
  const sensitive = new Set<string>();
  const categoryNames = (references: readonly string[]) =>
    references.map((reference) => {
      const info = policy.categories.get(reference);
      if (info?.sensitive) sensitive.add(info.name);
      return policy.categoryName(reference);
    });
  const purposes: ReceiptPurpose[] = options.entries.map((entry) => {
    if (entry.kind === 'recipient') {
      const recipient = policy.recipients.get(entry.target)!;
      const served = recipient.purposes.map((id) => policy.purposes.get(id)!);
      return {
        purpose: `Sharing with ${recipient.name}${recipient.description ? `: ${recipient.description}` : ''}`,
        purposeCategory: served.map((purpose) => purpose.name),
        // Sharing a person can opt out of goes on until they do.
        consentType: 'IMPLICIT',
        piiCategory: categoryNames(recipient.categories),
        primaryPurpose: false,
        termination: TERMINATION,
        thirdPartyDisclosure: true,
        thirdPartyName: recipient.name,
        decision: entry.action,
      };
    }
    const topic = entry.kind === 'topic' ? document.communications?.find((item) => item.id === entry.target) : undefined;
    const purpose = policy.purposes.get(topic ? topic.purpose : entry.target)!;
    const categories = categoryNames(purpose.categories);
    const thirdParties = (document.recipients ?? []).filter((recipient) => recipient.role !== 'processor' && recipient.purposes.includes(purpose.id));
    return {
      purpose: topic ? `${topic.name}: ${topic.description ?? purpose.description}` : purpose.description,
      purposeCategory: [purpose.name],
      consentType: effectiveChoice(purpose) === 'opt_in' ? 'EXPLICIT' : 'IMPLICIT',
      piiCategory: categories,
      primaryPurpose: purpose.legal_basis === 'contract',
      termination: TERMINATION,
      thirdPartyDisclosure: thirdParties.length > 0,
      ...(thirdParties.length > 0 ? { thirdPartyName: thirdParties.map((recipient) => recipient.name).join(', ') } : {}),
      decision: entry.action,
    };
  });
  return {
    version: 'KI-CR-v1.1.0',
    jurisdiction: organization.jurisdiction ?? '',
    consentTimestamp: Math.floor(options.at.getTime() / 1000),
    collectionMethod: COLLECTION_METHODS[options.source],
    consentReceiptID: options.id,
    language: document.policy.language ?? 'en',
    piiPrincipalId: options.holder,
    piiControllers: [
      {
        piiController: organization.legal_name ?? organization.name,
        onBehalf: false,
        contact: contact.name ?? `${organization.name} ${contact.role} contact`,
        address: organization.address ?? contact.postal ?? '',
        email: contact.email ?? '',
        phone: contact.phone ?? '',
        ...(organization.website ? { piiControllerUrl: organization.website } : {}),
      },
    ],
    policyUrl: `${options.publicUrl}/policy`,
    services: [{ service: organization.services?.[0] ?? organization.name, purposes }],
    sensitive: sensitive.size > 0,
    spiCat: [...sensitive],
  };
}
