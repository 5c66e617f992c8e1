import { approximateDays, describeDuration, parseDeadline, parseDuration, type Duration } from './duration.js';
import { canonicalJson, effectiveChoice, type Policy } from './policy.model.js';
import type { Channel, Choice, PolicyDocument, Purpose, RetentionRule, Right } from './policy.schema.js';
import { covers } from './taxonomy.js';

/**
 * The semantic difference between two policies: what `pledge policy diff OLD NEW` prints, and
 * what decides whether a new version needs a notice to people before it takes effect.
 *
 * Elements are compared by identity — ids, cookies by provider and name, rights by type,
 * contacts by role, transfers by route — never by position, so reordering a list, rewriting
 * `P30D` as `30 days` or `30 calendar days` as `30 days` is no change. Category references are
 * compared by coverage: replacing `user.contact.email` with `user.contact` widens (the parent
 * covers phone and address too); the reverse narrows.
 *
 * What is material. A change is material when it widens what is done with people's data or
 * weakens their rights; narrowing changes and wording are not. Each material change carries
 * its `reason`. In detail:
 *
 *  - purposes: a new purpose; a purpose gains categories, subjects, profiling or automated
 *    decisions; its legal basis changes (whatever the direction: the rights a person has, such
 *    as objecting or withdrawing consent, follow the basis); its choice moves toward less
 *    control (opt_in → opt_out → none); it loses `disclosure` (it is no longer only the
 *    passing of data to its recipients, so opting out of them no longer stops it).
 *  - collection: a category collected that was not; a category now received from a new source
 *    (another partner, automatic collection…) or about a new kind of person.
 *  - recipients: a new recipient; a recipient gains purposes, categories or regions; it loses
 *    its opt-out, its stated condition or its safeguards; its role changes to anything but
 *    processor (a processor acts only on our instructions, any other role uses the data on its
 *    own terms).
 *  - sharing: selling turns on; aggregate statistics start to be shared or may describe smaller
 *    groups.
 *  - retention: a rule's duration lengthens; its trigger changes (the clock starts at another
 *    moment, which can postpone deletion indefinitely, e.g. collected → last_activity); its
 *    action goes delete → anonymize (anonymised records, and what is derived from them, are
 *    kept, and anonymisation can be imperfect; anonymize → delete is a narrowing); an exception
 *    is added, lengthened, gains categories or changes its legal reason. Rules added, removed or
 *    re-scoped are material only when some still-collected category may then be kept longer:
 *    because it is not yet settled whether the shortest or the longest overlapping rule wins,
 *    both the shortest and the longest applicable duration are checked, and either growing is
 *    material.
 *  - rights: a right removed or limited to fewer regions; its deadline or extension lengthened
 *    (business days count as 7/5 calendar days for the comparison); verification made stricter
 *    (none < email_code < signed_in); self-service withdrawn; a kind of channel removed (a
 *    changed address within a kind is a contact change, not material); a calendar change that
 *    lengthens business-day deadlines; the complaints channel or its deadline weakened.
 *  - communications: marketing added (or a topic turned into marketing), a marketing topic
 *    gains channels or recipients, any topic moved to another purpose (consent given for one
 *    purpose does not cover another).
 *  - cookies: a non-necessary cookie (its purpose has a choice) added or living longer; any
 *    cookie moved to another purpose or holding more categories.
 *  - signals: a signal no longer honoured; a purpose removed from what it opts out of.
 *  - children: the minimum age lowered (or the statement removed); the service becoming
 *    directed to children.
 *  - storage: a new storage region; a new transfer or a transfer under another mechanism.
 *  - security: a measure removed, or no longer enforced by the engine itself.
 *  - changes (the change policy): a notification channel removed or limited to material
 *    changes; advance notice shortened or dropped; acceptance explicit → continued use.
 *  - organization: the controller changes (name, legal name, jurisdiction).
 *  - categories: a custom category no longer marked sensitive.
 *
 * Never material by themselves: the policy version, effective date and texts, descriptions,
 * names and wording, contacts and addresses, notices, subject kinds and partner declarations
 * (their use is compared through collection), and every narrowing (a purpose or recipient
 * removed, retention shortened, a right added…).
 *
 * Not compared: `datasets` (reserved; connected datastores are not promises to people) and
 * `collection[].required_for`.
 */

export type PolicyElement =
  | 'organization'
  | 'purpose'
  | 'category'
  | 'collection'
  | 'recipient'
  | 'sharing'
  | 'retention'
  | 'right'
  | 'communication'
  | 'cookie'
  | 'signal'
  | 'children'
  | 'storage'
  | 'security'
  | 'changes'
  | 'notice'
  | 'policy';

export type ChangeKind = 'added' | 'removed' | 'changed';

export interface PolicyChange {
  element: PolicyElement;
  /** The element's id: a purpose id, a cookie name, a right type, "gpc"… */
  id: string;
  change: ChangeKind;
  /** Where in the policy, e.g. purposes.marketing.categories. */
  path: string;
  /** One human sentence, e.g. 'Purpose "marketing" may now use "user.contact.phone_number"'. */
  summary: string;
  material: boolean;
  /** Why the change is material (present only when it is). */
  reason?: string;
  before?: unknown;
  after?: unknown;
}

// --- helpers ---------------------------------------------------------------------------------

/** A material change's reason, or false. */
type Materiality = string | false;

const CHOICE_CONTROL: Record<Choice, number> = { none: 0, opt_out: 1, opt_in: 2 };
const VERIFICATION_STRICTNESS: Record<string, number> = { none: 0, email_code: 1, signed_in: 2 };

function plain(value: unknown): unknown {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}

function same(a: unknown, b: unknown): boolean {
  return canonicalJson(a) === canonicalJson(b);
}

function byKey<T>(list: readonly T[] | undefined, key: (item: T) => string): Map<string, T> {
  return new Map((list ?? []).map((item) => [key(item), item]));
}

function sortedUnion(...lists: Iterable<string>[]): string[] {
  const all = new Set<string>();
  for (const list of lists) for (const item of list) all.add(item);
  return [...all].sort();
}

function setDiff(before: readonly string[] | undefined, after: readonly string[] | undefined): { added: string[]; removed: string[] } {
  const b = new Set(before ?? []);
  const a = new Set(after ?? []);
  return { added: [...a].filter((x) => !b.has(x)).sort(), removed: [...b].filter((x) => !a.has(x)).sort() };
}

/**
 * Category references compared by coverage. `added`: references the old list did not cover;
 * `removed`: old references the new list does not cover, with the parts still kept.
 */
function categoryDiff(before: readonly string[], after: readonly string[]): { added: string[]; removed: Array<{ category: string; kept: string[] }> } {
  const added = [...new Set(after)].filter((category) => !before.some((reference) => covers(reference, category))).sort();
  const removed = [...new Set(before)]
    .filter((category) => !after.some((reference) => covers(reference, category)))
    .sort()
    .map((category) => ({ category, kept: after.filter((reference) => covers(category, reference)).sort() }));
  return { added, removed };
}

/**
 * A list where absence means "no limit" (subjects: everyone; regions: anywhere). `widened`:
 * items newly allowed, or 'all' when the limit is dropped; `narrowed` likewise.
 */
function scopeDiff(before: readonly string[] | undefined, after: readonly string[] | undefined): { widened: string[] | 'all'; narrowed: string[] | 'all' } {
  if (before === undefined && after === undefined) return { widened: [], narrowed: [] };
  if (before === undefined) return { widened: [], narrowed: 'all' };
  if (after === undefined) return { widened: 'all', narrowed: [] };
  const { added, removed } = setDiff(before, after);
  return { widened: added, narrowed: removed };
}

function quoteList(items: readonly string[]): string {
  return items.map((item) => `"${item}"`).join(', ');
}

/** -1, 0 or 1; "12 months" equals "1 year" and "P30D" equals "30 days". */
function compareDurations(a: Duration, b: Duration): number {
  const monthsA = a.years * 12 + a.months;
  const monthsB = b.years * 12 + b.months;
  const hoursA = (a.weeks * 7 + a.days) * 24 + a.hours;
  const hoursB = (b.weeks * 7 + b.days) * 24 + b.hours;
  if (monthsA === monthsB && hoursA === hoursB) return 0;
  return Math.sign(approximateDays(a) - approximateDays(b)) || (monthsA > monthsB ? 1 : -1);
}

function durationText(text: string): string {
  const parsed = parseDuration(text);
  return parsed ? describeDuration(parsed) : text;
}

/** A deadline in calendar days, business days counted as 7/5 of a day. */
function deadlineDays(text: string): number {
  const deadline = parseDeadline(text);
  if (!deadline) return Number.NaN;
  return deadline.kind === 'business' ? (deadline.days * 7) / 5 : deadline.days;
}

