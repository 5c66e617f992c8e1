import { createInterface } from 'node:readline/promises';

/**
 * The starter policy `pledge init` writes: a complete, valid pledge.yaml shaped by a few
 * answers, with a comment on every section saying what it promises and what Pledge does with
 * it. It is meant to be read top to bottom and edited, not kept as is.
 *
 * @example
 * const answers = process.stdin.isTTY ? await askStarterAnswers(process.stdin, process.stdout) : defaultStarterAnswers;
 * writeFileSync('pledge.yaml', renderStarterPolicy(answers));
 */

export interface StarterAnswers {
  organization: string;
  website?: string;
  privacyEmail: string;
  /** Where the company is established: US, DE, US-CA, EU… (also where data is stored). */
  jurisdiction: string;
  sellsProducts: boolean;
  sendsMarketing: boolean;
  usesAnalytics: boolean;
  minimumAge: number;
}

export const defaultStarterAnswers: StarterAnswers = Object.freeze({
  organization: 'Example Inc.',
  privacyEmail: 'privacy@example.com',
  jurisdiction: 'US',
  sellsProducts: true,
  sendsMarketing: true,
  usesAnalytics: true,
  minimumAge: 16,
});

// The same tests the policy schema applies (ajv-formats "email", RegionCode), so an accepted
// answer always yields a valid file.
const EMAIL = /^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/i;
const REGION = /^([A-Z]{2}(-[A-Z0-9]{1,3})?|EU|EEA|WORLD)$/;

