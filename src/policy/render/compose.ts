import { describeDeadline, describeDuration, parseDeadline, parseDuration } from '../duration.js';
import { effectiveChoice, type Policy } from '../policy.model.js';
import type { Channel, CollectionEntry, LegalBasis, PolicyDocument, Purpose, Recipient, RetentionRule, Right, RightType } from '../policy.schema.js';
import {
  code,
  heading,
  link,
  list,
  paragraph,
  strong,
  text,
  type Block,
  type Inline,
  type RenderedDocument,
  type Section,
} from './document.js';

/**
 * Every word of the published policy is written here, from the policy alone: no clock, no
 * environment, so the same policy always renders the same document. Sections keep fixed ids
 * (other code links to them); a section whose data is absent still says so plainly, because
 * "we do not use cookies" is itself a promise.
 *
 * The wording is English. Policy texts (descriptions, notices) are rendered as written.
 */

type Contact = PolicyDocument['organization']['contacts'][number];

// --- words -------------------------------------------------------------------------------------

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

/** "15 January 2026" ("January 15, 2026" for en-US); the input as written if it is not a date. */
function formatDate(iso: string, lang: string): string {
  const year = iso.slice(0, 4);
  const month = MONTHS[Number(iso.slice(5, 7)) - 1];
  const day = Number(iso.slice(8, 10));
  if (iso.length !== 10 || !month || !(day >= 1 && day <= 31)) return iso;
  return lang === 'en-US' ? `${month} ${day}, ${year}` : `${day} ${month} ${year}`;
}

/** "a", "a and b", "a, b, and c" (the serial comma keeps "username or user ID, and password" clear). */
function joinWords(items: readonly string[], conjunction = 'and'): string {
  if (items.length <= 1) return items[0] ?? '';
  // "Device and browser data, and pages visited": a comma keeps the two items apart.
  if (items.length === 2) {
    const first = items[0]!;
    const ambiguous = (item: string) => item.includes(` ${conjunction} `) && !item.startsWith('“');
    const comma = ambiguous(first) || ambiguous(items[1]!) ? ',' : '';
    return `${first}${comma} ${conjunction} ${items[1]}`;
  }
  return `${items.slice(0, -1).join(', ')}, ${conjunction} ${items[items.length - 1]}`;
}

/**
 * Lower-cases a leading capital for use inside a sentence ("Email address" → "email address"),
 * but leaves a first word with other capitals alone ("IP address", "OpMaestro users").
 */
function lowerFirst(value: string): string {
  const first = value[0];
  if (first === undefined || first === first.toLowerCase()) return value;
  let end = value.indexOf(' ');
  if (end === -1) end = value.length;
  if (end < 2) return value;
  for (let index = 1; index < end; index++) {
    const char = value[index]!;
    if (char !== char.toLowerCase()) return value;
  }
  return first.toLowerCase() + value.slice(1);
}

function upperFirst(value: string): string {
  return value.length === 0 ? value : value[0]!.toUpperCase() + value.slice(1);
}

/** Ends a policy text with a full stop when it has no closing punctuation, so sentences can follow it. */
function sentence(value: string): string {
  const trimmed = value.trim();
  const last = trimmed[trimmed.length - 1];
  return last === '.' || last === '!' || last === '?' || last === '…' || last === ':' ? trimmed : `${trimmed}.`;
}

/** Collapses line breaks (postal addresses are written one line per part). */
function oneLine(value: string): string {
  return value
    .split('\n')
    .map((part) => part.trim())
    .filter((part) => part.length > 0)
    .join(', ')
    .replace(/,\s*,/g, ',');
}

/** Paragraphs of a free text: blank lines separate paragraphs, single line breaks become spaces. */
function paragraphsOf(value: string): Block[] {
  return value
    .replace(/\r\n?/g, '\n')
    .split(/\n[ \t]*\n/)
    .map((part) => part.split('\n').map((line) => line.trim()).filter(Boolean).join(' '))
    .filter((part) => part.length > 0)
    .map((part) => ({ type: 'paragraph', content: linkify(part) }));
}

/** Turns the http(s) addresses written in a text into links (their own text, so print shows them). */
function linkify(value: string): Inline[] {
  const parts: Inline[] = [];
  let from = 0;
  for (;;) {
    const http = value.indexOf('http://', from);
    const https = value.indexOf('https://', from);
    const start = http === -1 ? https : https === -1 ? http : Math.min(http, https);
    if (start === -1) break;
    let end = start;
    while (end < value.length && value.charCodeAt(end) > 0x20 && !'<>"\''.includes(value[end]!)) end++;
    // Closing punctuation belongs to the sentence, not the address.
    while (end > start && '.,;:!?)]\''.includes(value[end - 1]!)) end--;
    const address = value.slice(start, end);
    if (address.length <= 8 || !/^https?:\/\/[^/]/.test(address)) {
      from = start + 7;
      continue;
    }
    if (start > 0) parts.push(text(value.slice(0, start)));
    parts.push(link(address, address));
    value = value.slice(end);
    from = 0;
  }
  if (value.length > 0 || parts.length === 0) parts.push(text(value));
  return parts;
}