const TRIGGER_WORDS: Record<string, string> = { collected: 'collection', last_activity: 'the last activity', account_closed: 'account closure' };
const triggerText = (trigger: string) => TRIGGER_WORDS[trigger] ?? trigger;

function overlaps(a: string, b: string): boolean {
  return covers(a, b) || covers(b, a);
}

// --- the differ ------------------------------------------------------------------------------

class Differ {
  readonly changes: PolicyChange[] = [];

  constructor(
    readonly before: PolicyDocument,
    readonly after: PolicyDocument,
  ) {}

  emit(element: PolicyElement, id: string, change: ChangeKind, path: string, summary: string, material: Materiality, before?: unknown, after?: unknown): void {
    this.changes.push({
      element,
      id,
      change,
      path,
      summary,
      material: material !== false,
      ...(material !== false ? { reason: material } : {}),
      ...(before !== undefined ? { before: plain(before) } : {}),
      ...(after !== undefined ? { after: plain(after) } : {}),
    });
  }

  /** Texts (names, descriptions, conditions…): reported, never material unless told. */
  text(element: PolicyElement, id: string, path: string, label: string, before: unknown, after: unknown, removedMaterial: Materiality = false): void {
    if (same(before, after)) return;
    if (before === undefined) this.emit(element, id, 'added', path, `${label} added`, false, undefined, after);
    else if (after === undefined) this.emit(element, id, 'removed', path, `${label} removed`, removedMaterial, before, undefined);
    else this.emit(element, id, 'changed', path, `${label} changed`, false, before, after);
  }

  run(): PolicyChange[] {
    this.policyMeta();
    this.organization();
    this.subjectKinds();
    this.customCategories();
    this.sources();
    this.collection();
    this.purposes();
    this.recipients();
    this.sharing();
    this.retention();
    this.rights();
    this.communications();
    this.cookies();
    this.signals();
    this.children();
    this.storage();
    this.security();
    this.changePolicy();
    this.notices();
    return this.changes;
  }

  // --- policy and organization -----------------------------------------------------------------

  policyMeta(): void {
    const b = this.before.policy;
    const a = this.after.policy;
    if (b.version !== a.version) this.emit('policy', 'version', 'changed', 'policy.version', `Policy version changed from "${b.version}" to "${a.version}"`, false, b.version, a.version);
    if (b.effective_date !== a.effective_date) {
      this.emit('policy', 'effective_date', 'changed', 'policy.effective_date', `Effective date changed from ${b.effective_date} to ${a.effective_date}`, false, b.effective_date, a.effective_date);
    }
    for (const field of ['title', 'language', 'summary', 'scope'] as const) {
      this.text('policy', field, `policy.${field}`, `Policy ${field}`, b[field], a[field]);
    }
  }

  organization(): void {
    const b = this.before.organization;
    const a = this.after.organization;
    const controller = 'the controller — the company responsible for people\'s data — is a different one';
    if (b.name !== a.name) this.emit('organization', 'name', 'changed', 'organization.name', `Organization renamed from "${b.name}" to "${a.name}"`, controller, b.name, a.name);
    if (b.legal_name !== undefined && a.legal_name !== undefined && b.legal_name !== a.legal_name) {
      this.emit('organization', 'legal_name', 'changed', 'organization.legal_name', `Legal entity changed from "${b.legal_name}" to "${a.legal_name}"`, controller, b.legal_name, a.legal_name);
    } else {
      this.text('organization', 'legal_name', 'organization.legal_name', 'Legal name of the organization', b.legal_name, a.legal_name);
    }
    if (b.jurisdiction !== undefined && a.jurisdiction !== undefined && b.jurisdiction !== a.jurisdiction) {
      this.emit('organization', 'jurisdiction', 'changed', 'organization.jurisdiction', `Jurisdiction changed from ${b.jurisdiction} to ${a.jurisdiction}`, 'the law the controller answers to, and so the protection people have, changes', b.jurisdiction, a.jurisdiction);
    } else {
      this.text('organization', 'jurisdiction', 'organization.jurisdiction', 'Jurisdiction', b.jurisdiction, a.jurisdiction);
    }
    this.text('organization', 'website', 'organization.website', 'Website', b.website, a.website);
    this.text('organization', 'address', 'organization.address', 'Registered address', b.address, a.address);
    this.text('organization', 'description', 'organization.description', 'Organization description', b.description, a.description);
    const services = setDiff(b.services, a.services);
    for (const service of services.added) this.emit('organization', 'services', 'added', 'organization.services', `The policy now covers the service "${service}"`, false, undefined, service);
    for (const service of services.removed) this.emit('organization', 'services', 'removed', 'organization.services', `The policy no longer covers the service "${service}"`, false, service, undefined);
    const group = (contacts: typeof b.contacts) => {
      const roles = new Map<string, string[]>();
      for (const contact of contacts) roles.set(contact.role, [...(roles.get(contact.role) ?? []), canonicalJson(contact)]);
      return new Map([...roles].map(([role, list]) => [role, list.sort()]));
    };
    const before = group(b.contacts);
    const after = group(a.contacts);
    for (const role of sortedUnion(before.keys(), after.keys())) {
      const was = before.get(role);
      const now = after.get(role);
      if (same(was, now)) continue;
      const values = (list?: string[]) => list?.map((json) => JSON.parse(json) as unknown);
      const change: ChangeKind = !was ? 'added' : !now ? 'removed' : 'changed';
      const verb = change === 'added' ? 'added' : change === 'removed' ? 'removed' : 'changed';
      this.emit('organization', `contacts.${role}`, change, `organization.contacts.${role}`, `The ${role} contact ${verb}`, false, values(was), values(now));
    }
  }

  subjectKinds(): void {
    const before = byKey(this.before.subject_kinds, (kind) => kind.id);
    const after = byKey(this.after.subject_kinds, (kind) => kind.id);
    for (const id of sortedUnion(before.keys(), after.keys())) {
      const b = before.get(id);
      const a = after.get(id);
      const path = `subject_kinds.${id}`;
      if (!b) this.emit('collection', id, 'added', path, `Subject kind "${id}" (${a!.name}) declared`, false, undefined, a);
      else if (!a) this.emit('collection', id, 'removed', path, `Subject kind "${id}" (${b.name}) no longer declared`, false, b, undefined);
      else {
        this.text('collection', id, `${path}.name`, `Name of subject kind "${id}"`, b.name, a.name);
        this.text('collection', id, `${path}.description`, `Description of subject kind "${id}"`, b.description, a.description);
      }
    }
  }

  customCategories(): void {
    const before = byKey(this.before.categories, (category) => category.id);
    const after = byKey(this.after.categories, (category) => category.id);
    for (const id of sortedUnion(before.keys(), after.keys())) {
      const b = before.get(id);
      const a = after.get(id);
      const path = `categories.${id}`;
      if (!b) this.emit('category', id, 'added', path, `Custom category "${id}" (${a!.name}) declared`, false, undefined, a);
      else if (!a) this.emit('category', id, 'removed', path, `Custom category "${id}" no longer declared`, false, b, undefined);
      else {
        this.text('category', id, `${path}.name`, `Name of category "${id}"`, b.name, a.name);
        this.text('category', id, `${path}.description`, `Description of category "${id}"`, b.description, a.description);
        if (Boolean(b.sensitive) !== Boolean(a.sensitive)) {
          this.emit(
            'category', id, 'changed', `${path}.sensitive`,
            a.sensitive ? `Category "${id}" is now marked sensitive` : `Category "${id}" is no longer marked sensitive`,
            a.sensitive ? false : 'data the policy treated as sensitive loses the protection sensitive data gets',
            Boolean(b.sensitive), Boolean(a.sensitive),
          );
        }
      }
    }
  }

  sources(): void {
    const before = byKey(this.before.sources, (source) => source.id);
    const after = byKey(this.after.sources, (source) => source.id);
    for (const id of sortedUnion(before.keys(), after.keys())) {
      const b = before.get(id);
      const a = after.get(id);
      const path = `sources.${id}`;
      // What a partner provides is compared under collection; the declaration itself is a name.
      if (!b) this.emit('collection', id, 'added', path, `Partner source "${id}" (${a!.name}) declared`, false, undefined, a);
      else if (!a) this.emit('collection', id, 'removed', path, `Partner source "${id}" no longer declared`, false, b, undefined);
      else {
        this.text('collection', id, `${path}.name`, `Name of partner source "${id}"`, b.name, a.name);
        this.text('collection', id, `${path}.description`, `Description of partner source "${id}"`, b.description, a.description);
        this.text('collection', id, `${path}.privacy_policy_url`, `Privacy policy link of partner source "${id}"`, b.privacy_policy_url, a.privacy_policy_url);
      }
    }
  }

