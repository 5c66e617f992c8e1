import { closestMatch } from '../core/suggest.js';
import { approximateDays, parseDuration } from './duration.js';
import type { PathSegment, PendingIssue } from './policy.issues.js';
import type { PolicyDocument } from './policy.schema.js';
import { BUILT_IN_CATEGORIES, covers, parentOf } from './taxonomy.js';
import { effectiveChoice } from './policy.model.js';
import { buildGraph, findCycle, reachable } from '../datasets/datasets.graph.js';

/**
 * Cross-checks a policy whose shape is valid: every reference resolves, and the promises are
 * coherent (consent is opt-in, recipients receive only what some purpose allows, every
 * collected category has a retention rule, cookies never carry credentials…).
 */
export function checkReferences(policy: PolicyDocument): PendingIssue[] {
  const issues: PendingIssue[] = [];
  const error = (code: string, path: PathSegment[], message: string, suggestion?: string) =>
    issues.push({ severity: 'error', code, path, message, ...(suggestion ? { suggestion } : {}) });
  const warning = (code: string, path: PathSegment[], message: string, suggestion?: string) =>
    issues.push({ severity: 'warning', code, path, message, ...(suggestion ? { suggestion } : {}) });

  // --- identifiers: unique within their list ------------------------------------------------
  const uniqueIds = (list: Array<{ id: string }> | undefined, ...at: PathSegment[]) => {
    const seen = new Map<string, number>();
    list?.forEach((item, index) => {
      const first = seen.get(item.id);
      if (first !== undefined) error('duplicate_id', [...at, index, 'id'], `"${item.id}" is already used by ${at.join('.')}[${first}]`);
      else seen.set(item.id, index);
    });
    return new Set(list?.map((item) => item.id) ?? []);
  };
  const subjectKinds = uniqueIds(policy.subject_kinds, 'subject_kinds');
  const purposes = uniqueIds(policy.purposes, 'purposes');
  const recipients = uniqueIds(policy.recipients, 'recipients');
  const sources = uniqueIds(policy.sources, 'sources');
  uniqueIds(policy.collection, 'collection');
  uniqueIds(policy.retention, 'retention');
  uniqueIds(policy.communications, 'communications');
  uniqueIds(policy.notices, 'notices');
  uniqueIds(policy.security?.measures, 'security', 'measures');
  uniqueIds(policy.datasets, 'datasets');

  // --- categories: the built-in taxonomy plus the policy's own ------------------------------
  const categories = new Set(BUILT_IN_CATEGORIES.keys());
  (policy.categories ?? []).forEach((category, index) => {
    if (categories.has(category.id)) {
      error('duplicate_category', ['categories', index, 'id'], `category "${category.id}" already exists${BUILT_IN_CATEGORIES.has(category.id) ? ' in the built-in taxonomy' : ''}`);
    }
    categories.add(category.id);
  });
  (policy.categories ?? []).forEach((category, index) => {
    const parent = parentOf(category.id);
    if (parent === undefined) {
      error('category_without_parent', ['categories', index, 'id'], `category "${category.id}" must extend an existing category`, 'write it under one, e.g. "user.' + category.id + '"');
    } else if (!categories.has(parent)) {
      const guess = closestMatch(parent, categories);
      error('unknown_category', ['categories', index, 'id'], `parent category "${parent}" does not exist`, guess ? `did you mean "${guess}"?` : undefined);
    }
  });

  const checkCategory = (category: string, path: PathSegment[]) => {
    if (categories.has(category)) return true;
    const guess = closestMatch(category, categories);
    error('unknown_category', path, `unknown category "${category}"`, guess ? `did you mean "${guess}"?` : 'declare it under categories:, or run `pledge policy categories` to list the built-in ones');
    return false;
  };
  const checkRef = (kind: string, known: Set<string>, value: string, path: PathSegment[]) => {
    if (known.has(value)) return true;
    const guess = closestMatch(value, known);
    error(`unknown_${kind.replace(/ /g, '_')}`, path, `unknown ${kind} "${value}"`, guess ? `did you mean "${guess}"?` : known.size ? `known: ${[...known].join(', ')}` : undefined);
    return false;
  };
  const checkSubjects = (list: string[] | undefined, path: PathSegment[]) =>
    list?.forEach((kind, index) => checkRef('subject kind', subjectKinds, kind, [...path, index]));

  // --- purposes -----------------------------------------------------------------------------
  const purposeById = new Map(policy.purposes.map((purpose) => [purpose.id, purpose]));
  policy.purposes.forEach((purpose, index) => {
    purpose.categories.forEach((category, j) => checkCategory(category, ['purposes', index, 'categories', j]));
    checkSubjects(purpose.subjects, ['purposes', index, 'subjects']);
    const choice = effectiveChoice(purpose);
    if (purpose.legal_basis === 'consent' && choice !== 'opt_in') {
      error('consent_not_opt_in', ['purposes', index, 'choice'], `purpose "${purpose.id}" is based on consent, so it must be opt_in, not ${choice}`, 'set choice: opt_in, or change legal_basis to legitimate_interest');
    }
    if ((purpose.legal_basis === 'contract' || purpose.legal_basis === 'legal_obligation') && choice === 'opt_in') {
      warning('necessary_purpose_opt_in', ['purposes', index, 'choice'], `purpose "${purpose.id}" rests on ${purpose.legal_basis} but waits for consent (opt_in)`, 'use legal_basis: consent if the person really chooses');
    }
    // A purpose that is only sharing, with no one to share with, could never be carried out.
    if (purpose.disclosure && !policy.recipients?.some((recipient) => recipient.purposes.includes(purpose.id))) {
      error('disclosure_without_recipient', ['purposes', index, 'disclosure'], `purpose "${purpose.id}" is only the passing of data to its recipients, but no recipient serves it`, `name it in the purposes of the recipients it shares with, or remove disclosure: true`);
    }
  });
  const allows = (purposeId: string, category: string) =>
    purposeById.get(purposeId)?.categories.some((reference) => covers(reference, category)) ?? false;

  // --- sources and collection -----------------------------------------------------------------
  const collected: Array<{ category: string; path: PathSegment[] }> = [];
  policy.collection.forEach((entry, index) => {
    const at = (...rest: PathSegment[]) => ['collection', index, ...rest];
    entry.categories.forEach((category, j) => {
      if (checkCategory(category, at('categories', j))) collected.push({ category, path: at('categories', j) });
    });
    checkSubjects(entry.subjects, at('subjects'));
    if (entry.source === 'partner') {
      if (!entry.partner) error('missing_partner', at('source'), 'source: partner needs a partner: naming one of sources:');
      else checkRef('source', sources, entry.partner, at('partner'));
    } else if (entry.partner) {
      error('unexpected_partner', at('partner'), `partner: is only used with source: partner (this entry's source is ${entry.source})`);
    }
    entry.required_for?.forEach((purposeId, j) => {
      if (!checkRef('purpose', purposes, purposeId, at('required_for', j))) return;
      const unused = entry.categories.filter((category) => !allows(purposeId, category));
      if (unused.length === entry.categories.length) {
        error('required_but_not_allowed', at('required_for', j), `purpose "${purposeId}" may use none of the categories this entry requires (${unused.join(', ')})`, `add them to purposes.${purposeId}.categories or remove the purpose here`);
      }
    });
  });
  for (const { category, path } of collected) {
    const usedBy = policy.purposes.some((purpose) => purpose.categories.some((reference) => covers(reference, category) || covers(category, reference)));
    if (!usedBy) warning('collected_but_unused', path, `category "${category}" is collected but no purpose uses it`, 'data minimisation: stop collecting it, or name it in a purpose');
  }

  // --- recipients -----------------------------------------------------------------------------
  policy.recipients?.forEach((recipient, index) => {
    const at = (...rest: PathSegment[]) => ['recipients', index, ...rest];
    const known = recipient.purposes.filter((purposeId, j) => checkRef('purpose', purposes, purposeId, at('purposes', j)));
    recipient.categories.forEach((category, j) => {
      if (!checkCategory(category, at('categories', j))) return;
      if (known.length === recipient.purposes.length && !known.some((purposeId) => allows(purposeId, category))) {
        error('recipient_category_not_allowed', at('categories', j), `recipient "${recipient.id}" receives "${category}", which none of its purposes (${known.join(', ')}) may use`, 'add the category to one of those purposes, or stop sending it');
      }
    });
    if (recipient.opt_out && known.length > 0 && known.every((purposeId) => effectiveChoice(purposeById.get(purposeId)!) === 'none')) {
      error('opt_out_without_choice', at('opt_out'), `recipient "${recipient.id}" can be opted out of, but all its purposes are necessary (choice: none): data it must receive could not go to it`, 'remove opt_out, or serve it through an opt_out or opt_in purpose');
    }
    if (recipient.role === 'authority' && !recipient.condition) {
      warning('authority_without_condition', at('role'), `recipient "${recipient.id}" is an authority but no condition says when data is disclosed`, 'add condition: "only when required by law or legal process"');
    }
  });

  // --- sharing --------------------------------------------------------------------------------
  // (sells_personal_data is a promise the disclosure register enforces.)

  // --- retention ------------------------------------------------------------------------------
  const retained: Array<{ covers: (category: string) => boolean }> = [];
  policy.retention.forEach((rule, index) => {
    const at = (...rest: PathSegment[]) => ['retention', index, ...rest];
    if (!rule.categories && !rule.purposes) {
      error('retention_without_scope', at(), `retention rule "${rule.id}" names neither categories nor purposes`, 'add categories: […] or purposes: […]');
    }
    const ruleCategories = (rule.categories ?? []).filter((category, j) => checkCategory(category, at('categories', j)));
    const rulePurposes = (rule.purposes ?? []).filter((purposeId, j) => checkRef('purpose', purposes, purposeId, at('purposes', j)));
    checkSubjects(rule.subjects, at('subjects'));
    if (!parseDuration(rule.duration)) error('invalid_duration', at('duration'), `cannot read duration "${rule.duration}"`);
    retained.push({
      covers: (category) =>
        ruleCategories.some((reference) => covers(reference, category)) ||
        rulePurposes.some((purposeId) => purposeById.get(purposeId)!.categories.some((reference) => covers(reference, category))),
    });
    uniqueIds(rule.exceptions, 'retention', index, 'exceptions');
    rule.exceptions?.forEach((exception, j) => {
      exception.categories.forEach((category, k) => checkCategory(category, at('exceptions', j, 'categories', k)));
      const base = parseDuration(rule.duration);
      const extended = parseDuration(exception.duration);
      if (base && extended && approximateDays(extended) < approximateDays(base)) {
        warning('exception_shorter_than_rule', at('exceptions', j, 'duration'), `exception "${exception.id}" keeps data for less time than the rule itself`);
      }
    });
  });
  const reported = new Set<string>();
  for (const { category, path } of collected) {
    if (reported.has(category) || retained.some((rule) => rule.covers(category))) continue;
    reported.add(category);
    error('no_retention_rule', path, `category "${category}" is collected but no retention rule covers it`, `add it (or a parent such as "${parentOf(category) ?? category}") to a rule under retention:`);
  }

  // --- rights ---------------------------------------------------------------------------------
  const rightTypes = new Map<string, number>();
  policy.rights.requests.forEach((right, index) => {
    const first = rightTypes.get(right.type);
    if (first !== undefined) error('duplicate_right', ['rights', 'requests', index, 'type'], `right "${right.type}" is already declared at rights.requests[${first}]`);
    else rightTypes.set(right.type, index);
    right.channels.forEach((channel, j) => {
      if (['email', 'postal', 'phone', 'web'].includes(channel.kind) && !channel.address) {
        error('channel_without_address', ['rights', 'requests', index, 'channels', j], `a ${channel.kind} channel needs an address`, channel.kind === 'email' ? 'address: privacy@example.com' : undefined);
      }
    });
  });

  // --- communications ---------------------------------------------------------------------------
  policy.communications?.forEach((communication, index) => {
    const at = (...rest: PathSegment[]) => ['communications', index, ...rest];
    checkSubjects(communication.subjects, at('subjects'));
    if (!checkRef('purpose', purposes, communication.purpose, at('purpose'))) return;
    const purpose = purposeById.get(communication.purpose)!;
    if (communication.kind === 'marketing' && effectiveChoice(purpose) === 'none') {
      error('marketing_without_choice', at('purpose'), `marketing "${communication.id}" serves purpose "${purpose.id}", which people cannot refuse (choice: none)`, 'marketing needs an opt_in or opt_out purpose so every message can carry an unsubscribe');
    }
    if (!purpose.categories.some((reference) => covers(reference, 'user.contact') || covers('user.contact', reference))) {
      warning('communication_without_contact', at('purpose'), `purpose "${purpose.id}" does not allow any contact details, so "${communication.id}" cannot be delivered`, 'add user.contact.email to the purpose');
    }
  });

  // --- cookies --------------------------------------------------------------------------------
  const providers = new Set(['first_party', ...recipients, ...sources]);
  const cookieNames = new Map<string, number>();
  policy.cookies?.forEach((cookie, index) => {
    const at = (...rest: PathSegment[]) => ['cookies', index, ...rest];
    const key = `${cookie.provider}/${cookie.name}`;
    if (cookieNames.has(key)) error('duplicate_cookie', at('name'), `cookie "${cookie.name}" from ${cookie.provider} is already declared at cookies[${cookieNames.get(key)}]`);
    else cookieNames.set(key, index);
    checkRef('cookie provider', providers, cookie.provider, at('provider'));
    checkRef('purpose', purposes, cookie.purpose, at('purpose'));
    cookie.categories?.forEach((category, j) => {
      if (!checkCategory(category, at('categories', j))) return;
      if (covers('user.authorization', category) && category !== 'user.authorization.session') {
        error('credentials_in_cookie', at('categories', j), `cookie "${cookie.name}" would carry credentials (${category})`, 'store an opaque session identifier (user.authorization.session) instead; never a username or password');
      }
    });
    if (cookie.lifetime !== 'session') {
      const lifetime = parseDuration(cookie.lifetime);
      if (lifetime && approximateDays(lifetime) > 396) {
        warning('long_cookie', at('lifetime'), `cookie "${cookie.name}" lives longer than 13 months`, 'regulators expect consent cookies to be renewed at least every 13 months');
      }
    }
  });

  // --- signals ----------------------------------------------------------------------------------
  for (const signal of ['gpc', 'dnt'] as const) {
    const declared = policy.signals?.[signal];
    if (!declared) continue;
    const optsOut = declared.opts_out_of ?? [];
    if (!declared.honoured && optsOut.length > 0) {
      error('ignored_signal_with_purposes', ['signals', signal, 'opts_out_of'], `${signal.toUpperCase()} is not honoured, yet opts_out_of lists purposes`, 'set honoured: true, or remove opts_out_of');
    }
    if (declared.honoured && signal === 'gpc' && optsOut.length === 0) {
      error('honoured_signal_without_purposes', ['signals', signal, 'honoured'], 'GPC is honoured but opts out of no purpose', 'list the sale, sharing and targeted-advertising purposes under opts_out_of');
    }
    optsOut.forEach((purposeId, j) => {
      if (!checkRef('purpose', purposes, purposeId, ['signals', signal, 'opts_out_of', j])) return;
      if (effectiveChoice(purposeById.get(purposeId)!) === 'none') {
        error('signal_on_necessary_purpose', ['signals', signal, 'opts_out_of', j], `purpose "${purposeId}" is necessary (choice: none); a signal cannot opt out of it`);
      }
    });
  }

  // --- storage and transfers --------------------------------------------------------------------
  policy.storage.transfers?.forEach((transfer, index) => {
    if (!policy.storage.regions.includes(transfer.to) && !policy.recipients?.some((recipient) => recipient.regions?.includes(transfer.to))) {
      warning('transfer_to_undeclared_region', ['storage', 'transfers', index, 'to'], `transfers go to ${transfer.to}, but neither storage.regions nor any recipient is there`);
    }
  });

  // --- children ---------------------------------------------------------------------------------
  if (policy.children?.directed_to_children && policy.children.minimum_age >= 13) {
    warning('children_minimum_age', ['children', 'minimum_age'], `the service is directed to children, yet the minimum age is ${policy.children.minimum_age}`);
  }

  // --- datasets ---------------------------------------------------------------------------------
  const exceptions = new Map<string, string[]>();
  for (const rule of policy.retention) for (const exception of rule.exceptions ?? []) exceptions.set(exception.id, exception.categories);
  policy.datasets?.forEach((dataset, index) => {
    const at = (...rest: PathSegment[]) => ['datasets', index, ...rest];
    const collectionIndex = new Map<string, number>();
    const checkException = (id: string, categories: string[], path: PathSegment[]) => {
      const covered = exceptions.get(id);
      if (!covered) {
        const guess = closestMatch(id, exceptions.keys());
        error('unknown_exception', path, `unknown retention exception "${id}"`, guess ? `did you mean "${guess}"?` : 'declare it under retention[].exceptions');
        return;
      }
      const outside = categories.filter((category) => !covered.some((reference) => covers(reference, category)));
      if (outside.length > 0) warning('exception_does_not_cover', path, `retention exception "${id}" does not cover ${outside.join(', ')}`, `add them to the exception's categories`);
    };
    dataset.collections.forEach((collection, c) => {
      const first = collectionIndex.get(collection.name);
      if (first !== undefined) error('duplicate_collection', at('collections', c, 'name'), `collection "${collection.name}" is already declared at datasets[${index}].collections[${first}]`);
      else collectionIndex.set(collection.name, c);
      const fieldNames = new Map<string, number>();
      collection.fields?.forEach((field, f) => {
        const fieldAt = (...rest: PathSegment[]) => at('collections', c, 'fields', f, ...rest);
        const firstField = fieldNames.get(field.name);
        if (firstField !== undefined) error('duplicate_field', fieldAt('name'), `field "${field.name}" is already declared at fields[${firstField}]`);
        else fieldNames.set(field.name, f);
        if (checkCategory(field.category, fieldAt('category')) && !policy.collection.some((entry) => entry.categories.some((reference) => covers(reference, field.category)))) {
          warning('dataset_category_not_collected', fieldAt('category'), `category "${field.category}" is held in dataset "${dataset.id}" but no collection entry declares it`, 'declare it under collection: so the published policy says it is collected');
        }
        if (field.erase === 'fixed' && field.erase_value === undefined) error('missing_erase_value', fieldAt('erase'), 'erase: fixed needs erase_value: the value written instead');
        if (field.erase_value !== undefined && field.erase !== 'fixed') error('unexpected_erase_value', fieldAt('erase_value'), 'erase_value is only used with erase: fixed');
        if (collection.primary_key.includes(field.name) && field.erase && field.erase !== 'delete_row') {
          error('erase_primary_key', fieldAt('erase'), `"${field.name}" is part of the primary key: erasure can delete the row, not change the key`, 'use erase: delete_row, or leave erase out');
        }
        if (field.exception) checkException(field.exception, [field.category], fieldAt('exception'));
      });
      if (collection.exception) checkException(collection.exception, (collection.fields ?? []).map((field) => field.category), at('collections', c, 'exception'));
      if (!collection.timestamp) {
        // Retention counted from collection needs to know when each row was written.
        const ageless = (collection.fields ?? []).filter((field) => {
          const rules = policy.retention.filter((rule) => (rule.categories ?? []).some((reference) => covers(reference, field.category)));
          return rules.length > 0 && rules.every((rule) => rule.trigger === 'collected');
        });
        if (ageless.length > 0) {
          warning(
            'retention_without_timestamp',
            at('collections', c, 'name'),
            `collection "${collection.name}" declares no timestamp, but ${ageless.map((field) => `"${field.name}"`).join(', ')} ${ageless.length === 1 ? 'is' : 'are'} kept by retention counted from collection: ${ageless.length === 1 ? 'it' : 'they'} can never expire`,
            'name the column that records when each row was written: timestamp: created_at',
          );
        }
      }
    });

    const graph = buildGraph(dataset);
    const referenceAt = (collection: string, referenceIndex: number) => at('collections', collectionIndex.get(collection)!, 'references', referenceIndex);
    for (const dangling of graph.dangling) {
      const guess = closestMatch(dangling.target, graph.collections);
      error('dangling_reference', [...referenceAt(dangling.declaredIn, dangling.referenceIndex), 'to'], `collection "${dangling.declaredIn}" refers to "${dangling.target}", which dataset "${dataset.id}" does not declare`, guess ? `did you mean "${guess}"?` : 'declare the collection, or remove the reference');
    }
    if (graph.entries.length === 0) {
      error('dataset_without_identity', at('collections'), `dataset "${dataset.id}" has no identity field, so no request can find a person in it`, 'mark the column that holds the email or user id with identity: email (or user_id, phone…)');
      return;
    }
    const dependencyCycle = findCycle(graph.collections, graph.dependencies, (edge) => [edge.child, edge.parent]);
    if (dependencyCycle) {
      const { edge, path } = dependencyCycle;
      error('reference_cycle', referenceAt(edge.declaredIn, edge.referenceIndex), `references form a cycle between "${edge.child}" and "${edge.parent}" (${path.join(' → ')}), so erasure has no order to follow`, 'remove one reference of the cycle (or declare the column as a plain field)');
      return;
    }
    const ownershipCycle = findCycle(graph.collections, graph.ownership, (edge) => [edge.from, edge.to]);
    if (ownershipCycle) {
      const { edge, path } = ownershipCycle;
      error('reference_cycle', referenceAt(edge.declaredIn, edge.referenceIndex), `ownership forms a cycle between "${edge.from}" and "${edge.to}" (${path.join(' → ')})`, 'check the owner: of the references in the cycle');
      return;
    }
    const reached = reachable(graph);
    for (const name of graph.collections) {
      // A collection whose reference dangles is reported once, for the reference.
      if (reached.has(name) || graph.dangling.some((dangling) => dangling.declaredIn === name)) continue;
      error('unreachable_collection', at('collections', collectionIndex.get(name)!, 'name'), `collection "${name}" cannot be reached from the person's identities (in ${graph.entries.join(', ')})`, 'add a reference to a collection that is reached, or an identity field');
    }
  });

  return issues;
}