const REGION_NAMES: Record<string, string> = {
  WORLD: 'anywhere in the world',
  EU: 'the European Union',
  EEA: 'the European Economic Area',
  US: 'the United States',
  CA: 'Canada',
  MX: 'Mexico',
  BR: 'Brazil',
  AR: 'Argentina',
  GB: 'the United Kingdom',
  IE: 'Ireland',
  DE: 'Germany',
  FR: 'France',
  NL: 'the Netherlands',
  BE: 'Belgium',
  LU: 'Luxembourg',
  ES: 'Spain',
  PT: 'Portugal',
  IT: 'Italy',
  AT: 'Austria',
  CH: 'Switzerland',
  SE: 'Sweden',
  DK: 'Denmark',
  FI: 'Finland',
  NO: 'Norway',
  IS: 'Iceland',
  PL: 'Poland',
  CZ: 'the Czech Republic',
  IL: 'Israel',
  IN: 'India',
  SG: 'Singapore',
  HK: 'Hong Kong',
  CN: 'China',
  KR: 'South Korea',
  JP: 'Japan',
  AU: 'Australia',
  NZ: 'New Zealand',
  ZA: 'South Africa',
  AE: 'the United Arab Emirates',
  'US-CA': 'California (United States)',
  'US-CO': 'Colorado (United States)',
  'US-CT': 'Connecticut (United States)',
  'US-NY': 'New York (United States)',
  'US-TX': 'Texas (United States)',
  'US-UT': 'Utah (United States)',
  'US-VA': 'Virginia (United States)',
  'US-WA': 'Washington State (United States)',
  'CA-QC': 'Quebec (Canada)',
};

/** "the United States", "Canada"; a subdivision of a known country as "the United States (US-ME)"; else the code. */
function regionName(code: string): string {
  const known = REGION_NAMES[code];
  if (known) return known;
  const dash = code.indexOf('-');
  if (dash > 0) {
    const country = REGION_NAMES[code.slice(0, dash)];
    if (country) return `${country} (${code})`;
  }
  return code;
}

/** "the United States and Canada". */
function regionList(codes: readonly string[]): string {
  return joinWords(codes.map(regionName));
}

const LEGAL_BASIS_WORDS: Record<LegalBasis, string> = {
  consent: 'your consent',
  contract: 'our contract with you: we need this to provide what you asked for',
  legitimate_interest: 'our legitimate interests, which do not override your rights and interests',
  legal_obligation: 'a legal obligation: the law requires it',
  vital_interest: 'protecting someone’s life or physical safety (vital interests)',
  public_task: 'a task carried out in the public interest',
};

const CONTACT_ROLE_WORDS: Record<Contact['role'], string> = {
  privacy: 'Privacy questions and requests',
  dpo: 'Data protection officer',
  representative: 'Our representative',
  legal: 'Legal department',
  security: 'Security reports',
  support: 'Customer support',
  general: 'General enquiries',
};

const RIGHT_WORDS: Record<RightType, { title: string; description: string }> = {
  access: {
    title: 'See your information',
    description: 'You can ask for a copy of the personal information we hold about you, and how we use it.',
  },
  portability: {
    title: 'Take your information with you',
    description: 'You can ask for your information in a machine-readable format, to keep it or move it to another service.',
  },
  correction: {
    title: 'Correct your information',
    description: 'You can ask us to correct information about you that is wrong or incomplete.',
  },
  erasure: {
    title: 'Delete your information',
    description: 'You can ask us to delete the personal information we hold about you.',
  },
  restriction: {
    title: 'Restrict how we use your information',
    description: 'You can ask us to stop using your information, except to store it, for example while you dispute whether it is accurate.',
  },
  objection: {
    title: 'Object to how we use your information',
    description: 'You can object to uses of your information that rely on our legitimate interests.',
  },
  withdraw_consent: {
    title: 'Withdraw your consent',
    description: 'Where we rely on your consent, you can withdraw it at any time. This does not affect what we did with your consent before you withdrew it.',
  },
};

const WEEKDAY_NAMES: Record<string, string> = {
  mon: 'Monday',
  tue: 'Tuesday',
  wed: 'Wednesday',
  thu: 'Thursday',
  fri: 'Friday',
  sat: 'Saturday',
  sun: 'Sunday',
};

const MESSAGE_CHANNEL_WORDS: Record<string, string> = {
  email: 'email',
  sms: 'text message',
  push: 'push notification',
  in_app: 'message in the app',
  postal: 'post',
};

const TRANSFER_MECHANISM_WORDS: Record<string, string> = {
  adequacy: 'covered by an adequacy decision: the destination is recognised as protecting personal information adequately',
  scc: 'protected by standard contractual clauses',
  bcr: 'protected by binding corporate rules',
  dpf: 'under the EU–U.S. Data Privacy Framework',
  consent: 'with your explicit consent',
  contract: 'because it is necessary to perform our contract with you',
  derogation: 'under an exception the law allows for specific situations',
};

const RETENTION_TRIGGER_WORDS: Record<RetentionRule['trigger'], string> = {
  collected: 'after collection',
  last_activity: 'after your last activity',
  account_closed: 'after you close your account',
};

const EXCEPTION_REASON_WORDS: Record<string, string> = {
  legal_obligation: 'because the law requires it',
  legal_claims: 'to establish, exercise or defend legal claims',
  fraud_prevention: 'to prevent fraud',
};

// --- composer ----------------------------------------------------------------------------------

class Composer {
  readonly doc: PolicyDocument;
  readonly lang: string;
  readonly org: string;
  /** Who "we" are in full sentences: the legal name when declared. */
  readonly we: string;
  private readonly subjectNames: Map<string, string>;
  private readonly recipientNames: Map<string, string>;
  private readonly sourceNames: Map<string, string>;

  constructor(readonly policy: Policy) {
    this.doc = policy.document;
    this.lang = this.doc.policy.language ?? 'en';
    this.org = this.doc.organization.name;
    this.we = this.doc.organization.legal_name ?? this.org;
    this.subjectNames = new Map(this.doc.subject_kinds.map((kind) => [kind.id, kind.name]));
    this.recipientNames = new Map((this.doc.recipients ?? []).map((recipient) => [recipient.id, recipient.name]));
    this.sourceNames = new Map((this.doc.sources ?? []).map((source) => [source.id, source.name]));
  }

  /** "Name, email address, and password": the first name as written, the rest in sentence case. */
  categories(references: readonly string[]): string {
    return joinWords(references.map((reference, index) => {
      const name = this.policy.categoryName(reference);
      return index === 0 ? name : lowerFirst(name);
    }));
  }

  /** The same list in the middle of a sentence. */
  categoriesInline(references: readonly string[]): string {
    return joinWords(references.map((reference) => lowerFirst(this.policy.categoryName(reference))));
  }

