/**
 * The built-in data category taxonomy. Names are dotted from general to specific and follow
 * the conventions of the fideslang taxonomy (user.contact.email, user.device.cookie_id…) so
 * that policies and dataset annotations read the same across tools. A policy may add
 * categories under any existing one (`categories:` in pledge.yaml).
 *
 * A reference to a category covers every category below it: a purpose allowed
 * `user.contact` may use `user.contact.email`.
 */
export interface CategoryInfo {
  id: string;
  name: string;
  description?: string;
  sensitive?: boolean;
}

const BUILT_IN: Array<[id: string, name: string, description?: string, sensitive?: true]> = [
  ['user', 'Personal data', 'Any information about an identified or identifiable person.'],
  ['user.name', 'Name'],
  ['user.name.first', 'First name'],
  ['user.name.last', 'Last name'],
  ['user.contact', 'Contact details'],
  ['user.contact.email', 'Email address'],
  ['user.contact.phone_number', 'Phone number'],
  ['user.contact.address', 'Postal address'],
  ['user.contact.url', 'Website or profile address'],
  ['user.account', 'Account data'],
  ['user.account.username', 'Username or user ID'],
  ['user.account.settings', 'Account settings and preferences'],
  ['user.authorization', 'Credentials', 'Secrets that prove identity.', true],
  ['user.authorization.credentials', 'Password', 'Stored only as a one-way hash.', true],
  ['user.authorization.session', 'Session token'],
  ['user.financial', 'Financial data'],
  ['user.financial.credit_card', 'Payment card details', undefined, true],
  ['user.financial.bank_account', 'Bank account details', undefined, true],
  ['user.financial.billing', 'Billing details', 'Billing name, address, invoices and tax identifiers.'],
  ['user.financial.credit_history', 'Credit history', 'Creditworthiness information from credit agencies.', true],
  ['user.payment', 'Payment records', 'Payments, refunds and subscription status.'],
  ['user.behavior', 'Activity'],
  ['user.behavior.browsing_history', 'Pages visited and browsing history'],
  ['user.behavior.purchase_history', 'Purchase history'],
  ['user.behavior.usage', 'Product usage', 'Features used, actions performed, session duration.'],
  ['user.behavior.search_history', 'Search history'],
  ['user.device', 'Device and browser data'],
  ['user.device.ip_address', 'IP address'],
  ['user.device.cookie_id', 'Cookie identifier'],
  ['user.device.device_id', 'Device identifier'],
  ['user.device.hostname', 'Computer host name'],
  ['user.device.browser', 'Browser and operating system', 'Browser type and version, operating system, language.'],
  ['user.location', 'Location'],
  ['user.location.imprecise', 'Approximate location', 'Country or region, e.g. derived from an IP address.'],
  ['user.location.precise', 'Precise location', undefined, true],
  ['user.content', 'Content the person provides'],
  ['user.content.communications', 'Messages and support requests'],
  ['user.content.public', 'Publicly posted content', 'Forum posts, reviews, comments.'],
  ['user.content.private', 'Private uploads', 'Files and records uploaded to the service.'],
  ['user.workplace', 'Employer and professional affiliation'],
  ['user.demographic', 'Demographics'],
  ['user.demographic.date_of_birth', 'Date of birth'],
  ['user.demographic.age_range', 'Age range'],
  ['user.demographic.gender', 'Gender'],
  ['user.government_id', 'Government identifiers', undefined, true],
  ['user.health', 'Health data', undefined, true],
  ['user.biometric', 'Biometric data', undefined, true],
  ['user.privacy_preferences', 'Privacy choices', 'Consent decisions and opt-outs.'],
  ['user.unique_id', 'Customer number or internal identifier'],
  ['user.derived', 'Inferences'],
  ['user.derived.profile', 'Customer profile', 'Interests and segments inferred from activity.'],
];

export const BUILT_IN_CATEGORIES: ReadonlyMap<string, CategoryInfo> = new Map(
  BUILT_IN.map(([id, name, description, sensitive]) => [
    id,
    { id, name, ...(description ? { description } : {}), ...(sensitive ? { sensitive } : {}) },
  ]),
);

/** True when `reference` names `category` itself or one of its ancestors. */
export function covers(reference: string, category: string): boolean {
  return category === reference || category.startsWith(`${reference}.`);
}

/** The parent of a dotted category, or undefined at the root. */
export function parentOf(category: string): string | undefined {
  const dot = category.lastIndexOf('.');
  return dot === -1 ? undefined : category.slice(0, dot);
}