function isWebsite(value: string): boolean {
  if (!/^https?:\/\//.test(value) || value.length > 2000) return false;
  try {
    return Boolean(new URL(value).hostname);
  } catch {
    return false;
  }
}

/** What is wrong with the answers, in words; empty when they make a valid policy. */
export function starterAnswerProblems(answers: StarterAnswers): string[] {
  const problems: string[] = [];
  if (answers.organization.trim().length === 0 || answers.organization.length > 200) problems.push('the organization name must be 1 to 200 characters');
  if (answers.website !== undefined && !isWebsite(answers.website)) problems.push('the website must be an http:// or https:// address');
  if (answers.privacyEmail.length > 320 || !EMAIL.test(answers.privacyEmail)) problems.push('the privacy email must be an email address such as privacy@example.com');
  if (!REGION.test(answers.jurisdiction)) problems.push('the jurisdiction must be an ISO 3166 code such as US, DE or US-CA, or EU, EEA, WORLD');
  if (!Number.isInteger(answers.minimumAge) || answers.minimumAge < 0 || answers.minimumAge > 21) problems.push('the minimum age must be a whole number from 0 to 21');
  return problems;
}

/** A YAML double-quoted scalar: JSON strings are valid YAML, and escape quotes, #, : and newlines. */
function q(value: string): string {
  return JSON.stringify(value);
}

function list(items: ReadonlyArray<string | false>): string {
  return `[${items.filter((item): item is string => item !== false).join(', ')}]`;
}

/**
 * The starter pledge.yaml. Throws a RangeError naming the problems when the answers cannot
 * make a valid policy (see starterAnswerProblems).
 */
export function renderStarterPolicy(answers: StarterAnswers, options: { today?: Date } = {}): string {
  const problems = starterAnswerProblems(answers);
  if (problems.length > 0) throw new RangeError(`cannot write a starter policy: ${problems.join('; ')}`);
  const { organization, website, privacyEmail, jurisdiction, sellsProducts: sells, sendsMarketing: marketing, usesAnalytics: analytics, minimumAge } = answers;
  const today = (options.today ?? new Date()).toISOString().slice(0, 10);
  const gpcPurposes = [marketing && 'marketing', analytics && 'analytics'].filter((item): item is string => item !== false);
  const email = q(privacyEmail);
  const region = jurisdiction;

  const out: string[] = [];
  const add = (...lines: Array<string | false>) => {
    for (const line of lines) if (line !== false) out.push(line);
  };

  add(
    '# yaml-language-server: $schema=./pledge.schema.json',
    '#',
    '# Your privacy policy, as code. Pledge reads this file and keeps its promises: every read of',
    '# personal data names a purpose declared here, and data this file does not allow is refused;',
    '# retention deadlines, consent choices, browser privacy signals and the deadlines of people\'s',
    '# requests are enforced from it; and the human-readable policy is rendered from it, so the',
    '# document and the behaviour cannot disagree.',
    '#',
    '# This is a starter written by `pledge init` from a few answers. Read it top to bottom, make',
    '# it true for your company, then:',
    '#   pledge policy validate pledge.yaml      errors with file:line:column and a suggested fix',
    '#   pledge policy render pledge.yaml        the policy as people will read it',
    '#   pledge policy diff old.yaml pledge.yaml what changed, and whether people must be told',
    '#   pledge serve --policy pledge.yaml       run the engine on it',
    '# The first line lets editors (VS Code with the YAML extension, and others) autocomplete and',
    '# check this file against pledge.schema.json (`pledge policy schema` writes it).',
    '#',
    '# Lists of things other parts refer to carry an `id` (lowercase letters, digits, underscores),',
    '# so references read like `purposes: [marketing]`. Data categories are dotted names from',
    '# general to specific (user.contact.email); naming a category covers everything below it.',
    '',
    '# The version of the policy language. Always 1 for now.',
    'pledge: 1',
    '',
    '# ---------------------------------------------------------------------------------------------',
    '# About this document. Every consent decision records the version it was given under, and',
    '# `pledge policy diff` compares versions: bump `version` and `effective_date` with each change.',
    'policy:',
    '  version: "1.0"',
    `  effective_date: ${today}`,
    '  language: en',
    '  # title: defaults to "<organization name> Privacy Policy".',
    `  summary: ${q(`This policy explains what ${organization} collects about you, why, who receives it, how long it is kept, and how you can see, correct, export or delete it.`)}`,
    '  # scope: What the policy covers and what it does not (e.g. third-party sites we link to).',
    '',
    '# ---------------------------------------------------------------------------------------------',
    '# Who is responsible for the data (the controller) and how to reach them. Changing the name,',
    '# legal name or jurisdiction later is a material change: people are told before it applies.',
    'organization:',
    `  name: ${q(organization)}`,
    '  # legal_name: Example Inc.          the registered entity, if it differs from the name',
    website ? `  website: ${q(website)}` : '  # website: https://www.example.com',
    '  # address: 1 Main Street, Springfield, USA',
    `  jurisdiction: ${region}`,
    '  # description: One or two sentences on what the company does.',
    '  # services: [Online shop, Mobile app]',
    '  # How people reach you about privacy; add security, support or dpo contacts as you need.',
    '  contacts:',
    '    - role: privacy',
    `      email: ${email}`,
    '',
    '# ---------------------------------------------------------------------------------------------',
    '# The kinds of people you hold data about. Collection, purposes and retention can be limited',
    '# to some kinds (`subjects: [...]`).',
    'subject_kinds:',
    '  - id: customer',
    '    name: Customers',
    `    description: ${q(sells ? 'People who create an account or buy from us.' : 'People who create an account.')}`,
    marketing && '  - id: subscriber',
    marketing && '    name: Newsletter subscribers',
    '  - id: visitor',
    '    name: Visitors',
    '    description: Anyone using the website without signing in.',
    '',
    '# ---------------------------------------------------------------------------------------------',
    '# Data categories of your own, added under the built-in taxonomy (`pledge policy categories` lists',
    '# it: user.name, user.contact.email, user.device.ip_address, user.behavior.purchase_history…).',
    '# Example:',
    '#   - id: user.account.loyalty_points',
    '#     name: Loyalty points',
    'categories: []',
    '',
    '# ---------------------------------------------------------------------------------------------',
    '# Partners that give you personal data (payment providers, lead lists, sign-in services).',
    '# Collection entries with `source: partner` name one of them.',
  );
  if (sells) {
    add(
      'sources:',
      '  - id: payment_provider',
      '    name: Payment provider',
      '    description: Confirms payments and refunds; we never receive full card numbers.',
    );
  } else {
    add('sources: []');
  }

  add(
    '',
    '# ---------------------------------------------------------------------------------------------',
    '# What you collect, about whom, and from where: the person (forms), automatic (logs, cookies),',
    '# a partner, another person (a referral) or staff. Pledge stores each field with its category',
    '# and source, and refuses to store a category no entry here declares. `required_for` says for',
    '# which purposes providing it is mandatory; for every other purpose it is optional.',
    'collection:',
    '  - id: account_signup',
    '    description: When you create an account.',
    '    categories: [user.name, user.contact.email, user.account.username, user.authorization.credentials]',
    '    subjects: [customer]',
    '    source: person',
    '    method: Sign-up form',
    '    required_for: [account]',
  );
  if (sells) {
    add(
      '  - id: checkout',
      '    description: When you place an order.',
      '    categories: [user.contact.address, user.behavior.purchase_history]',
      '    subjects: [customer]',
      '    source: person',
      '    method: Checkout form',
      '    required_for: [order_fulfilment]',
      '  - id: payment',
      '    description: Your payment is handled by our payment provider; we receive only the outcome.',
      '    categories: [user.payment]',
      '    subjects: [customer]',
      '    source: partner',
      '    partner: payment_provider',
    );
  }
  if (marketing) {
    add(
      '  - id: newsletter_signup',
      '    description: When you subscribe to our newsletter.',
      '    categories: [user.contact.email]',
      '    subjects: [subscriber, customer]',
      '    source: person',
      '    method: Newsletter form',
    );
  }
  add(
    '  - id: server_logs',
    '    description: Recorded automatically by our servers when you use the website.',
    '    categories: [user.device.ip_address, user.device.browser]',
    '    subjects: [visitor, customer]',
    '    source: automatic',
    '    method: Server logs',
  );
  if (analytics) {
    add(
      '  - id: browsing',
      '    description: Collected automatically when you browse the website, unless you object.',
      '    categories: [user.device.cookie_id, user.behavior.browsing_history]',
      '    subjects: [visitor, customer]',
      '    source: automatic',
      '    method: Analytics cookie',
    );
  }

  add(
    '',
    '# ---------------------------------------------------------------------------------------------',
    '# Why data is used. Every read of personal data names a purpose (`?purpose=marketing`) and gets',
    '# back only the categories listed here, and only while the person\'s choice allows it:',
    '#   legal_basis  consent, contract, legitimate_interest, legal_obligation, vital_interest, public_task',
    '#   choice       opt_in (only after the person agrees), opt_out (until they object),',
    '#                none (necessary). Default: opt_in for consent, opt_out for legitimate_interest,',
    '#                none otherwise. Consent is always opt_in.',
    '#   profiling / automated_decisions: say so when the purpose builds profiles or decides alone.',
    'purposes:',
    '  - id: account',
    '    name: Your account',
    '    description: Create and run your account, sign you in and keep it secure.',
    '    legal_basis: contract',
    '    categories: [user.name, user.contact.email, user.account, user.authorization]',
  );
  if (sells) {
    add(
      '  - id: order_fulfilment',
      '    name: Orders and delivery',
      '    description: Take your order, deliver it, and handle returns and refunds.',
      '    legal_basis: contract',
      '    categories: [user.name, user.contact.email, user.contact.address, user.behavior.purchase_history, user.payment]',
    );
  }
  if (marketing) {
    add(
      '  - id: marketing',
      '    name: Newsletter and offers',
      '    description: Send you our newsletter and offers by email, if you ask for them.',
      '    legal_basis: consent',
      '    choice: opt_in',
      '    categories: [user.name, user.contact.email]',
      '    profiling: false',
    );
  }
  if (analytics) {
    add(
      '  - id: analytics',
      '    name: Website analytics',
      '    description: Count visits and popular pages to improve the website.',
      '    legal_basis: legitimate_interest',
      '    choice: opt_out',
      '    categories: [user.device, user.behavior.browsing_history]',
    );
  }
  add(
    '  - id: security',
    '    name: Security and fraud prevention',
    '    description: Detect and stop abuse of accounts and of the website.',
    '    legal_basis: legitimate_interest',
    '    choice: none',
    '    categories: [user.device.ip_address, user.device.browser, user.account.username]',
    '  - id: legal_compliance',
    '    name: Legal obligations',
    `    description: ${q(sells ? 'Keep invoices as tax law requires and answer lawful requests from authorities.' : 'Answer lawful requests from authorities and keep the records the law requires.')}`,
    '    legal_basis: legal_obligation',
    `    categories: ${list(['user.name', 'user.contact.email', sells && 'user.contact.address', sells && 'user.behavior.purchase_history', sells && 'user.payment'])}`,
    '',
    '# ---------------------------------------------------------------------------------------------',
    '# Who receives personal data: processors (act on your instructions: hosting, email, payments),',
    '# controllers, affiliates, authorities, acquirers. Each receives only categories one of its',
    '# purposes may use; Pledge records every disclosure in a register. Name your real providers.',
    'recipients:',
    '  - id: hosting',
    '    name: Hosting provider',
    '    role: processor',
    '    description: Runs the servers and databases the service uses.',
    '    purposes: [account, security]',
    '    categories: [user.name, user.contact.email, user.account, user.device.ip_address]',
    `    regions: [${region}]`,
    '    safeguards: Bound by a data processing agreement.',
    '  - id: email_delivery',
    '    name: Email delivery service',
    '    role: processor',
    '    description: Delivers the emails we send you.',
    `    purposes: ${list(['account', sells && 'order_fulfilment', marketing && 'marketing'])}`,
    '    categories: [user.name, user.contact.email]',
    `    regions: [${region}]`,
    '    safeguards: Bound by a data processing agreement.',
  );
  if (sells) {
    add(
      '  - id: payment_provider',
      '    name: Payment provider',
      '    role: processor',
      '    description: Processes payments on our behalf.',
      '    purposes: [order_fulfilment]',
      '    categories: [user.name, user.payment]',
      `    regions: [${region}]`,
      '    safeguards: Bound by a data processing agreement and PCI DSS.',
    );
  }
  add(
    '  - id: authorities',
    '    name: Law enforcement and courts',
    '    role: authority',
    '    purposes: [legal_compliance]',
    '    categories: [user.name, user.contact.email]',
    '    condition: Only when required by law, court order or other legal process.',
    '',
    '# ---------------------------------------------------------------------------------------------',
    '# Selling. With `sells_personal_data: false` Pledge refuses to record a sale. Aggregate',
    '# statistics (counts, never individuals) are released only in groups of at least',
    '# `minimum_group_size` people.',
    'sharing:',
    '  sells_personal_data: false',
    '  aggregate_statistics:',
    '    shared: false',
    '    # description: The number of customers by country.',
    '    # minimum_group_size: 10',
    '',
    '# ---------------------------------------------------------------------------------------------',
    '# How long data is kept. Every collected category needs a rule. Pledge deletes (or anonymises)',
    '# data when its time is up, counted from the trigger: collected, last_activity or',
    '# account_closed. Deletion destroys the person\'s own encryption key, so backups become',
    '# unreadable too. Exceptions keep data the law requires, restricted to that use.',
    'retention:',
    '  - id: account_data',
    '    description: Account data is deleted 30 days after the account is closed.',
    '    categories: [user.name, user.contact.email, user.account, user.authorization]',
    '    subjects: [customer]',
    '    duration: 30 days',
    '    trigger: account_closed',
    '    action: delete',
  );
  if (marketing) {
    add(
      '  - id: newsletter_subscribers',
      '    description: Subscribers who have not opened a newsletter for two years are removed.',
      '    categories: [user.contact.email]',
      '    subjects: [subscriber]',
      '    duration: 2 years',
      '    trigger: last_activity',
      '    action: delete',
    );
  }
  if (sells) {
    add(
      '  - id: orders',
      '    description: Orders are anonymised three years after they are placed; invoices are kept for tax law.',
      '    categories: [user.contact.address, user.behavior.purchase_history, user.payment]',
      '    duration: 3 years',
      '    trigger: collected',
      '    action: anonymize',
      '    exceptions:',
      '      - id: tax_records',
      '        reason: legal_obligation',
      '        description: Invoices are kept for the period tax law requires.',
      '        categories: [user.payment]',
      '        duration: 7 years',
    );
  }
  add(
    '  - id: server_logs',
    '    categories: [user.device.ip_address, user.device.browser]',
    '    duration: 90 days',
    '    trigger: collected',
    '    action: delete',
  );
  if (analytics) {
    add(
      '  - id: analytics_data',
      '    categories: [user.device.cookie_id, user.behavior.browsing_history]',
      '    duration: 13 months',
      '    trigger: collected',
      '    action: delete',
    );
  }

  add(
    '',
    '# ---------------------------------------------------------------------------------------------',
    '# The rights people have, how they exercise them, and how fast you answer. Pledge takes the',
    '# requests (privacy center, email…), verifies the person, tracks each deadline, and carries',
    '# the request out across its own store and the connected datastores (see datasets below).',
    '# Deadlines: "30 days", "45 calendar days", "10 business days". The law sets the minimum:',
    '# one month under the GDPR, 45 days under US state laws such as the CCPA.',
    'rights:',
    '  # calendar:                   what counts as a business day',
    '  #   business_days: [mon, tue, wed, thu, fri]',
    '  #   holidays: us_federal',
    '  #   timezone: America/New_York',
    '  requests:',
    '    - type: access',
    '      channels:',
    '        - kind: privacy_center',
    '        - kind: email',
    `          address: ${email}`,
    '      deadline: 30 days',
    '      extension:',
    '        deadline: 30 days',
    '      verification: email_code',
    '    - type: portability',
    '      channels: [{ kind: privacy_center }]',
    '      deadline: 30 days',
    '      verification: email_code',
    '    - type: correction',
    '      channels: [{ kind: account }, { kind: privacy_center }]',
    '      deadline: 30 days',
    '      verification: email_code',
    '      self_service: true',
    '    - type: erasure',
    '      channels:',
    '        - kind: privacy_center',
    '        - kind: email',
    `          address: ${email}`,
    '      deadline: 30 days',
    '      verification: email_code',
    '    - type: restriction',
    '      channels: [{ kind: privacy_center }]',
    '      deadline: 30 days',
    '      verification: email_code',
    '    - type: objection',
    '      channels: [{ kind: privacy_center }]',
    '      deadline: 30 days',
    '      verification: email_code',
    '    - type: withdraw_consent',
    '      channels: [{ kind: privacy_center }]',
    '      deadline: 2 business days',
    '  complaints:',
    '    channels:',
    '      - kind: email',
    `        address: ${email}`,
    '    deadline: 30 days',
    '    # authority: The supervisory authority a person may complain to.',
    '',
    '# ---------------------------------------------------------------------------------------------',
    '# Messages you send, by topic. Service messages are always sent; marketing only while its',
    '# purpose is allowed, with an unsubscribe link in every message. policy_change topics carry',
    '# the notices of new policy versions; request_notice the news about people\'s requests.',
    'communications:',
    '  - id: account_notices',
    '    name: Account notices',
    '    kind: service',
    '    purpose: account',
    '    channels: [email]',
    '    description: Sign-in and security alerts, and changes to your account.',
  );
  if (sells) {
    add(
      '  - id: order_updates',
      '    name: Order updates',
      '    kind: service',
      '    purpose: order_fulfilment',
      '    channels: [email]',
      '    description: Order confirmations, delivery updates and receipts.',
    );
  }
  if (marketing) {
    add(
      '  - id: newsletter',
      '    name: Newsletter',
      '    kind: marketing',
      '    purpose: marketing',
      '    channels: [email]',
      '    subjects: [subscriber, customer]',
      '    description: News and offers, at most twice a month.',
    );
  }
  add(
    '  - id: policy_updates',
    '    name: Privacy policy updates',
    '    kind: policy_change',
    '    purpose: account',
    '    channels: [email]',
    '  - id: request_updates',
    '    name: Your privacy requests',
    '    kind: request_notice',
    '    purpose: legal_compliance',
    '    channels: [email]',
    '',
    '# ---------------------------------------------------------------------------------------------',
    '# Cookies and similar browser storage. The consent banner sets a cookie only while its purpose',
    '# is allowed; cookies for necessary purposes (choice: none, or contract) need no consent.',
    '# `provider` is first_party or the id of the recipient or source that sets it.',
    'cookies:',
    '  - name: session',
    '    provider: first_party',
    '    purpose: account',
    '    lifetime: session',
    '    description: Keeps you signed in; holds an opaque session identifier only.',
    '    categories: [user.authorization.session]',
  );
  if (sells) {
    add(
      '  - name: cart',
      '    provider: first_party',
      '    purpose: order_fulfilment',
      '    lifetime: 7 days',
      '    description: Remembers your shopping cart.',
    );
  }
  if (analytics) {
    add(
      '  - name: analytics_id',
      '    provider: first_party',
      '    purpose: analytics',
      '    lifetime: 13 months',
      '    description: Counts visits without identifying you by name.',
      '    categories: [user.device.cookie_id]',
    );
  }

  add(
    '',
    '# ---------------------------------------------------------------------------------------------',
    '# Browser privacy signals. When Global Privacy Control is honoured, a browser sending it opts',
    '# the person out of the listed purposes, recorded in their consent ledger (several US states',
    '# require this for sale, sharing and targeted advertising). Do Not Track likewise.',
    'signals:',
  );
  if (gpcPurposes.length > 0) {
    add('  gpc:', '    honoured: true', `    opts_out_of: ${list(gpcPurposes)}`);
  } else {
    add(
      '  # Nothing here can be opted out of (no marketing, no analytics), so there is nothing for',
      '  # GPC to do; when you add an optional purpose, honour GPC and list it under opts_out_of.',
      '  gpc:',
      '    honoured: false',
    );
  }
  add(
    '  dnt:',
    '    honoured: false',
    '',
    '# ---------------------------------------------------------------------------------------------',
    '# Children. Pledge refuses data of people younger than minimum_age when their age is known.',
    'children:',
    `  minimum_age: ${minimumAge}`,
    '  directed_to_children: false',
    `  description: ${q(minimumAge > 0 ? `Our service is not directed to children and we do not knowingly collect data from anyone under ${minimumAge}.` : 'Our service is not directed to children.')}`,
    '',
    '# ---------------------------------------------------------------------------------------------',
    '# Where personal data is stored, and transfers abroad with their legal mechanism (adequacy,',
    '# scc, bcr, dpf, consent, contract, derogation). A new region or transfer is a material change.',
    'storage:',
    `  regions: [${region}]`,
    '  # Example: data of people in the EU processed in the US under standard contractual clauses.',
    '  #   - from: EU',
    '  #     to: US',
    '  #     mechanism: scc',
    '  transfers: []',
    '',
    '# ---------------------------------------------------------------------------------------------',
    '# Security measures, rendered in the policy. enforced_by: pledge marks what the engine does',
    '# itself; company (the default) marks commitments Pledge cannot check.',
    'security:',
    '  measures:',
    '    - id: field_encryption',
    '      kind: technical',
    '      description: Every person\'s data is encrypted with a key of its own; deleting the person destroys the key.',
    '      enforced_by: pledge',
    '    - id: audit_log',
    '      kind: technical',
    '      description: Every access to personal data is written to a tamper-evident log.',
    '      enforced_by: pledge',
    '    - id: tls',
    '      kind: technical',
    '      description: All traffic is encrypted in transit (HTTPS).',
    '    - id: access_control',
    '      kind: organizational',
    '      description: Only staff who need personal data for their work can reach it.',
    '  disclaimer: No method of transmission or storage is completely secure, but we work to protect your data.',
    '',
    '# ---------------------------------------------------------------------------------------------',
    '# How people learn of a new version. `pledge policy diff` decides whether a change is',
    '# material (it widens what is done with data or weakens rights); Pledge then sends the notices',
    '# (material_only defaults to true for email and in_app, false for website) advance_notice',
    '# before the new version takes effect. acceptance: continued_use or explicit.',
    'changes:',
    '  notify:',
    '    - audience: everyone',
    '      channel: website',
    '    - audience: registered',
    '      channel: email',
    '  advance_notice: 30 days',
    '  acceptance: continued_use',
    '',
    '# ---------------------------------------------------------------------------------------------',
    '# Further statements rendered as written.',
    'notices:',
    '  - id: other_websites',
    '    title: Links to other websites',
    '    text: Our website links to sites we do not run. Their own privacy policies apply there.',
    '',
    '# ---------------------------------------------------------------------------------------------',
    '# Connected datastores: the databases of your own applications (shop, CRM, billing) that',
    '# data-subject requests and retention reach. Declare them here so an access or erasure',
    '# request covers them too: PostgreSQL, MySQL/MariaDB, SQLite or an HTTP endpoint.',
    'datasets: []',
  );
  return `${out.join('\n')}\n`;
}

// --- the questions ---------------------------------------------------------------------------

function parseYesNo(text: string, fallback: boolean): boolean | undefined {
  const answer = text.toLowerCase();
  if (answer === '') return fallback;
  if (answer === 'y' || answer === 'yes') return true;
  if (answer === 'n' || answer === 'no') return false;
  return undefined;
}

/**
 * Asks the starter questions, each with its default in brackets (Enter keeps it), and asks
 * again after an invalid answer. Throws when the input ends before every question is answered.
 */
export async function askStarterAnswers(input: NodeJS.ReadableStream, output: NodeJS.WritableStream): Promise<StarterAnswers> {
  const terminal = Boolean((input as { isTTY?: boolean }).isTTY && (output as { isTTY?: boolean }).isTTY);
  const rl = createInterface({ input, output, terminal });
  // Reading through the iterator buffers lines that arrive before a question is asked (piped
  // or pasted answers), which rl.question() would drop.
  const lines = rl[Symbol.asyncIterator]();
  const defaults = defaultStarterAnswers;
  // Once the input has ended, readline is closed (Node 24 refuses prompt() then) while
  // buffered lines are still to be read: write the question ourselves.
  let closed = false;
  rl.once('close', () => {
    closed = true;
  });

  async function ask<T>(question: string, shown: string, parse: (text: string) => T | undefined, invalid: string): Promise<T> {
    for (;;) {
      const prompt = `${question} [${shown}] `;
      if (closed) {
        output.write(prompt);
      } else {
        rl.setPrompt(prompt);
        rl.prompt();
      }
      const next = await lines.next();
      if (next.done) throw new Error('the answers ended before every question was answered; run `pledge init --defaults` to write the starter without questions');
      const value = parse(String(next.value).trim());
      if (value !== undefined) return value;
      output.write(`  ${invalid}\n`);
    }
  }
  const yesNo = (question: string, fallback: boolean) =>
    ask(`${question} (y/n)`, fallback ? 'Y/n' : 'y/N', (text) => parseYesNo(text, fallback), 'Please answer y or n.');

  try {
    output.write('A few questions to write your starter pledge.yaml. Press Enter to keep the answer in brackets.\n');
    const organization = await ask(
      'Organization name',
      defaults.organization,
      (text) => (text === '' ? defaults.organization : text.length <= 200 ? text : undefined),
      'Please enter a name of at most 200 characters.',
    );
    const website = await ask<string | null>(
      'Website (Enter for none)',
      defaults.website ?? 'none',
      (text) => {
        if (text === '' || text.toLowerCase() === 'none') return defaults.website ?? null;
        const withScheme = /^https?:\/\//i.test(text) ? text : `https://${text}`;
        return isWebsite(withScheme) && !/\s/.test(withScheme) ? withScheme : undefined;
      },
      'Please enter a web address such as https://www.example.com, or press Enter for none.',
    );
    const privacyEmail = await ask(
      'Email address for privacy questions and requests',
      defaults.privacyEmail,
      (text) => (text === '' ? defaults.privacyEmail : text.length <= 320 && EMAIL.test(text) ? text : undefined),
      'Please enter an email address such as privacy@example.com.',
    );
    const jurisdiction = await ask(
      'Country (or region) where the company is established',
      defaults.jurisdiction,
      (text) => {
        const code = text === '' ? defaults.jurisdiction : text.toUpperCase();
        return REGION.test(code) ? code : undefined;
      },
      'Please enter an ISO 3166 code such as US, DE or US-CA, or EU, EEA, WORLD.',
    );
    const sellsProducts = await yesNo('Do people buy products or services from you online?', defaults.sellsProducts);
    const sendsMarketing = await yesNo('Do you send marketing emails or newsletters?', defaults.sendsMarketing);
    const usesAnalytics = await yesNo('Do you use website analytics?', defaults.usesAnalytics);
    const minimumAge = await ask(
      'Minimum age of the people whose data you accept',
      String(defaults.minimumAge),
      (text) => {
        if (text === '') return defaults.minimumAge;
        if (!/^\d{1,2}$/.test(text)) return undefined;
        const age = Number(text);
        return age <= 21 ? age : undefined;
      },
      'Please enter a whole number from 0 to 21.',
    );
    return {
      organization,
      ...(website ? { website } : {}),
      privacyEmail,
      jurisdiction,
      sellsProducts,
      sendsMarketing,
      usesAnalytics,
      minimumAge,
    };
  } finally {
    rl.close();
  }
}