  subjects(ids: readonly string[]): string {
    return joinWords(ids.map((id) => lowerFirst(this.subjectNames.get(id) ?? id)));
  }

  purposeName(id: string): string {
    return this.policy.purposes.get(id)?.name ?? id;
  }

  purposeNames(ids: readonly string[]): string {
    return joinWords(ids.map((id) => `“${this.purposeName(id)}”`));
  }

  deadline(value: string): string {
    const parsed = parseDeadline(value);
    return parsed ? describeDeadline(parsed) : value;
  }

  duration(value: string): string {
    const parsed = parseDuration(value);
    return parsed ? describeDuration(parsed) : value;
  }

  /** Email, phone, post and web details of a contact, with links. */
  contactDetails(contact: Contact): Inline[] {
    const parts: Inline[][] = [];
    if (contact.name) parts.push([text(contact.name)]);
    if (contact.email) parts.push([text('email '), link(contact.email, `mailto:${contact.email}`)]);
    if (contact.phone) parts.push([text('phone '), link(contact.phone, telHref(contact.phone))]);
    if (contact.url) parts.push([text('online at '), link(contact.url, contact.url)]);
    if (contact.postal) parts.push([text(`by post to ${oneLine(contact.postal)}`)]);
    return joinInlines(parts, '; ');
  }

  /** How a request reaches us, e.g. "by email to privacy@…" (with a link). */
  channel(channel: Channel): Inline[] {
    const address = channel.address?.trim();
    const parts: Inline[] = [];
    switch (channel.kind) {
      case 'email':
        parts.push(text('by email to '), address && looksLikeEmail(address) ? link(address, `mailto:${address}`) : text(address ?? 'us'));
        break;
      case 'phone':
        parts.push(text('by phone at '), address ? link(address, telHref(address)) : text('our phone number'));
        break;
      case 'postal':
        parts.push(text(`by post to ${address ? oneLine(address) : 'our postal address'}`));
        break;
      case 'web':
        parts.push(text('through our online form at '), address ? urlOrText(address) : text('our website'));
        break;
      case 'privacy_center':
        parts.push(text('in our privacy center'));
        if (address) parts.push(text(' at '), urlOrText(address));
        break;
      case 'account':
        parts.push(text('in your account settings'));
        if (address) parts.push(text(' at '), urlOrText(address));
        break;
    }
    if (channel.description) parts.push(text(` (${lowerFirst(trimFinalStop(channel.description))})`));
    return parts;
  }

  channels(channels: readonly Channel[]): Inline[] {
    const parts = channels.map((channel) => this.channel(channel));
    // A postal address is full of commas; semicolons then keep the channels apart.
    if (parts.some((part) => part.some((inline) => inline.text.includes(',')))) return joinInlines(parts, '; ', '; or ');
    return joinInlines(parts, ', ', parts.length > 2 ? ', or ' : ' or ');
  }

  providerName(provider: string): string {
    if (provider === 'first_party') return this.org;
    return this.recipientNames.get(provider) ?? this.sourceNames.get(provider) ?? provider;
  }

  // --- sections --------------------------------------------------------------------------------

  introduction(): Section {
    const meta = this.doc.policy;
    const org = this.doc.organization;
    const blocks: Block[] = [];
    blocks.push(
      ...paragraphsOf(
        meta.summary ??
          `This policy explains what personal information ${this.org} collects, why we use it, who receives it, how long we keep it, and the rights you have over it.`,
      ),
    );
    blocks.push(paragraph(`This is version ${meta.version} of the policy. It takes effect on ${formatDate(meta.effective_date, this.lang)}.`));
    if (org.description) blocks.push(paragraph(strong(`About ${this.org}: `), text(org.description)));
    if (org.services && org.services.length > 0) {
      blocks.push(paragraph('This policy covers:'), list(org.services.map((service) => [text(service)])));
    }
    if (meta.scope) blocks.push(paragraph(strong('Scope: '), text(meta.scope)));
    blocks.push(
      paragraph('It applies to these people:'),
      list(this.doc.subject_kinds.map((kind) => (kind.description ? [strong(kind.name), text(`: ${kind.description}`)] : [strong(kind.name)]))),
    );
    blocks.push(paragraph(`In this policy, “we”, “us” and “our” mean ${this.we}, and “you” means the person whose information we hold.`));
    return { id: 'introduction', title: 'Introduction', blocks };
  }

  whoWeAre(): Section {
    const org = this.doc.organization;
    const blocks: Block[] = [];
    blocks.push(
      paragraph(
        org.legal_name && org.legal_name !== org.name
          ? `${org.name} is run by ${org.legal_name}, which decides how your personal information is used and is responsible for it (the “controller”).`
          : `${org.name} decides how your personal information is used and is responsible for it (the “controller”).`,
      ),
    );
    const facts: Array<{ term: string; details: Inline[] }> = [];
    facts.push({ term: 'Name', details: [text(org.name)] });
    if (org.legal_name) facts.push({ term: 'Legal name', details: [text(org.legal_name)] });
    if (org.address) facts.push({ term: 'Address', details: [text(oneLine(org.address))] });
    if (org.website) facts.push({ term: 'Website', details: [link(org.website, org.website)] });
    if (org.jurisdiction) facts.push({ term: 'Based in', details: [text(upperFirst(regionName(org.jurisdiction)))] });
    const responsible = org.contacts.filter((contact) => ['privacy', 'dpo', 'representative', 'legal'].includes(contact.role));
    for (const contact of responsible.length > 0 ? responsible : org.contacts.slice(0, 1)) {
      facts.push({ term: CONTACT_ROLE_WORDS[contact.role], details: this.contactDetails(contact) });
    }
    blocks.push({ type: 'definitions', items: facts });
    blocks.push(paragraph(text('Every way to reach us is listed under '), link('Contact us', '#contact'), text('.')));
    return { id: 'who-we-are', title: 'Who we are', blocks };
  }