  // --- collection ----------------------------------------------------------------------------

  /**
   * Collection is compared as what it promises — which categories, from which source, about
   * whom — not entry by entry, so splitting or renaming entries is no change.
   */
  collection(): void {
    const sourceOf = (entry: PolicyDocument['collection'][number]) => (entry.source === 'partner' ? `partner:${entry.partner ?? ''}` : entry.source);
    const describeSource = (source: string) => {
      if (source.startsWith('partner:')) return `partner "${source.slice('partner:'.length)}"`;
      return { person: 'the person', automatic: 'automatic collection', other_person: 'other people', staff: 'staff' }[source] ?? source;
    };
    const all = (document: PolicyDocument) => [...new Set(document.collection.flatMap((entry) => entry.categories))];
    const beforeAll = all(this.before);
    const afterAll = all(this.after);
    const { added, removed } = categoryDiff(beforeAll, afterAll);
    const changes: PolicyChange[] = [];
    const push = (id: string, change: ChangeKind, path: string, summary: string, material: Materiality, before?: unknown, after?: unknown) =>
      changes.push({ element: 'collection', id, change, path, summary, material: material !== false, ...(material !== false ? { reason: material } : {}), ...(before !== undefined ? { before: plain(before) } : {}), ...(after !== undefined ? { after: plain(after) } : {}) });

    for (const category of added) {
      const entries = this.after.collection.filter((entry) => entry.categories.includes(category));
      const from = sortedUnion(entries.map(sourceOf)).map(describeSource).join(', ');
      const about = sortedUnion(...entries.map((entry) => entry.subjects));
      push(category, 'added', `collection.${category}`, `"${category}" is now collected (from ${from}, about ${quoteList(about)})`, 'data is collected that was not collected before', undefined, { sources: sortedUnion(entries.map(sourceOf)), subjects: about });
    }
    for (const { category, kept } of removed) {
      push(
        category, 'removed', `collection.${category}`,
        kept.length ? `"${category}" is now collected only in part (${quoteList(kept)})` : `"${category}" is no longer collected`,
        false, category, kept.length ? kept : undefined,
      );
    }

    // Sources and subjects of categories collected both before and after.
    const isNew = (category: string) => added.includes(category);
    const seen = new Set<string>();
    const widen = (from: PolicyDocument, to: PolicyDocument, direction: 'gained' | 'lost') => {
      for (const entry of to.collection) {
        const source = sourceOf(entry);
        for (const category of entry.categories) {
          if (direction === 'gained' && isNew(category)) continue;
          if (direction === 'lost' && !afterAll.some((reference) => covers(reference, category))) continue;
          const matching = from.collection.filter((other) => other.categories.some((reference) => covers(reference, category)));
          if (!matching.some((other) => sourceOf(other) === source) && !seen.has(`${direction}|source|${category}|${source}`)) {
            seen.add(`${direction}|source|${category}|${source}`);
            if (direction === 'gained') {
              push(category, 'changed', `collection.${category}.sources`, `"${category}" is now also obtained from ${describeSource(source)}`, 'data now comes from a source it did not come from before', undefined, source);
            } else {
              push(category, 'changed', `collection.${category}.sources`, `"${category}" is no longer obtained from ${describeSource(source)}`, false, source, undefined);
            }
          }
          for (const subject of entry.subjects) {
            if (matching.some((other) => other.subjects.includes(subject)) || seen.has(`${direction}|subject|${category}|${subject}`)) continue;
            seen.add(`${direction}|subject|${category}|${subject}`);
            if (direction === 'gained') {
              push(category, 'changed', `collection.${category}.subjects`, `"${category}" is now also collected about "${subject}"`, 'data is collected about people it was not collected about before', undefined, subject);
            } else {
              push(category, 'changed', `collection.${category}.subjects`, `"${category}" is no longer collected about "${subject}"`, false, subject, undefined);
            }
          }
        }
      }
    };
    widen(this.before, this.after, 'gained');
    widen(this.after, this.before, 'lost');
    const kindOrder: Record<ChangeKind, number> = { added: 0, removed: 1, changed: 2 };
    changes.sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0) || kindOrder[x.change] - kindOrder[y.change] || (x.path < y.path ? -1 : x.path > y.path ? 1 : 0) || (x.summary < y.summary ? -1 : x.summary > y.summary ? 1 : 0));
    this.changes.push(...changes);
  }

  // --- purposes --------------------------------------------------------------------------------

  purposes(): void {
    const before = byKey(this.before.purposes, (purpose) => purpose.id);
    const after = byKey(this.after.purposes, (purpose) => purpose.id);
    for (const id of sortedUnion(before.keys(), after.keys())) {
      const b = before.get(id);
      const a = after.get(id);
      const path = `purposes.${id}`;
      if (!b) {
        this.emit('purpose', id, 'added', path, `New purpose "${id}" (${a!.name}, ${a!.legal_basis}, ${effectiveChoice(a!)}) using ${quoteList(a!.categories)}`, 'data is used for a purpose it was not used for before', undefined, a);
        continue;
      }
      if (!a) {
        this.emit('purpose', id, 'removed', path, `Purpose "${id}" (${b.name}) removed`, false, b, undefined);
        continue;
      }
      this.purpose(id, path, b, a);
    }
  }

  purpose(id: string, path: string, b: Purpose, a: Purpose): void {
    this.text('purpose', id, `${path}.name`, `Name of purpose "${id}"`, b.name, a.name);
    this.text('purpose', id, `${path}.description`, `Description of purpose "${id}"`, b.description, a.description);
    if (b.legal_basis !== a.legal_basis) {
      this.emit('purpose', id, 'changed', `${path}.legal_basis`, `Purpose "${id}" now rests on ${a.legal_basis} (was ${b.legal_basis})`, 'the legal ground for the processing changes, and with it the rights a person has over it (to object, to withdraw consent)', b.legal_basis, a.legal_basis);
    }
    const choiceBefore = effectiveChoice(b);
    const choiceAfter = effectiveChoice(a);
    if (choiceBefore !== choiceAfter) {
      const less = CHOICE_CONTROL[choiceAfter] < CHOICE_CONTROL[choiceBefore];
      this.emit('purpose', id, 'changed', `${path}.choice`, `Purpose "${id}" is now ${choiceAfter} (was ${choiceBefore})`, less ? `people get less control over this use of their data (${choiceBefore} → ${choiceAfter})` : false, choiceBefore, choiceAfter);
    }
    const categories = categoryDiff(b.categories, a.categories);
    for (const category of categories.added) {
      this.emit('purpose', id, 'added', `${path}.categories`, `Purpose "${id}" may now use "${category}"`, 'the purpose may use data it could not use before', undefined, category);
    }
    for (const { category, kept } of categories.removed) {
      this.emit('purpose', id, 'removed', `${path}.categories`, kept.length ? `Purpose "${id}" may now use only part of "${category}" (${quoteList(kept)})` : `Purpose "${id}" no longer uses "${category}"`, false, category, kept.length ? kept : undefined);
    }
    this.scope('purpose', id, `${path}.subjects`, `Purpose "${id}"`, 'applies', b.subjects, a.subjects, 'everyone', 'the purpose now applies to more people');
    for (const [flag, widened, narrowed, why] of [
      ['profiling', 'now builds profiles of people', 'no longer builds profiles', 'the purpose now builds profiles of people'],
      ['automated_decisions', 'now takes automated decisions with legal or similar effect', 'no longer takes automated decisions', 'the purpose now takes automated decisions with legal or similar effect'],
    ] as const) {
      if (Boolean(b[flag]) !== Boolean(a[flag])) {
        this.emit('purpose', id, 'changed', `${path}.${flag}`, `Purpose "${id}" ${a[flag] ? widened : narrowed}`, a[flag] ? why : false, Boolean(b[flag]), Boolean(a[flag]));
      }
    }
    // The other way round: the flag narrows what the purpose is, so losing it widens.
    if (Boolean(b.disclosure) !== Boolean(a.disclosure)) {
      this.emit(
        'purpose',
        id,
        'changed',
        `${path}.disclosure`,
        a.disclosure ? `Purpose "${id}" is now only the passing of data to its recipients` : `Purpose "${id}" is no longer only the passing of data to its recipients`,
        a.disclosure ? false : 'the purpose may now use data beyond passing it to its recipients, and opting out of them no longer stops it',
        Boolean(b.disclosure),
        Boolean(a.disclosure),
      );
    }
  }

  /** A list where absence means "everyone" or "anywhere"; widening is material. */
  scope(element: PolicyElement, id: string, path: string, subject: string, verb: string, before: readonly string[] | undefined, after: readonly string[] | undefined, allWord: string, whyWider: Materiality): void {
    const { widened, narrowed } = scopeDiff(before, after);
    if (widened === 'all') this.emit(element, id, 'changed', path, `${subject} now ${verb} to ${allWord} (was limited to ${quoteList(before ?? [])})`, whyWider, before, undefined);
    else if (widened.length) this.emit(element, id, 'added', path, `${subject} now also ${verb} to ${quoteList(widened)}`, whyWider, undefined, widened);
    if (narrowed === 'all') this.emit(element, id, 'changed', path, `${subject} now ${verb} only to ${quoteList(after ?? [])} (was ${allWord})`, false, undefined, after);
    else if (narrowed.length) this.emit(element, id, 'removed', path, `${subject} no longer ${verb} to ${quoteList(narrowed)}`, false, narrowed, undefined);
  }

  // --- recipients ----------------------------------------------------------------------------

  recipients(): void {
    const before = byKey(this.before.recipients, (recipient) => recipient.id);
    const after = byKey(this.after.recipients, (recipient) => recipient.id);
    for (const id of sortedUnion(before.keys(), after.keys())) {
      const b = before.get(id);
      const a = after.get(id);
      const path = `recipients.${id}`;
      if (!b) {
        this.emit('recipient', id, 'added', path, `New recipient "${id}" (${a!.name}, ${a!.role}) receives ${quoteList(a!.categories)} for ${quoteList(a!.purposes)}`, 'personal data goes to someone it did not go to before', undefined, a);
        continue;
      }
      if (!a) {
        this.emit('recipient', id, 'removed', path, `Recipient "${id}" (${b.name}) no longer receives personal data`, false, b, undefined);
        continue;
      }
      this.text('recipient', id, `${path}.name`, `Name of recipient "${id}"`, b.name, a.name);
      this.text('recipient', id, `${path}.description`, `Description of recipient "${id}"`, b.description, a.description);
      if (b.role !== a.role) {
        this.emit('recipient', id, 'changed', `${path}.role`, `Recipient "${id}" is now a${/^[aeiou]/.test(a.role) ? 'n' : ''} ${a.role} (was ${b.role})`, a.role === 'processor' ? false : 'the recipient no longer acts only on our instructions and may use the data on its own terms', b.role, a.role);
      }
      const purposes = setDiff(b.purposes, a.purposes);
      for (const purpose of purposes.added) this.emit('recipient', id, 'added', `${path}.purposes`, `Recipient "${id}" now receives data for "${purpose}"`, 'the recipient receives data for a purpose it did not before', undefined, purpose);
      for (const purpose of purposes.removed) this.emit('recipient', id, 'removed', `${path}.purposes`, `Recipient "${id}" no longer receives data for "${purpose}"`, false, purpose, undefined);
      const categories = categoryDiff(b.categories, a.categories);
      for (const category of categories.added) this.emit('recipient', id, 'added', `${path}.categories`, `Recipient "${id}" now receives "${category}"`, 'the recipient receives data it did not receive before', undefined, category);
      for (const { category, kept } of categories.removed) {
        this.emit('recipient', id, 'removed', `${path}.categories`, kept.length ? `Recipient "${id}" now receives only part of "${category}" (${quoteList(kept)})` : `Recipient "${id}" no longer receives "${category}"`, false, category, kept.length ? kept : undefined);
      }
      const regions = scopeDiff(b.regions, a.regions);
      if (regions.widened === 'all') this.emit('recipient', id, 'changed', `${path}.regions`, `Recipient "${id}" is no longer limited to ${quoteList(b.regions ?? [])}`, 'data may now be processed in places it was not before', b.regions, undefined);
      else for (const region of regions.widened) this.emit('recipient', id, 'added', `${path}.regions`, `Recipient "${id}" now processes data in ${region}`, 'data is processed in a place it was not processed before', undefined, region);
      if (regions.narrowed === 'all') this.emit('recipient', id, 'changed', `${path}.regions`, `Recipient "${id}" now processes data only in ${quoteList(a.regions ?? [])}`, false, undefined, a.regions);
      else for (const region of regions.narrowed) this.emit('recipient', id, 'removed', `${path}.regions`, `Recipient "${id}" no longer processes data in ${region}`, false, region, undefined);
      if (Boolean(b.opt_out) !== Boolean(a.opt_out)) {
        this.emit('recipient', id, 'changed', `${path}.opt_out`, a.opt_out ? `People can now opt out of sharing with "${id}"` : `People can no longer opt out of sharing with "${id}"`, a.opt_out ? false : 'people lose the choice to stop this sharing', Boolean(b.opt_out), Boolean(a.opt_out));
      }
      this.text('recipient', id, `${path}.condition`, `Condition of disclosure to "${id}"`, b.condition, a.condition, 'the disclosure is no longer limited to a stated condition');
      this.text('recipient', id, `${path}.safeguards`, `Safeguards binding "${id}"`, b.safeguards, a.safeguards, 'the recipient is no longer said to be bound by safeguards');
      this.text('recipient', id, `${path}.privacy_policy_url`, `Privacy policy link of "${id}"`, b.privacy_policy_url, a.privacy_policy_url);
    }
  }

  // --- sharing -------------------------------------------------------------------------------

  sharing(): void {
    const b = this.before.sharing;
    const a = this.after.sharing;
    if (b.sells_personal_data !== a.sells_personal_data) {
      this.emit('sharing', 'sells_personal_data', 'changed', 'sharing.sells_personal_data', a.sells_personal_data ? 'Personal data is now sold' : 'Personal data is no longer sold', a.sells_personal_data ? 'personal data is sold, which it was not before' : false, b.sells_personal_data, a.sells_personal_data);
    }
    const ab = b.aggregate_statistics;
    const aa = a.aggregate_statistics;
    const path = 'sharing.aggregate_statistics';
    if (Boolean(ab?.shared) !== Boolean(aa?.shared)) {
      this.emit('sharing', 'aggregate_statistics', 'changed', `${path}.shared`, aa?.shared ? 'Aggregate statistics are now shared with third parties' : 'Aggregate statistics are no longer shared', aa?.shared ? 'statistics derived from people\'s data start to be shared' : false, Boolean(ab?.shared), Boolean(aa?.shared));
    } else if (ab?.shared && aa?.shared && ab.minimum_group_size !== aa.minimum_group_size) {
      const smaller = aa.minimum_group_size === undefined || (ab.minimum_group_size !== undefined && aa.minimum_group_size < ab.minimum_group_size);
      this.emit(
        'sharing', 'aggregate_statistics', 'changed', `${path}.minimum_group_size`,
        aa.minimum_group_size === undefined ? 'Released statistics no longer have a minimum group size' : `Released statistics may describe groups of ${aa.minimum_group_size} (was ${ab.minimum_group_size ?? 'unspecified'})`,
        smaller ? 'smaller groups make it easier to single people out' : false, ab.minimum_group_size, aa.minimum_group_size,
      );
    }
    this.text('sharing', 'aggregate_statistics', `${path}.description`, 'Description of shared statistics', ab?.description, aa?.description);
  }

  // --- retention -----------------------------------------------------------------------------

  /** The categories a rule reaches: its own, and those of its purposes. */
  ruleScope(document: PolicyDocument, rule: RetentionRule): string[] {
    const purposes = byKey(document.purposes, (purpose) => purpose.id);
    return [...(rule.categories ?? []), ...(rule.purposes ?? []).flatMap((id) => purposes.get(id)?.categories ?? [])];
  }

  /** Shortest and longest time data of `category` may be kept, exceptions included. */
  retentionRange(document: PolicyDocument, category: string): { min: number; max: number } | undefined {
    let min = Infinity;
    let max = -Infinity;
    for (const rule of document.retention) {
      if (this.ruleScope(document, rule).some((reference) => overlaps(reference, category))) {
        const days = approximateDays(parseDuration(rule.duration)!);
        min = Math.min(min, days);
        max = Math.max(max, days);
      }
      for (const exception of rule.exceptions ?? []) {
        if (exception.categories.some((reference) => overlaps(reference, category))) max = Math.max(max, approximateDays(parseDuration(exception.duration)!));
      }
    }
    return min === Infinity ? undefined : { min, max };
  }

  /** Still collected, and the shortest or the longest applicable duration grew. */
  keptLonger(categories: readonly string[]): string | undefined {
    for (const category of [...new Set(categories)].sort()) {
      if (!this.after.collection.some((entry) => entry.categories.some((reference) => overlaps(reference, category)))) continue;
      const before = this.retentionRange(this.before, category);
      const after = this.retentionRange(this.after, category);
      // No rule before means the category was not collected before: collection reports that.
      if (!before || !after) continue;
      if (after.min > before.min + 1e-9 || after.max > before.max + 1e-9) return category;
    }
    return undefined;
  }

  retention(): void {
    const before = byKey(this.before.retention, (rule) => rule.id);
    const after = byKey(this.after.retention, (rule) => rule.id);
    for (const id of sortedUnion(before.keys(), after.keys())) {
      const b = before.get(id);
      const a = after.get(id);
      const path = `retention.${id}`;
      if (!b || !a) {
        const rule = (b ?? a)!;
        const document = b ? this.before : this.after;
        const longer = this.keptLonger(this.ruleScope(document, rule));
        const what = `${describeDuration(parseDuration(rule.duration)!)} after ${triggerText(rule.trigger)}, then ${rule.action}`;
        this.emit(
          'retention', id, b ? 'removed' : 'added', path,
          b ? `Retention rule "${id}" (${what}) removed` : `New retention rule "${id}": ${what}`,
          longer ? `"${longer}" may now be kept longer than before` : false, b, a,
        );
        continue;
      }
      this.retentionRule(id, path, b, a);
    }
  }

  retentionRule(id: string, path: string, b: RetentionRule, a: RetentionRule): void {
    this.text('retention', id, `${path}.description`, `Description of retention rule "${id}"`, b.description, a.description);
    const durationBefore = parseDuration(b.duration)!;
    const durationAfter = parseDuration(a.duration)!;
    const order = compareDurations(durationAfter, durationBefore);
    if (order !== 0) {
      this.emit(
        'retention', id, 'changed', `${path}.duration`,
        `Retention rule "${id}" ${order > 0 ? 'lengthened' : 'shortened'} from ${describeDuration(durationBefore)} to ${describeDuration(durationAfter)}`,
        order > 0 ? 'data is kept longer' : false, b.duration, a.duration,
      );
    }
    if (b.trigger !== a.trigger) {
      this.emit('retention', id, 'changed', `${path}.trigger`, `Retention rule "${id}" now counts from ${triggerText(a.trigger)} (was ${triggerText(b.trigger)})`, 'the retention clock starts at a different moment, which can postpone deletion', b.trigger, a.trigger);
    }
    if (b.action !== a.action) {
      this.emit(
        'retention', id, 'changed', `${path}.action`, `Retention rule "${id}" now ends with ${a.action} (was ${b.action})`,
        a.action === 'anonymize' ? 'records are kept in anonymised form instead of deleted; what is derived from them stays, and anonymisation can be imperfect' : false,
        b.action, a.action,
      );
    }
    // Scope: explicit references only (a purpose gaining categories is reported under purposes).
    for (const key of ['categories', 'purposes'] as const) {
      const added = key === 'categories' ? categoryDiff(b.categories ?? [], a.categories ?? []).added : setDiff(b.purposes, a.purposes).added;
      const removed = key === 'categories' ? categoryDiff(b.categories ?? [], a.categories ?? []).removed.map((item) => item.category) : setDiff(b.purposes, a.purposes).removed;
      const scopeOf = (document: PolicyDocument, references: string[]) =>
        key === 'categories' ? references : references.flatMap((purposeId) => document.purposes.find((purpose) => purpose.id === purposeId)?.categories ?? []);
      for (const reference of added) {
        const longer = this.keptLonger(scopeOf(this.after, [reference]));
        this.emit('retention', id, 'added', `${path}.${key}`, `Retention rule "${id}" now also covers ${key === 'purposes' ? 'the data of purpose ' : ''}"${reference}"`, longer ? `"${longer}" may now be kept longer than before` : false, undefined, reference);
      }
      for (const reference of removed) {
        const longer = this.keptLonger(scopeOf(this.before, [reference]));
        this.emit('retention', id, 'removed', `${path}.${key}`, `Retention rule "${id}" no longer covers ${key === 'purposes' ? 'the data of purpose ' : ''}"${reference}"`, longer ? `"${longer}" may now be kept longer than before` : false, reference, undefined);
      }
    }
    // Limiting a rule to fewer kinds of people leaves the others to other, maybe longer, rules.
    const subjects = scopeDiff(b.subjects, a.subjects);
    const leftOut = 'people no longer covered by the rule may have their data kept under a longer one';
    if (subjects.narrowed === 'all') this.emit('retention', id, 'changed', `${path}.subjects`, `Retention rule "${id}" now applies only to ${quoteList(a.subjects ?? [])}`, leftOut, undefined, a.subjects);
    else if (subjects.narrowed.length) this.emit('retention', id, 'removed', `${path}.subjects`, `Retention rule "${id}" no longer applies to ${quoteList(subjects.narrowed)}`, leftOut, subjects.narrowed, undefined);
    if (subjects.widened === 'all') this.emit('retention', id, 'changed', `${path}.subjects`, `Retention rule "${id}" now applies to everyone`, false, b.subjects, undefined);
    else if (subjects.widened.length) this.emit('retention', id, 'added', `${path}.subjects`, `Retention rule "${id}" now also applies to ${quoteList(subjects.widened)}`, false, undefined, subjects.widened);

    const exceptionsBefore = byKey(b.exceptions, (exception) => exception.id);
    const exceptionsAfter = byKey(a.exceptions, (exception) => exception.id);
    for (const exceptionId of sortedUnion(exceptionsBefore.keys(), exceptionsAfter.keys())) {
      const eb = exceptionsBefore.get(exceptionId);
      const ea = exceptionsAfter.get(exceptionId);
      const at = `${path}.exceptions.${exceptionId}`;
      const label = `Exception "${exceptionId}" of retention rule "${id}"`;
      if (!eb) {
        this.emit('retention', id, 'added', at, `New exception "${exceptionId}" to retention rule "${id}": ${quoteList(ea!.categories)} kept ${durationText(ea!.duration)} (${ea!.reason})`, 'some data is kept beyond the rule', undefined, ea);
        continue;
      }
      if (!ea) {
        this.emit('retention', id, 'removed', at, `${label} removed`, false, eb, undefined);
        continue;
      }
      this.text('retention', id, `${at}.description`, `Description of ${label.charAt(0).toLowerCase()}${label.slice(1)}`, eb.description, ea.description);
      if (eb.reason !== ea.reason) {
        this.emit('retention', id, 'changed', `${at}.reason`, `${label} now rests on ${ea.reason} (was ${eb.reason})`, 'the legal ground for keeping the data changes', eb.reason, ea.reason);
      }
      const order = compareDurations(parseDuration(ea.duration)!, parseDuration(eb.duration)!);
      if (order !== 0) {
        this.emit('retention', id, 'changed', `${at}.duration`, `${label} ${order > 0 ? 'lengthened' : 'shortened'} from ${durationText(eb.duration)} to ${durationText(ea.duration)}`, order > 0 ? 'data is kept longer' : false, eb.duration, ea.duration);
      }
      const categories = categoryDiff(eb.categories, ea.categories);
      for (const category of categories.added) this.emit('retention', id, 'added', `${at}.categories`, `${label} now also keeps "${category}"`, 'more data is kept beyond the rule', undefined, category);
      for (const { category } of categories.removed) this.emit('retention', id, 'removed', `${at}.categories`, `${label} no longer keeps "${category}"`, false, category, undefined);
    }
  }

  // --- rights --------------------------------------------------------------------------------

  rights(): void {
    const before = byKey(this.before.rights.requests, (right) => right.type);
    const after = byKey(this.after.rights.requests, (right) => right.type);
    for (const type of sortedUnion(before.keys(), after.keys())) {
      const b = before.get(type);
      const a = after.get(type);
      const path = `rights.requests.${type}`;
      if (!b) this.emit('right', type, 'added', path, `People now have the right "${type}" (answered within ${a!.deadline})`, false, undefined, a);
      else if (!a) this.emit('right', type, 'removed', path, `The right "${type}" is no longer offered`, 'people lose a right they had', b, undefined);
      else this.right(type, path, b, a);
    }
    this.calendar();
    this.complaints();
  }

  right(type: string, path: string, b: Right, a: Right): void {
    this.text('right', type, `${path}.description`, `Description of the right "${type}"`, b.description, a.description);
    this.deadline(type, `${path}.deadline`, `Deadline of the right "${type}"`, b.deadline, a.deadline);
    const eb = b.extension;
    const ea = a.extension;
    if (!eb && ea) this.emit('right', type, 'added', `${path}.extension`, `Requests for "${type}" may now be extended by ${ea.deadline}`, 'people may wait longer for an answer', undefined, ea);
    else if (eb && !ea) this.emit('right', type, 'removed', `${path}.extension`, `Requests for "${type}" may no longer be extended`, false, eb, undefined);
    else if (eb && ea) {
      this.deadline(type, `${path}.extension.deadline`, `Extension of the right "${type}"`, eb.deadline, ea.deadline);
      const reasonBefore = eb.reason_required ?? true;
      const reasonAfter = ea.reason_required ?? true;
      if (reasonBefore !== reasonAfter) {
        this.emit('right', type, 'changed', `${path}.extension.reason_required`, reasonAfter ? `Extensions of "${type}" must now state a reason` : `Extensions of "${type}" no longer need to state a reason`, reasonAfter ? false : 'people are no longer told why their request takes longer', reasonBefore, reasonAfter);
      }
    }
    const verificationBefore = b.verification ?? 'none';
    const verificationAfter = a.verification ?? 'none';
    if (verificationBefore !== verificationAfter) {
      const stricter = (VERIFICATION_STRICTNESS[verificationAfter] ?? 0) > (VERIFICATION_STRICTNESS[verificationBefore] ?? 0);
      this.emit('right', type, 'changed', `${path}.verification`, `Requests for "${type}" are now verified by ${verificationAfter} (was ${verificationBefore})`, stricter ? 'stricter verification makes the right harder to exercise' : false, verificationBefore, verificationAfter);
    }
    if (Boolean(b.self_service) !== Boolean(a.self_service)) {
      this.emit('right', type, 'changed', `${path}.self_service`, a.self_service ? `People can now exercise "${type}" themselves at once` : `People can no longer exercise "${type}" themselves`, a.self_service ? false : 'the right can no longer be exercised at once by the person', Boolean(b.self_service), Boolean(a.self_service));
    }
    this.channels('right', type, `${path}.channels`, `the right "${type}"`, b.channels, a.channels);
    const regions = scopeDiff(b.regions, a.regions);
    if (regions.narrowed === 'all') this.emit('right', type, 'changed', `${path}.regions`, `The right "${type}" is now limited to people in ${quoteList(a.regions ?? [])}`, 'people elsewhere lose the right', undefined, a.regions);
    else if (regions.narrowed.length) this.emit('right', type, 'removed', `${path}.regions`, `People in ${quoteList(regions.narrowed)} no longer have the right "${type}"`, 'people in those regions lose the right', regions.narrowed, undefined);
    if (regions.widened === 'all') this.emit('right', type, 'changed', `${path}.regions`, `The right "${type}" now applies to everyone`, false, b.regions, undefined);
    else if (regions.widened.length) this.emit('right', type, 'added', `${path}.regions`, `People in ${quoteList(regions.widened)} now have the right "${type}"`, false, undefined, regions.widened);
  }

  deadline(id: string, path: string, label: string, before: string | undefined, after: string | undefined, element: PolicyElement = 'right'): void {
    if (before === undefined || after === undefined) return;
    const days = deadlineDays(after) - deadlineDays(before);
    if (days === 0 || Number.isNaN(days)) return;
    this.emit(element, id, 'changed', path, `${label} ${days > 0 ? 'lengthened' : 'shortened'} from ${before} to ${after}`, days > 0 ? 'people wait longer for an answer' : false, before, after);
  }

  /**
   * Channels grouped by kind: a kind that disappears is material (one way to reach us is
   * gone); another address within a kind is a contact change.
   */
  channels(element: PolicyElement, id: string, path: string, what: string, before: readonly Channel[], after: readonly Channel[]): void {
    const group = (channels: readonly Channel[]) => {
      const kinds = new Map<string, string[]>();
      for (const channel of channels) kinds.set(channel.kind, [...(kinds.get(channel.kind) ?? []), canonicalJson(channel)]);
      return new Map([...kinds].map(([kind, list]) => [kind, list.sort()]));
    };
    const b = group(before);
    const a = group(after);
    const values = (list?: string[]) => list?.map((json) => JSON.parse(json) as unknown);
    for (const kind of sortedUnion(b.keys(), a.keys())) {
      const was = b.get(kind);
      const now = a.get(kind);
      if (same(was, now)) continue;
      if (!was) this.emit(element, id, 'added', `${path}.${kind}`, `${capitalize(what)} can now be exercised by ${kind.replace('_', ' ')}`, false, undefined, values(now));
      else if (!now) this.emit(element, id, 'removed', `${path}.${kind}`, `${capitalize(what)} can no longer be exercised by ${kind.replace('_', ' ')}`, 'one way to exercise it is gone', values(was), undefined);
      else this.emit(element, id, 'changed', `${path}.${kind}`, `The ${kind.replace('_', ' ')} channel for ${what} changed`, false, values(was), values(now));
    }
  }

  calendar(): void {
    const b = this.before.rights.calendar;
    const a = this.after.rights.calendar;
    if (same(b, a)) return;
    const usesBusinessDays = (document: PolicyDocument) =>
      [
        ...document.rights.requests.flatMap((right) => [right.deadline, right.extension?.deadline]),
        document.rights.complaints?.deadline,
      ].some((deadline) => deadline !== undefined && parseDeadline(deadline)?.kind === 'business');
    const daysBefore = b?.business_days ?? ['mon', 'tue', 'wed', 'thu', 'fri'];
    const daysAfter = a?.business_days ?? ['mon', 'tue', 'wed', 'thu', 'fri'];
    const lostDays = setDiff(daysBefore, daysAfter).removed;
    const presetAdded = (a?.holidays ?? 'none') !== 'none' && (a?.holidays ?? 'none') !== (b?.holidays ?? 'none');
    const holidaysAdded = setDiff(b?.extra_holidays, a?.extra_holidays).added;
    const longer = usesBusinessDays(this.after) && (lostDays.length > 0 || presetAdded || holidaysAdded.length > 0);
    const parts: string[] = [];
    if (!same(daysBefore, daysAfter)) parts.push(`business days ${daysAfter.join(', ')}`);
    if ((b?.holidays ?? 'none') !== (a?.holidays ?? 'none')) parts.push(`holidays ${a?.holidays ?? 'none'}`);
    if (!same([...(b?.extra_holidays ?? [])].sort(), [...(a?.extra_holidays ?? [])].sort())) parts.push('extra holidays');
    if ((b?.timezone ?? 'UTC') !== (a?.timezone ?? 'UTC')) parts.push(`time zone ${a?.timezone ?? 'UTC'}`);
    if (parts.length === 0) return;
    this.emit('right', 'calendar', 'changed', 'rights.calendar', `The deadline calendar changed (${parts.join('; ')})`, longer ? 'fewer business days per week or more holidays lengthen business-day deadlines' : false, b, a);
  }

  complaints(): void {
    const b = this.before.rights.complaints;
    const a = this.after.rights.complaints;
    const path = 'rights.complaints';
    if (!b && a) return this.emit('right', 'complaints', 'added', path, 'People can now lodge complaints', false, undefined, a);
    if (b && !a) return this.emit('right', 'complaints', 'removed', path, 'The complaints procedure is no longer offered', 'people lose a way to complain', b, undefined);
    if (!b || !a) return;
    this.text('right', 'complaints', `${path}.description`, 'Description of the complaints procedure', b.description, a.description);
    this.text('right', 'complaints', `${path}.authority`, 'Supervisory authority', b.authority, a.authority);
    if (b.deadline !== undefined && a.deadline === undefined) this.emit('right', 'complaints', 'removed', `${path}.deadline`, `Complaints no longer have a deadline (was ${b.deadline})`, 'people lose a promised answer time', b.deadline, undefined);
    else if (b.deadline === undefined && a.deadline !== undefined) this.emit('right', 'complaints', 'added', `${path}.deadline`, `Complaints are now answered within ${a.deadline}`, false, undefined, a.deadline);
    else this.deadline('complaints', `${path}.deadline`, 'Deadline for complaints', b.deadline, a.deadline);
    this.channels('right', 'complaints', `${path}.channels`, 'the complaints procedure', b.channels, a.channels);
  }

  // --- communications and cookies ------------------------------------------------------------

  communications(): void {
    const before = byKey(this.before.communications, (communication) => communication.id);
    const after = byKey(this.after.communications, (communication) => communication.id);
    for (const id of sortedUnion(before.keys(), after.keys())) {
      const b = before.get(id);
      const a = after.get(id);
      const path = `communications.${id}`;
      if (!b) {
        this.emit('communication', id, 'added', path, `New ${a!.kind} communication "${id}" (${a!.name}) by ${a!.channels.join(', ')}`, a!.kind === 'marketing' ? 'people may receive marketing they did not receive before' : false, undefined, a);
        continue;
      }
      if (!a) {
        this.emit('communication', id, 'removed', path, `Communication "${id}" (${b.name}) is no longer sent`, false, b, undefined);
        continue;
      }
      this.text('communication', id, `${path}.name`, `Name of communication "${id}"`, b.name, a.name);
      this.text('communication', id, `${path}.description`, `Description of communication "${id}"`, b.description, a.description);
      if (b.kind !== a.kind) {
        this.emit('communication', id, 'changed', `${path}.kind`, `Communication "${id}" is now ${a.kind} (was ${b.kind})`, a.kind === 'marketing' ? 'people may receive marketing they did not receive before' : false, b.kind, a.kind);
      }
      if (b.purpose !== a.purpose) {
        this.emit('communication', id, 'changed', `${path}.purpose`, `Communication "${id}" now serves purpose "${a.purpose}" (was "${b.purpose}")`, 'the messages are sent under another purpose, so a choice made for the old one no longer governs them', b.purpose, a.purpose);
      }
      const marketing = a.kind === 'marketing';
      const channels = setDiff(b.channels, a.channels);
      for (const channel of channels.added) this.emit('communication', id, 'added', `${path}.channels`, `Communication "${id}" is now also sent by ${channel}`, marketing ? 'marketing reaches people through a channel it did not use before' : false, undefined, channel);
      for (const channel of channels.removed) this.emit('communication', id, 'removed', `${path}.channels`, `Communication "${id}" is no longer sent by ${channel}`, false, channel, undefined);
      this.scope('communication', id, `${path}.subjects`, `Communication "${id}"`, 'goes', b.subjects, a.subjects, 'everyone', marketing ? 'marketing now goes to more people' : false);
    }
  }

  cookies(): void {
    const key = (cookie: { provider: string; name: string }) => (cookie.provider === 'first_party' ? cookie.name : `${cookie.provider}/${cookie.name}`);
    const before = byKey(this.before.cookies, key);
    const after = byKey(this.after.cookies, key);
    const optional = (document: PolicyDocument, purposeId: string) => {
      const purpose = document.purposes.find((candidate) => candidate.id === purposeId);
      return purpose !== undefined && effectiveChoice(purpose) !== 'none';
    };
    const lifetimeDays = (lifetime: string) => (lifetime === 'session' ? 0 : approximateDays(parseDuration(lifetime)!));
    const lifetimeText = (lifetime: string) => (lifetime === 'session' ? 'the session' : durationText(lifetime));
    for (const id of sortedUnion(before.keys(), after.keys())) {
      const b = before.get(id);
      const a = after.get(id);
      const path = `cookies.${id}`;
      if (!b) {
        const nonNecessary = optional(this.after, a!.purpose);
        this.emit('cookie', id, 'added', path, `New ${nonNecessary ? '' : 'necessary '}cookie "${a!.name}" (${a!.provider}) for "${a!.purpose}", lasting ${lifetimeText(a!.lifetime)}`, nonNecessary ? 'a cookie people can refuse is set that was not set before' : false, undefined, a);
        continue;
      }
      if (!a) {
        this.emit('cookie', id, 'removed', path, `Cookie "${b.name}" (${b.provider}) is no longer set`, false, b, undefined);
        continue;
      }
      this.text('cookie', id, `${path}.description`, `Description of cookie "${a.name}"`, b.description, a.description);
      if (b.purpose !== a.purpose) {
        this.emit('cookie', id, 'changed', `${path}.purpose`, `Cookie "${a.name}" now serves "${a.purpose}" (was "${b.purpose}")`, 'the cookie is set for another purpose, under another choice', b.purpose, a.purpose);
      }
      if (b.lifetime !== a.lifetime) {
        const longer = lifetimeDays(a.lifetime) - lifetimeDays(b.lifetime);
        const equal = b.lifetime !== 'session' && a.lifetime !== 'session' && compareDurations(parseDuration(a.lifetime)!, parseDuration(b.lifetime)!) === 0;
        if (!equal && longer !== 0) {
          this.emit(
            'cookie', id, 'changed', `${path}.lifetime`, `Cookie "${a.name}" now lasts ${lifetimeText(a.lifetime)} (was ${lifetimeText(b.lifetime)})`,
            longer > 0 && optional(this.after, a.purpose) ? 'a cookie people can refuse lives longer' : false, b.lifetime, a.lifetime,
          );
        }
      }
      const categories = categoryDiff(b.categories ?? [], a.categories ?? []);
      for (const category of categories.added) this.emit('cookie', id, 'added', `${path}.categories`, `Cookie "${a.name}" now holds "${category}"`, 'the cookie holds personal data it did not hold before', undefined, category);
      for (const { category } of categories.removed) this.emit('cookie', id, 'removed', `${path}.categories`, `Cookie "${a.name}" no longer holds "${category}"`, false, category, undefined);
    }
  }

  // --- signals, children, storage, security --------------------------------------------------

  signals(): void {
    for (const signal of ['gpc', 'dnt'] as const) {
      const b = this.before.signals?.[signal];
      const a = this.after.signals?.[signal];
      const name = signal.toUpperCase();
      const path = `signals.${signal}`;
      const honouredBefore = b?.honoured ?? false;
      const honouredAfter = a?.honoured ?? false;
      if (honouredBefore !== honouredAfter) {
        this.emit('signal', signal, 'changed', `${path}.honoured`, honouredAfter ? `${name} is now honoured (opts out of ${quoteList(a?.opts_out_of ?? [])})` : `${name} is no longer honoured`, honouredAfter ? false : `browsers sending ${name} no longer opt people out`, b, a);
        continue;
      }
      if (!honouredAfter) continue;
      const purposes = setDiff(b?.opts_out_of, a?.opts_out_of);
      // A purpose that is gone (or became necessary) needs no opt-out: that is no weakening.
      const stillOptional = (purposeId: string) => {
        const purpose = this.after.purposes.find((candidate) => candidate.id === purposeId);
        return purpose !== undefined && effectiveChoice(purpose) !== 'none';
      };
      for (const purpose of purposes.removed) {
        this.emit('signal', signal, 'removed', `${path}.opts_out_of`, `${name} no longer opts people out of "${purpose}"`, stillOptional(purpose) ? `people sending ${name} are no longer opted out of "${purpose}"` : false, purpose, undefined);
      }
      for (const purpose of purposes.added) this.emit('signal', signal, 'added', `${path}.opts_out_of`, `${name} now also opts people out of "${purpose}"`, false, undefined, purpose);
    }
  }

  children(): void {
    const b = this.before.children;
    const a = this.after.children;
    const path = 'children';
    if (!b && !a) return;
    if (!a) return this.emit('children', 'children', 'removed', path, `The minimum age (${b!.minimum_age}) is no longer stated`, 'data of people of any age may be accepted', b, undefined);
    if (!b) return this.emit('children', 'children', 'added', path, `Data is now accepted only from people aged ${a.minimum_age} or older`, false, undefined, a);
    if (b.minimum_age !== a.minimum_age) {
      const lower = a.minimum_age < b.minimum_age;
      this.emit('children', 'children', 'changed', `${path}.minimum_age`, `Minimum age ${lower ? 'lowered' : 'raised'} from ${b.minimum_age} to ${a.minimum_age}`, lower ? 'data of younger people is accepted' : false, b.minimum_age, a.minimum_age);
    }
    if (Boolean(b.directed_to_children) !== Boolean(a.directed_to_children)) {
      this.emit('children', 'children', 'changed', `${path}.directed_to_children`, a.directed_to_children ? 'The service is now directed to children' : 'The service is no longer directed to children', a.directed_to_children ? 'children\'s data is sought' : false, Boolean(b.directed_to_children), Boolean(a.directed_to_children));
    }
    this.text('children', 'children', `${path}.description`, 'Statement on children', b.description, a.description);
  }

  storage(): void {
    const b = this.before.storage;
    const a = this.after.storage;
    const regions = setDiff(b.regions, a.regions);
    for (const region of regions.added) this.emit('storage', region, 'added', 'storage.regions', `Personal data is now stored in ${region}`, 'data is stored in a place it was not stored before', undefined, region);
    for (const region of regions.removed) this.emit('storage', region, 'removed', 'storage.regions', `Personal data is no longer stored in ${region}`, false, region, undefined);
    this.text('storage', 'description', 'storage.description', 'Description of storage', b.description, a.description);
    const key = (transfer: { from?: string; to: string }) => `${transfer.from ?? 'any'}->${transfer.to}`;
    const before = byKey(b.transfers, key);
    const after = byKey(a.transfers, key);
    for (const id of sortedUnion(before.keys(), after.keys())) {
      const tb = before.get(id);
      const ta = after.get(id);
      const route = (transfer: { from?: string; to: string }) => `${transfer.from ? `from ${transfer.from} ` : ''}to ${transfer.to}`;
      const path = `storage.transfers.${id}`;
      if (!tb) this.emit('storage', id, 'added', path, `New transfer ${route(ta!)} (${ta!.mechanism})`, 'data is transferred where it was not before', undefined, ta);
      else if (!ta) this.emit('storage', id, 'removed', path, `Transfer ${route(tb)} removed`, false, tb, undefined);
      else {
        if (tb.mechanism !== ta.mechanism) this.emit('storage', id, 'changed', `${path}.mechanism`, `Transfer ${route(ta)} now relies on ${ta.mechanism} (was ${tb.mechanism})`, 'the safeguard protecting the transferred data changes', tb.mechanism, ta.mechanism);
        this.text('storage', id, `${path}.description`, `Description of the transfer ${route(ta)}`, tb.description, ta.description);
      }
    }
  }

  security(): void {
    const before = byKey(this.before.security?.measures, (measure) => measure.id);
    const after = byKey(this.after.security?.measures, (measure) => measure.id);
    for (const id of sortedUnion(before.keys(), after.keys())) {
      const b = before.get(id);
      const a = after.get(id);
      const path = `security.measures.${id}`;
      if (!b) this.emit('security', id, 'added', path, `New security measure "${id}": ${a!.description}`, false, undefined, a);
      else if (!a) this.emit('security', id, 'removed', path, `Security measure "${id}" removed`, 'data loses a protection it had', b, undefined);
      else {
        this.text('security', id, `${path}.description`, `Description of security measure "${id}"`, b.description, a.description);
        if (b.kind !== a.kind) this.emit('security', id, 'changed', `${path}.kind`, `Security measure "${id}" is now ${a.kind} (was ${b.kind})`, false, b.kind, a.kind);
        const enforcedBefore = b.enforced_by ?? 'company';
        const enforcedAfter = a.enforced_by ?? 'company';
        if (enforcedBefore !== enforcedAfter) {
          this.emit('security', id, 'changed', `${path}.enforced_by`, `Security measure "${id}" is now enforced by ${enforcedAfter === 'pledge' ? 'the engine' : 'the company'}`, enforcedAfter === 'company' ? 'the measure is no longer enforced by the engine itself' : false, enforcedBefore, enforcedAfter);
        }
      }
    }
    this.text('security', 'disclaimer', 'security.disclaimer', 'Security disclaimer', this.before.security?.disclaimer, this.after.security?.disclaimer);
  }

  // --- change policy and notices -------------------------------------------------------------

  changePolicy(): void {
    const b = this.before.changes;
    const a = this.after.changes;
    type Notify = (typeof b.notify)[number];
    const key = (notify: Notify) => `${notify.audience}/${notify.channel}`;
    const materialOnly = (notify: Notify) => notify.material_only ?? notify.channel !== 'website';
    const before = byKey(b.notify, key);
    const after = byKey(a.notify, key);
    for (const id of sortedUnion(before.keys(), after.keys())) {
      const nb = before.get(id);
      const na = after.get(id);
      const path = `changes.notify.${id}`;
      const who = (notify: Notify) => `${notify.audience === 'everyone' ? 'everyone' : 'registered people'} by ${notify.channel.replace('_', '-')}`;
      if (!nb) this.emit('changes', id, 'added', path, `Policy changes are now announced to ${who(na!)}`, false, undefined, na);
      else if (!na) this.emit('changes', id, 'removed', path, `Policy changes are no longer announced to ${who(nb)}`, 'people lose a way of learning about policy changes', nb, undefined);
      else if (materialOnly(nb) !== materialOnly(na)) {
        this.emit('changes', id, 'changed', `${path}.material_only`, materialOnly(na) ? `Only material changes are now announced to ${who(na)}` : `All changes are now announced to ${who(na)}`, materialOnly(na) ? 'people are told of fewer changes' : false, materialOnly(nb), materialOnly(na));
      }
    }
    if (b.advance_notice !== a.advance_notice) {
      const path = 'changes.advance_notice';
      if (a.advance_notice === undefined) this.emit('changes', 'advance_notice', 'removed', path, `Material changes no longer come with advance notice (was ${durationText(b.advance_notice!)})`, 'people may no longer be warned before a change takes effect', b.advance_notice, undefined);
      else if (b.advance_notice === undefined) this.emit('changes', 'advance_notice', 'added', path, `Material changes are now announced ${durationText(a.advance_notice)} ahead`, false, undefined, a.advance_notice);
      else {
        const order = compareDurations(parseDuration(a.advance_notice)!, parseDuration(b.advance_notice)!);
        if (order !== 0) this.emit('changes', 'advance_notice', 'changed', path, `Advance notice of material changes ${order < 0 ? 'shortened' : 'lengthened'} from ${durationText(b.advance_notice)} to ${durationText(a.advance_notice)}`, order < 0 ? 'people get less time before a change takes effect' : false, b.advance_notice, a.advance_notice);
      }
    }
    if (b.acceptance !== a.acceptance) {
      this.emit('changes', 'acceptance', 'changed', 'changes.acceptance', a.acceptance === 'explicit' ? 'New versions now need explicit acceptance' : 'New versions are now accepted by continued use', a.acceptance === 'explicit' ? false : 'a new version binds people without their explicit acceptance', b.acceptance, a.acceptance);
    }
    this.text('changes', 'description', 'changes.description', 'Description of the change policy', b.description, a.description);
  }

  notices(): void {
    const before = byKey(this.before.notices, (notice) => notice.id);
    const after = byKey(this.after.notices, (notice) => notice.id);
    for (const id of sortedUnion(before.keys(), after.keys())) {
      const b = before.get(id);
      const a = after.get(id);
      const path = `notices.${id}`;
      if (!b) this.emit('notice', id, 'added', path, `New notice "${a!.title}"`, false, undefined, a);
      else if (!a) this.emit('notice', id, 'removed', path, `Notice "${b.title}" removed`, false, b, undefined);
      else {
        this.text('notice', id, `${path}.title`, `Title of notice "${id}"`, b.title, a.title);
        this.text('notice', id, `${path}.text`, `Text of notice "${id}"`, b.text, a.text);
      }
    }
  }
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