  collectionItem(entry: CollectionEntry): Inline[] {
    const parts: Inline[] = [strong(this.categories(entry.categories)), text(`, about ${this.subjects(entry.subjects)}.`)];
    const add = (value: string) => parts.push(text(` ${value}`));
    if (entry.source === 'partner' && entry.partner) add(`From ${this.sourceNames.get(entry.partner) ?? entry.partner}.`);
    if (entry.description) add(sentence(entry.description));
    if (entry.method) add(`How: ${sentence(entry.method)}`);
    if (entry.required_for && entry.required_for.length > 0) {
      add(`You must provide it for ${this.purposeNames(entry.required_for)}; for anything else it is optional.`);
    } else if (entry.source === 'person') {
      add('Providing it is optional.');
    }
    return parts;
  }

  whatWeCollect(): Section {
    const blocks: Block[] = [
      paragraph('We collect the personal information below. For each kind we say whom it is about, where it comes from and whether you have to give it to us.'),
    ];
    const groups: Array<[CollectionEntry['source'], string]> = [
      ['person', 'Information you give us'],
      ['automatic', 'Information collected automatically'],
      ['partner', 'Information from our partners'],
      ['other_person', 'Information from other people'],
      ['staff', 'Information our staff record'],
    ];
    for (const [source, title] of groups) {
      const entries = this.doc.collection.filter((entry) => entry.source === source);
      if (entries.length === 0) continue;
      blocks.push(heading(title));
      if (source === 'automatic') blocks.push(paragraph('When you use our services, some information is recorded automatically by our servers and by cookies.'));
      if (source === 'other_person') blocks.push(paragraph('Someone else may give us information about you, for example when they refer you to us.'));
      if (source === 'staff') blocks.push(paragraph('Our staff may add information, for example notes from a conversation with you.'));
      blocks.push(list(entries.map((entry) => this.collectionItem(entry))));
      if (source === 'partner') {
        const partners = (this.doc.sources ?? []).filter((partner) => entries.some((entry) => entry.partner === partner.id));
        const described = partners.filter((partner) => partner.description || partner.privacy_policy_url);
        if (described.length > 0) {
          blocks.push(
            paragraph('About these partners:'),
            list(
              described.map((partner) => {
                const parts: Inline[] = [strong(partner.name), text(partner.description ? `: ${sentence(partner.description)}` : '.')];
                if (partner.privacy_policy_url) parts.push(text(' See the '), link(`privacy policy of ${partner.name}`, partner.privacy_policy_url), text('.'));
                return parts;
              }),
            ),
          );
        }
      }
    }
    const sensitive: string[] = [];
    for (const entry of this.doc.collection) {
      for (const reference of entry.categories) {
        if (this.policy.categories.get(reference)?.sensitive && !sensitive.includes(reference)) sensitive.push(reference);
      }
    }
    if (sensitive.length > 0) {
      blocks.push(paragraph(`We treat the following as sensitive information and use it only for the purposes described in this policy: ${this.categoriesInline(sensitive)}.`));
    }
    return { id: 'what-we-collect', title: 'What we collect', blocks };
  }

  choiceWords(purpose: Purpose): string {
    switch (effectiveChoice(purpose)) {
      case 'opt_in':
        return 'Only with your consent. You can withdraw it at any time.';
      case 'opt_out':
        return 'You can opt out at any time.';
      case 'none':
        if (purpose.legal_basis === 'legal_obligation') return 'Necessary: the law requires it, so it cannot be switched off.';
        if (purpose.legal_basis === 'contract') return 'Necessary to provide the service you asked for, so it cannot be switched off.';
        return 'Necessary, so it cannot be switched off.';
    }
  }

  /** A purpose that is only sharing: with whom, and that opting out of all of them ends it. */
  disclosureWords(purposeId: string): string {
    const recipients = this.policy.recipientsServing(purposeId);
    const names = joinWords(recipients.map((recipient) => `“${recipient.name}”`));
    const words = `this use is passing your information to ${names}, and nothing else.`;
    if (recipients.length === 0 || !recipients.every((recipient) => recipient.opt_out)) return words;
    return `${words} If you opt out of sharing with ${recipients.length === 1 ? 'them' : 'all of them'}, it stops.`;
  }

  howWeUse(): Section {
    const gpc = new Set(this.policy.gpcOptOuts());
    const blocks: Block[] = [
      paragraph('We use personal information only for the purposes below. For each one we say what allows us to use it under the law, what choice you have and which information it uses.'),
    ];
    for (const purpose of this.doc.purposes) {
      blocks.push(heading(purpose.name), ...paragraphsOf(purpose.description));
      const items: Inline[][] = [
        [strong('Legal basis: '), text(`${upperFirst(LEGAL_BASIS_WORDS[purpose.legal_basis])}.`)],
        [strong('Your choice: '), text(this.choiceWords(purpose))],
        [strong('Information used: '), text(`${this.categories(purpose.categories)}.`)],
      ];
      if (purpose.subjects) items.push([strong('Applies to: '), text(`${upperFirst(this.subjects(purpose.subjects))}.`)]);
      if (purpose.profiling) {
        items.push([strong('Profiling: '), text('this use analyses information about you, such as your activity, to infer your interests or preferences.')]);
      }
      if (purpose.automated_decisions) {
        items.push([strong('Automated decisions: '), text('this use makes decisions with legal or similarly significant effects on you automatically, without a person involved.')]);
      }
      if (purpose.disclosure) items.push([strong('Sharing only: '), text(this.disclosureWords(purpose.id))]);
      if (gpc.has(purpose.id)) items.push([text('A Global Privacy Control signal from your browser opts you out of this use automatically.')]);
      blocks.push(list(items));
    }
    return { id: 'how-we-use', title: 'How we use your information', blocks };
  }

  recipientItem(recipient: Recipient): Inline[] {
    const parts: Inline[] = [strong(recipient.name)];
    const add = (value: string) => parts.push(text(` ${value}`));
    parts.push(text(recipient.description ? `: ${sentence(recipient.description)}` : '.'));
    add(`They receive ${this.categoriesInline(recipient.categories)}, for ${this.purposeNames(recipient.purposes)}.`);
    if (recipient.condition) add(`When: ${sentence(recipient.condition)}`);
    if (recipient.regions) add(`Where: ${regionList(recipient.regions)}.`);
    if (recipient.safeguards) add(`Safeguards: ${sentence(recipient.safeguards)}`);
    if (recipient.opt_out) {
      // Opting out of a recipient is a choice of its own: it stops what goes to them, and
      // leaves the purposes they serve — our own use of the data — as they are.
      parts.push(text(' You can opt out of sharing with them at any time, '), ...this.optOutChannels(), text('. Opting out stops only what goes to them: it does not change how we use your information ourselves.'));
    }
    if (recipient.privacy_policy_url) {
      parts.push(text(' See the '), link(`privacy policy of ${recipient.name}`, recipient.privacy_policy_url), text('.'));
    }
    return parts;
  }

  /**
   * Where a person opts out of sharing: the channels of the right to object (the privacy
   * center's preferences, an address…), or of the right to withdraw consent, or the contact
   * section when the policy declares neither.
   */
  optOutChannels(): Inline[] {
    const right = this.doc.rights.requests.find((request) => request.type === 'objection') ?? this.doc.rights.requests.find((request) => request.type === 'withdraw_consent');
    if (right) return this.channels(right.channels);
    return [text('by contacting us (see '), link('Contact us', '#contact'), text(')')];
  }

  whoReceives(): Section {
    const recipients = this.doc.recipients ?? [];
    const blocks: Block[] = [];
    if (recipients.length === 0) {
      blocks.push(paragraph('We do not share personal information with third parties.'));
    } else {
      blocks.push(paragraph('We share personal information only with the recipients below, only the information listed, and only for the purposes named.'));
      const groups: Array<[Recipient['role'], string, string]> = [
        ['processor', 'Service providers', 'They process personal information on our behalf and only on our instructions.'],
        ['affiliate', 'Companies in our group', 'Companies that belong to the same group as us.'],
        ['controller', 'Other companies', 'They decide themselves how to use the information they receive, under their own privacy policies.'],
        ['authority', 'Authorities', 'Public authorities such as the police, courts and regulators.'],
        ['acquirer', 'In a sale or merger of our business', 'If all or part of our business is sold or merged, personal information may pass to the new owner.'],
        ['public', 'Made public by you', 'Information you choose to publish can be seen by anyone.'],
      ];
      for (const [role, title, intro] of groups) {
        const members = recipients.filter((recipient) => recipient.role === role);
        if (members.length === 0) continue;
        blocks.push(heading(title), paragraph(intro), list(members.map((recipient) => this.recipientItem(recipient))));
      }
    }
    blocks.push(heading('Sale of personal information'));
    blocks.push(
      paragraph(
        this.doc.sharing.sells_personal_data
          ? 'We sell personal information to the recipients described above.'
          : 'We do not sell your personal information.',
      ),
    );
    const aggregate = this.doc.sharing.aggregate_statistics;
    if (aggregate) {
      if (aggregate.shared) {
        const parts = [
          aggregate.description
            ? `We share aggregate statistics that do not identify anyone: ${sentence(lowerFirst(aggregate.description))}`
            : 'We share aggregate statistics that do not identify anyone.',
        ];
        if (aggregate.minimum_group_size) parts.push(`Every figure we release describes at least ${aggregate.minimum_group_size} people, so no one can be singled out.`);
        blocks.push(paragraph(parts.join(' ')));
      } else {
        blocks.push(paragraph('We do not share statistics derived from personal information.'));
      }
    }
    return { id: 'who-receives', title: 'Who receives your information', blocks };
  }

  cookies(): Section {
    const cookies = this.doc.cookies ?? [];
    if (cookies.length === 0) return { id: 'cookies', title: 'Cookies', blocks: [paragraph('We do not use cookies.')] };
    const blocks: Block[] = [paragraph('We use the cookies below. A cookie is a small file a website stores in your browser.')];
    blocks.push({
      type: 'table',
      caption: 'Cookies we use',
      head: ['Name', 'Provider', 'Purpose', 'Lifetime', 'Description'],
      rowHeaders: true,
      rows: cookies.map((cookie) => [
        [code(cookie.name)],
        [text(this.providerName(cookie.provider))],
        [text(this.purposeName(cookie.purpose))],
        [text(cookie.lifetime === 'session' ? 'Until you close the browser' : this.duration(cookie.lifetime))],
        [text(cookie.description)],
      ]),
    });
    const byChoice = { none: [] as string[], opt_out: [] as string[], opt_in: [] as string[] };
    for (const cookie of cookies) {
      const purpose = this.policy.purposes.get(cookie.purpose);
      if (!purpose) continue;
      const bucket = byChoice[effectiveChoice(purpose)];
      if (!bucket.includes(purpose.id)) bucket.push(purpose.id);
    }
    const choices: Inline[][] = [];
    if (byChoice.none.length > 0) choices.push([strong('Necessary cookies'), text(` (for ${this.purposeNames(byChoice.none)}) are always set, because our services do not work without them.`)]);
    if (byChoice.opt_in.length > 0) choices.push([strong('Cookies that need your consent'), text(` (for ${this.purposeNames(byChoice.opt_in)}) are set only after you agree.`)]);
    if (byChoice.opt_out.length > 0) choices.push([strong('Cookies you can refuse'), text(` (for ${this.purposeNames(byChoice.opt_out)}) are set unless you opt out.`)]);
    blocks.push(paragraph('How your choices apply:'), list(choices));
    const gpc = this.policy.gpcOptOuts();
    const gpcCookiePurposes = [...byChoice.opt_in, ...byChoice.opt_out].filter((id) => gpc.includes(id));
    const closing = ['You can change your choices at any time, and you can delete cookies in your browser settings.'];
    if (gpcCookiePurposes.length > 0) closing.push(`A Global Privacy Control signal from your browser turns off the cookies for ${this.purposeNames(gpcCookiePurposes)}.`);
    blocks.push(paragraph(closing.join(' ')));
    return { id: 'cookies', title: 'Cookies', blocks };
  }