// --- public API ----------------------------------------------------------------------------------

/**
 * Semantic changes from `before` to `after`, in a fixed order: by section (in the order of the
 * policy file), then by id, then field by field.
 *
 * @example
 * const changes = diffPolicies(requirePolicy(loadPolicyFile('old.yaml')), requirePolicy(loadPolicyFile('pledge.yaml')));
 * if (isMaterial(changes)) scheduleNotices(changes);
 */
export function diffPolicies(before: Policy, after: Policy): PolicyChange[] {
  if (before.hash === after.hash) return [];
  return new Differ(before.document, after.document).run();
}

/** Does the new version need a notice to people (see the rule at the top of this file)? */
export function isMaterial(changes: readonly PolicyChange[]): boolean {
  return changes.some((change) => change.material);
}

const MARKS: Record<ChangeKind, string> = { added: '+', removed: '-', changed: '~' };

function countLine(changes: readonly PolicyChange[]): string {
  const material = changes.filter((change) => change.material).length;
  return `${changes.length} change${changes.length === 1 ? '' : 's'}, ${material} material`;
}

/**
 * Human text: one line per change, material ones marked and explained, then a count.
 *
 *   [material] ~ purposes.marketing.categories: Purpose "marketing" may now use "user.contact.phone_number" (the purpose may use data it could not use before)
 *              ~ retention.orders.duration: Retention rule "orders" shortened from 3 years to 2 years
 *   2 changes, 1 material
 */