  retention(): Section {
    const rules = this.doc.retention;
    const withNotes = rules.some((rule) => rule.description);
    const head = ['Information', 'How long we keep it', 'What happens then'];
    if (withNotes) head.push('Details');
    const what = (rule: RetentionRule): string => {
      const parts: string[] = [];
      if (rule.categories) parts.push(this.categories(rule.categories));
      if (rule.purposes) parts.push(`${parts.length > 0 ? 'information' : 'Information'} used for ${this.purposeNames(rule.purposes)}`);
      let result = joinWords(parts);
      if (rule.subjects) result += ` (${this.subjects(rule.subjects)} only)`;
      return result;
    };
    const howLong = (duration: string, trigger: RetentionRule['trigger']): string => {
      const words = this.duration(duration);
      return `${upperFirst(words)} ${RETENTION_TRIGGER_WORDS[trigger]}`;
    };
    const blocks: Block[] = [
      paragraph('We keep personal information only as long as we need it. When the time below has passed, it is deleted, or anonymised so that it no longer identifies you.'),
      {
        type: 'table',
        caption: 'How long we keep each kind of information',
        head,
        rows: rules.map((rule) => {
          const row: Inline[][] = [
            [text(what(rule))],
            [text(howLong(rule.duration, rule.trigger))],
            [text(rule.action === 'delete' ? 'Deleted' : 'Anonymised: kept only without anything that identifies you')],
          ];
          if (withNotes) row.push([text(rule.description ?? '')]);
          return row;
        }),
      },
    ];
    const exceptions: Inline[][] = [];
    for (const rule of rules) {
      for (const exception of rule.exceptions ?? []) {
        exceptions.push([
          strong(this.categories(exception.categories)),
          text(
            `: kept for ${this.duration(exception.duration)} ${RETENTION_TRIGGER_WORDS[rule.trigger]}, ${EXCEPTION_REASON_WORDS[exception.reason] ?? exception.reason}: ${sentence(lowerFirst(exception.description))} During that time this information is kept apart and used for nothing else.`,
          ),
        ]);
      }
    }
    if (exceptions.length > 0) blocks.push(paragraph('Some information is kept longer:'), list(exceptions));
    if (this.doc.rights.requests.some((right) => right.type === 'erasure')) {
      blocks.push(paragraph(text('You can also ask us to delete your information sooner; see '), link('Your rights', '#your-rights'), text('.')));
    }
    return { id: 'retention', title: 'How long we keep your information', blocks };
  }

  verificationWords(method: NonNullable<Right['verification']>): string {
    switch (method) {
      case 'email_code':
        return 'To protect your information, we first confirm it is you by sending a code to your email address.';
      case 'signed_in':
        return 'To protect your information, you make this request while signed in to your account.';
      case 'none':
        return 'You do not need to prove who you are for this request.';
    }
  }

  yourRights(): Section {
    const rights = this.doc.rights;
    const blocks: Block[] = [
      paragraph('You have the rights below over your personal information. We answer within the time shown, counted from the day we receive your request.'),
    ];
    const deadlines = [...rights.requests.flatMap((right) => [right.deadline, right.extension?.deadline]), rights.complaints?.deadline];
    const usesBusinessDays = deadlines.some((deadline) => deadline !== undefined && parseDeadline(deadline)?.kind === 'business');
    if (usesBusinessDays || rights.calendar) {
      const calendar = rights.calendar ?? {};
      const days = calendar.business_days ?? ['mon', 'tue', 'wed', 'thu', 'fri'];
      const dayWords = days.join(',') === 'mon,tue,wed,thu,fri' ? 'Monday to Friday' : joinWords(days.map((day) => WEEKDAY_NAMES[day] ?? day));
      const excluded: string[] = [];
      if (calendar.holidays === 'us_federal') excluded.push('US federal public holidays');
      if (calendar.extra_holidays && calendar.extra_holidays.length > 0) excluded.push(joinWords(calendar.extra_holidays.map((date) => formatDate(date, this.lang))));
      const parts = [`Business days are ${dayWords}${excluded.length > 0 ? `, except ${joinWords(excluded)}` : ''}.`];
      if (calendar.timezone) parts.push(`Deadlines are counted in the ${calendar.timezone} time zone.`);
      blocks.push(paragraph(parts.join(' ')));
    }
    for (const right of rights.requests) {
      const words = RIGHT_WORDS[right.type];
      blocks.push(heading(words.title), ...paragraphsOf(right.description ?? words.description));
      const items: Inline[][] = [];
      items.push([strong('How to ask: '), ...capitalizeFirst(this.channels(right.channels)), text('.')]);
      if (right.self_service) items.push([text('You can do this yourself at any time, and it takes effect straight away.')]);
      if (right.verification) items.push([text(this.verificationWords(right.verification))]);
      items.push([text(`We respond within ${this.deadline(right.deadline)}.`)]);
      if (right.extension) {
        const reason = right.extension.reason_required ?? true;
        items.push([text(`If a request is complex or we receive many, we may take a further ${this.deadline(right.extension.deadline)}${reason ? ', and we tell you why' : ''}.`)]);
      }
      if (right.regions) items.push([text(`This right is available to people in ${regionList(right.regions)}.`)]);
      blocks.push(list(items));
    }
    const complaints = rights.complaints;
    if (complaints) {
      blocks.push(heading('Complaints'));
      if (complaints.description) blocks.push(...paragraphsOf(complaints.description));
      const items: Inline[][] = [[strong('How to complain: '), ...capitalizeFirst(this.channels(complaints.channels)), text('.')]];
      if (complaints.deadline) items.push([text(`We respond within ${this.deadline(complaints.deadline)}.`)]);
      blocks.push(list(items));
      if (complaints.authority) blocks.push(paragraph(`You also have the right to complain to ${sentence(lowerFirst(complaints.authority))}`));
    }
    return { id: 'your-rights', title: 'Your rights', blocks };
  }