export function formatDiff(changes: readonly PolicyChange[]): string {
  if (changes.length === 0) return 'No semantic changes.';
  const lines = changes.map((change) => {
    const marker = change.material ? '[material]' : '          ';
    const why = change.material && change.reason ? ` (${change.reason})` : '';
    return `${marker} ${MARKS[change.change]} ${change.path}: ${change.summary}${why}`;
  });
  lines.push(countLine(changes));
  return lines.join('\n');
}

export interface PolicyDiffJson {
  material: boolean;
  counts: { total: number; material: number; added: number; removed: number; changed: number };
  summary: string;
  changes: PolicyChange[];
}

/** Stable JSON form for `--json`: fixed key order, object keys inside values sorted. */
export function diffToJson(changes: readonly PolicyChange[]): PolicyDiffJson {
  const count = (kind: ChangeKind) => changes.filter((change) => change.change === kind).length;
  const sortedValue = (value: unknown): unknown => JSON.parse(canonicalJson(value)) as unknown;
  return {
    material: isMaterial(changes),
    counts: {
      total: changes.length,
      material: changes.filter((change) => change.material).length,
      added: count('added'),
      removed: count('removed'),
      changed: count('changed'),
    },
    summary: changes.length === 0 ? 'No semantic changes.' : countLine(changes),
    changes: changes.map((change) => ({
      element: change.element,
      id: change.id,
      change: change.change,
      path: change.path,
      summary: change.summary,
      material: change.material,
      ...(change.reason !== undefined ? { reason: change.reason } : {}),
      ...(change.before !== undefined ? { before: sortedValue(change.before) } : {}),
      ...(change.after !== undefined ? { after: sortedValue(change.after) } : {}),
    })),
  };
}