  communications(): Section {
    const topics = this.doc.communications ?? [];
    const service = topics.filter((topic) => topic.kind !== 'marketing');
    const marketing = topics.filter((topic) => topic.kind === 'marketing');
    const item = (topic: (typeof topics)[number]): Inline[] => {
      const how = joinWords(topic.channels.map((channel) => MESSAGE_CHANNEL_WORDS[channel] ?? channel), 'or');
      const parts: Inline[] = [strong(topic.name), text(` (by ${how})`)];
      parts.push(text(topic.description ? `: ${sentence(topic.description)}` : '.'));
      if (topic.subjects) parts.push(text(` Sent to ${this.subjects(topic.subjects)}.`));
      if (topic.kind === 'marketing') {
        const purpose = this.policy.purposes.get(topic.purpose);
        if (purpose) parts.push(text(effectiveChoice(purpose) === 'opt_in' ? ' Sent only with your consent.' : ' Sent unless you opt out.'));
      }
      return parts;
    };
    const blocks: Block[] = [];
    if (service.length > 0) {
      blocks.push(
        heading('Service messages'),
        paragraph('We send these because they are part of the service you use, such as confirmations and security alerts.'),
        list(service.map(item)),
      );
    }
    if (marketing.length > 0) {
      blocks.push(heading('Marketing messages'), list(marketing.map(item)));
      const rules = ['Every marketing message has an unsubscribe link.'];
      rules.push(
        service.length > 0
          ? `Opting out of marketing does not stop service messages such as ${joinWords(service.map((topic) => `“${topic.name}”`))}.`
          : 'Opting out of marketing does not stop service messages about your account or orders.',
      );
      blocks.push(paragraph(rules.join(' ')));
    } else {
      blocks.push(paragraph('We do not send marketing messages.'));
    }
    return { id: 'communications', title: 'Messages we send you', blocks };
  }

  privacySignals(): Section {
    const signals = this.doc.signals;
    const blocks: Block[] = [];
    const gpc = signals?.gpc;
    if (gpc?.honoured) {
      const optsOut = gpc.opts_out_of ?? [];
      blocks.push(
        paragraph(
          `We honour Global Privacy Control (GPC). When your browser sends a GPC signal, we treat it as your request to opt out of ${this.purposeNames(optsOut)}, and record it as your choice.`,
        ),
      );
    } else {
      blocks.push(paragraph('We do not respond to Global Privacy Control signals.'));
    }
    const dnt = signals?.dnt;
    if (dnt?.honoured) {
      const optsOut = dnt.opts_out_of ?? [];
      blocks.push(
        paragraph(
          optsOut.length > 0
            ? `We honour Do Not Track (DNT). When your browser sends a DNT signal, we treat it as your request to opt out of ${this.purposeNames(optsOut)}.`
            : 'We honour Do Not Track (DNT) signals.',
        ),
      );
    } else {
      blocks.push(paragraph(`We do not respond to Do Not Track signals${gpc?.honoured ? '; use Global Privacy Control instead' : ''}.`));
    }
    return { id: 'privacy-signals', title: 'Privacy signals from your browser', blocks };
  }

  children(): Section {
    const children = this.doc.children;
    const blocks: Block[] = [];
    if (!children) {
      blocks.push(paragraph('This policy sets no minimum age for using our services.'));
    } else {
      if (children.description) blocks.push(...paragraphsOf(children.description));
      else if (children.directed_to_children) blocks.push(paragraph('Our services are directed to children.'));
      else blocks.push(paragraph('Our services are not directed to children.'));
      if (children.minimum_age > 0) {
        blocks.push(paragraph(`You must be at least ${children.minimum_age} years old to give us personal information; we refuse information from anyone younger.`));
        const privacy = this.doc.organization.contacts.find((contact) => contact.role === 'privacy' && contact.email);
        blocks.push(
          paragraph(
            ...(privacy?.email
              ? [text(`If you believe a child under ${children.minimum_age} has given us personal information, contact us at `), link(privacy.email, `mailto:${privacy.email}`), text(' and we will delete it.')]
              : [text(`If you believe a child under ${children.minimum_age} has given us personal information, `), link('contact us', '#contact'), text(' and we will delete it.')]),
          ),
        );
      } else {
        blocks.push(paragraph('We set no minimum age.'));
      }
    }
    return { id: 'children', title: 'Children', blocks };
  }

  transfers(): Section {
    const storage = this.doc.storage;
    const blocks: Block[] = [];
    if (storage.description) blocks.push(...paragraphsOf(storage.description));
    blocks.push(paragraph(storage.regions.includes('WORLD') ? 'We store personal information in data centres around the world.' : `We store personal information in ${regionList(storage.regions)}.`));
    const elsewhere: string[] = [];
    for (const recipient of this.doc.recipients ?? []) {
      for (const region of recipient.regions ?? []) if (!storage.regions.includes(region) && !elsewhere.includes(region)) elsewhere.push(region);
    }
    if (elsewhere.length > 0) {
      blocks.push(paragraph(text(`Some recipients also process it in ${regionList(elsewhere)}; see `), link('Who receives your information', '#who-receives'), text('.')));
    }
    const transfers = storage.transfers ?? [];
    if (transfers.length > 0) {
      blocks.push(
        paragraph('We transfer personal information between countries as follows:'),
        list(
          transfers.map((transfer) => {
            const route = transfer.from ? `From ${regionName(transfer.from)} to ${regionName(transfer.to)}` : `To ${regionName(transfer.to)}`;
            const parts = [`${route}, ${TRANSFER_MECHANISM_WORDS[transfer.mechanism] ?? transfer.mechanism}.`];
            if (transfer.description) parts.push(sentence(transfer.description));
            return [text(parts.join(' '))];
          }),
        ),
      );
    } else if (elsewhere.length === 0 && !storage.regions.includes('WORLD') && storage.regions.length === 1) {
      blocks.push(paragraph(`We do not transfer personal information out of ${regionName(storage.regions[0]!)}.`));
    }
    return { id: 'transfers', title: 'Where we store and transfer your information', blocks };
  }

  security(): Section {
    const security = this.doc.security;
    if (!security) {
      return { id: 'security', title: 'How we protect your information', blocks: [paragraph('This policy does not list specific security measures. Ask us if you want to know how we protect your information.')] };
    }
    const blocks: Block[] = [paragraph('We protect personal information with the following measures.')];
    const groups: Array<['technical' | 'organizational' | 'physical', string]> = [
      ['technical', 'Technical measures'],
      ['organizational', 'Organisational measures'],
      ['physical', 'Physical measures'],
    ];
    for (const [kind, title] of groups) {
      const measures = security.measures.filter((measure) => measure.kind === kind);
      if (measures.length > 0) blocks.push(heading(title), list(measures.map((measure) => [text(measure.description)])));
    }
    if (security.disclaimer) blocks.push(...paragraphsOf(security.disclaimer));
    return { id: 'security', title: 'How we protect your information', blocks };
  }

  changes(): Section {
    const changes = this.doc.changes;
    const blocks: Block[] = [];
    if (changes.description) blocks.push(...paragraphsOf(changes.description));
    const items: Inline[][] = changes.notify.map((notice) => {
      const materialOnly = notice.material_only ?? notice.channel !== 'website';
      const who = notice.audience === 'registered' ? 'people with an account' : 'everyone we can reach';
      let action: string;
      if (notice.channel === 'website') action = 'post the new version on our website';
      else if (notice.channel === 'email') action = `email ${who}`;
      else action = `show a notice in our services to ${who}`;
      return [text(`We ${action}${materialOnly ? ' for significant changes' : ' for every change'}.`)];
    });
    blocks.push(paragraph('When we change this policy, we tell you:'), list(items));
    const closing: string[] = [];
    if (changes.advance_notice) closing.push(`We tell you about significant changes at least ${this.duration(changes.advance_notice)} before they take effect.`);
    closing.push(
      changes.acceptance === 'explicit'
        ? 'We ask you to accept a new version, and it applies to you only once you have accepted it.'
        : 'If you keep using our services after a new version takes effect, it applies to you.',
    );
    closing.push('The version number and date at the top of this policy show which version you are reading.');
    blocks.push(paragraph(closing.join(' ')));
    return { id: 'changes', title: 'Changes to this policy', blocks };
  }

  notices(): Section[] {
    return (this.doc.notices ?? []).map((notice) => ({ id: `notice-${notice.id}`, title: notice.title, blocks: paragraphsOf(notice.text) }));
  }

  contact(): Section {
    const org = this.doc.organization;
    const blocks: Block[] = [paragraph('If you have a question about this policy or your personal information, or want to use your rights, contact us:')];
    blocks.push({
      type: 'definitions',
      items: org.contacts.map((contact) => ({ term: CONTACT_ROLE_WORDS[contact.role], details: this.contactDetails(contact) })),
    });
    if (org.address) blocks.push(paragraph(`Our postal address is ${this.we}, ${oneLine(org.address)}.`));
    return { id: 'contact', title: 'Contact us', blocks };
  }
}

// --- inline helpers ----------------------------------------------------------------------------

function joinInlines(parts: Inline[][], separator: string, lastSeparator = separator): Inline[] {
  const result: Inline[] = [];
  parts.forEach((part, index) => {
    if (index > 0) result.push(text(index === parts.length - 1 ? lastSeparator : separator));
    result.push(...part);
  });
  return result;
}

function capitalizeFirst(parts: Inline[]): Inline[] {
  const first = parts[0];
  if (!first || first.type !== 'text') return parts;
  return [text(upperFirst(first.text)), ...parts.slice(1)];
}

function trimFinalStop(value: string): string {
  const trimmed = value.trim();
  return trimmed.endsWith('.') && !trimmed.endsWith('..') ? trimmed.slice(0, -1) : trimmed;
}

function looksLikeEmail(value: string): boolean {
  const at = value.indexOf('@');
  return at > 0 && at < value.length - 1 && !/[\s:<>()"'\\,;]/.test(value);
}

function urlOrText(value: string): Inline {
  return value.startsWith('https://') || value.startsWith('http://') ? link(value, value) : text(value);
}

/** tel: wants digits and a leading +; the schema allows spaces, dots, dashes and brackets. */
function telHref(phone: string): string {
  let digits = '';
  for (const char of phone) if ((char >= '0' && char <= '9') || (char === '+' && digits.length === 0)) digits += char;
  return `tel:${digits}`;
}

/** The published policy, composed from a validated Policy. */
export function composePolicyDocument(policy: Policy): RenderedDocument {
  const composer = new Composer(policy);
  const lang = composer.lang;
  return {
    title: policy.title,
    lang,
    version: policy.version,
    effectiveDate: policy.effectiveDate,
    metaLine: `Version ${policy.version} · Effective ${formatDate(policy.effectiveDate, lang)}`,
    labels: { contents: 'Contents', skipLink: 'Skip to the policy' },
    sections: [
      composer.introduction(),
      composer.whoWeAre(),
      composer.whatWeCollect(),
      composer.howWeUse(),
      composer.whoReceives(),
      composer.cookies(),
      composer.retention(),
      composer.yourRights(),
      composer.communications(),
      composer.privacySignals(),
      composer.children(),
      composer.transfers(),
      composer.security(),
      composer.changes(),
      ...composer.notices(),
      composer.contact(),
    ],
  };
}
