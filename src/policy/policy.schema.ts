import Type, { type Static, type TSchema } from 'typebox';
import { BUILT_IN_CATEGORIES } from './taxonomy.js';

/**
 * The policy language: the JSON Schema of `pledge.yaml`, written once in TypeBox. It serves
 * validation (with file:line errors, see policy.load.ts), the TypeScript types of the engine,
 * and the published schema editors use to autocomplete the file (`pledge policy schema`).
 *
 * Keys are snake_case. Lists of things that other parts refer to carry an `id`
 * (lowercase, digits, underscores), so references read like `purposes: [marketing]`.
 *
 * Cross-references (a purpose naming an unknown category, a recipient receiving data no
 * purpose allows, a collected category with no retention rule…) are not expressible in JSON
 * Schema; policy.checks.ts performs them after this schema passes.
 */

// `x-hint` is read by the validator to explain a failed pattern in words.
const Id = (description: string) =>
  Type.String({ pattern: '^[a-z][a-z0-9_]*$', maxLength: 64, description, 'x-hint': 'lowercase letters, digits and underscores, starting with a letter (e.g. "order_fulfilment")' });
const Text = (description: string, maxLength = 4000) => Type.String({ minLength: 1, maxLength, description });
const Url = (description: string) => Type.String({ format: 'uri', pattern: '^https?://', maxLength: 2000, description, 'x-hint': 'an http:// or https:// address' });
const Email = (description: string) => Type.String({ format: 'email', maxLength: 320, description, 'x-hint': 'an email address such as privacy@example.com' });
const DateString = (description: string) => Type.String({ format: 'date', description, 'x-hint': 'a date written YYYY-MM-DD' });
const CategoryRef = Type.String({
  pattern: '^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)*$',
  description: 'A data category from the taxonomy, dotted from general to specific (e.g. user.contact.email). Naming a category covers all categories below it.',
  'x-hint': 'a dotted category name such as "user.contact.email"',
  // Offered by editors as completions; categories a policy declares itself are valid too.
  examples: [...BUILT_IN_CATEGORIES.keys()],
});
const CategoryList = (description: string) => Type.Array(CategoryRef, { minItems: 1, uniqueItems: true, description });
const IdList = (description: string) => Type.Array(Id(description), { uniqueItems: true, description });
const RegionCode = Type.String({
  pattern: '^([A-Z]{2}(-[A-Z0-9]{1,3})?|EU|EEA|WORLD)$',
  description: 'An ISO 3166 country code (US, CA, DE), a subdivision (US-CA), or EU, EEA, WORLD.',
  'x-hint': 'an ISO 3166 code such as "US", "US-CA", or EU, EEA, WORLD',
});

/** Durations in words or ISO 8601, parsed by policy/duration.ts. */
export const DURATION_PATTERN =
  '^((\\d+) (hour|hours|day|days|week|weeks|month|months|year|years)|P(?=\\d)(\\d+Y)?(\\d+M)?(\\d+W)?(\\d+D)?(T\\d+H)?)$';
const Duration = (description: string) =>
  Type.String({ pattern: DURATION_PATTERN, description, 'x-hint': 'a duration such as "30 days", "6 months", "2 years" or ISO 8601 "P30D"' });
export const DEADLINE_PATTERN = '^(\\d+) (calendar |business )?(day|days)$';
const Deadline = (description: string) =>
  Type.String({ pattern: DEADLINE_PATTERN, description, 'x-hint': 'a deadline such as "30 days", "45 calendar days" or "2 business days"' });

const strict = { additionalProperties: false } as const;

// ---------------------------------------------------------------------------------------------

export const LEGAL_BASES = ['consent', 'contract', 'legitimate_interest', 'legal_obligation', 'vital_interest', 'public_task'] as const;
export const CHOICES = ['opt_in', 'opt_out', 'none'] as const;
export const SOURCES = ['person', 'automatic', 'partner', 'other_person', 'staff'] as const;
export const RECIPIENT_ROLES = ['processor', 'controller', 'affiliate', 'authority', 'acquirer', 'public'] as const;
export const RETENTION_TRIGGERS = ['collected', 'last_activity', 'account_closed'] as const;
export const RETENTION_ACTIONS = ['delete', 'anonymize'] as const;
export const RIGHT_TYPES = ['access', 'portability', 'correction', 'erasure', 'restriction', 'objection', 'withdraw_consent'] as const;
export const CHANNEL_KINDS = ['email', 'web', 'privacy_center', 'account', 'postal', 'phone'] as const;
export const VERIFICATION_METHODS = ['email_code', 'signed_in', 'none'] as const;
export const COMMUNICATION_KINDS = ['service', 'marketing', 'policy_change', 'request_notice'] as const;
export const MESSAGE_CHANNELS = ['email', 'sms', 'push', 'in_app', 'postal'] as const;
export const CONTACT_ROLES = ['privacy', 'security', 'general', 'support', 'dpo', 'legal', 'representative'] as const;
export const MEASURE_KINDS = ['technical', 'organizational', 'physical'] as const;
export const TRANSFER_MECHANISMS = ['adequacy', 'scc', 'bcr', 'dpf', 'consent', 'contract', 'derogation'] as const;
export const CHANGE_CHANNELS = ['email', 'website', 'in_app'] as const;
export const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
export const HOLIDAY_PRESETS = ['none', 'us_federal'] as const;

const Enum = <T extends readonly string[]>(values: T, description: string) =>
  Type.Enum([...values] as unknown as T[number][], { description });

const Contact = Type.Object(
  {
    role: Enum(CONTACT_ROLES, 'What this contact is for: privacy questions and requests, security reports, general enquiries…'),
    name: Type.Optional(Text('A person or team name.', 200)),
    email: Type.Optional(Email('Email address.')),
    phone: Type.Optional(Type.String({ pattern: '^\\+?[0-9 ()./-]{5,30}$', description: 'Phone number, ideally in international form (+1 760 600 8414).', 'x-hint': 'a phone number such as "+1 760 600 8414"' })),
    postal: Type.Optional(Text('Postal address, lines separated by commas or newlines.', 500)),
    url: Type.Optional(Url('A contact form or page.')),
  },
  strict,
);

const Organization = Type.Object(
  {
    name: Text('The name people know the company by.', 200),
    legal_name: Type.Optional(Text('The registered legal entity that acts as controller.', 200)),
    website: Type.Optional(Url('The public website.')),
    address: Type.Optional(Text('Registered address.', 500)),
    jurisdiction: Type.Optional(RegionCode),
    description: Type.Optional(Text('One or two sentences on what the company does and what this policy covers.')),
    services: Type.Optional(Type.Array(Text('A product or service this policy covers.', 200), { minItems: 1, description: 'The products and services this policy covers.' })),
    contacts: Type.Array(Contact, { minItems: 1, description: 'How to reach the company about privacy. At least one contact.' }),
  },
  strict,
);

const PolicyMeta = Type.Object(
  {
    version: Type.String({ minLength: 1, maxLength: 40, description: 'The version of this policy document, e.g. "1.3" or "2026-11".' }),
    effective_date: DateString('The date this version takes effect.'),
    title: Type.Optional(Text('Title of the rendered document (default: "<organization> Privacy Policy").', 200)),
    language: Type.Optional(Type.String({ pattern: '^[a-z]{2}(-[A-Z]{2})?$', description: 'BCP 47 language of the texts (default en).', 'x-hint': 'a language tag such as "en" or "en-US"' })),
    summary: Type.Optional(Text('A short introduction shown at the top of the rendered policy.')),
    scope: Type.Optional(Text('What the policy applies to and what it does not (e.g. linked third-party sites).')),
  },
  strict,
);

const SubjectKind = Type.Object(
  {
    id: Id('Identifier used in references, e.g. customer.'),
    name: Text('Plural name for people of this kind, e.g. "Customers".', 100),
    description: Type.Optional(Text('Who they are.')),
  },
  strict,
);

const CustomCategory = Type.Object(
  {
    id: CategoryRef,
    name: Text('Human name used in the rendered policy.', 100),
    description: Type.Optional(Text('What this category holds.')),
    sensitive: Type.Optional(Type.Boolean({ description: 'Special-category or otherwise sensitive data.' })),
  },
  strict,
);

const Source = Type.Object(
  {
    id: Id('Identifier used by collection entries with source: partner.'),
    name: Text('The partner or service data is received from.', 200),
    description: Type.Optional(Text('What is received and on what terms.')),
    privacy_policy_url: Type.Optional(Url("The partner's own privacy policy.")),
  },
  strict,
);

const Collection = Type.Object(
  {
    id: Id('Identifier of this collection point.'),
    description: Type.Optional(Text('How and when this data is collected, in words.')),
    categories: CategoryList('Data categories collected here.'),
    subjects: Type.Array(Id('A subject kind id.'), { minItems: 1, uniqueItems: true, description: 'Subject kinds this collection concerns.' }),
    source: Enum(SOURCES, 'Where the data comes from: the person themselves, automatic collection (logs, cookies), a named partner, another person (a referral), or staff.'),
    partner: Type.Optional(Id('With source: partner, the id of the source it comes from.')),
    method: Type.Optional(Text('The mechanism: registration form, clickstream logging, payment integration…', 300)),
    required_for: Type.Optional(IdList('Purposes for which providing this data is mandatory; for every other purpose it is optional.')),
  },
  strict,
);

const Purpose = Type.Object(
  {
    id: Id('Identifier used in API calls (?purpose=…) and references.'),
    name: Text('Short human name.', 120),
    description: Text('What the data is used for, in words a person understands.'),
    legal_basis: Enum(LEGAL_BASES, 'The legal basis for this processing.'),
    choice: Type.Optional(Enum(CHOICES, 'opt_in: used only after the person agrees; opt_out: used until the person objects; none: necessary, no choice. Default: opt_in for consent, opt_out for legitimate_interest, none otherwise.')),
    categories: CategoryList('Data categories this purpose may use; reads for this purpose return only these.'),
    subjects: Type.Optional(Type.Array(Id('A subject kind id.'), { minItems: 1, uniqueItems: true, description: 'Subject kinds this purpose applies to (default: all).' })),
    profiling: Type.Optional(Type.Boolean({ description: 'The purpose builds profiles of people (e.g. from browsing or purchase history).' })),
    automated_decisions: Type.Optional(Type.Boolean({ description: 'The purpose takes decisions with legal or similar effect without a human.' })),
    disclosure: Type.Optional(
      Type.Boolean({
        description:
          'The purpose is only the passing of data to the recipients that serve it (e.g. sharing with affiliated companies): it is refused for a person who opted out of every opt-out recipient serving it, unless a recipient without opt_out serves it too.',
      }),
    ),
  },
  strict,
);

const Recipient = Type.Object(
  {
    id: Id('Identifier of the recipient.'),
    name: Text('Who receives the data (a company, or a class such as "Law enforcement authorities").', 200),
    role: Enum(RECIPIENT_ROLES, 'processor (acts on our instructions), controller (independent), affiliate (same group), authority (law enforcement, courts), acquirer (in a merger or sale), public (posted publicly by the person).'),
    description: Type.Optional(Text('What they do with it.')),
    purposes: Type.Array(Id('A purpose id.'), { minItems: 1, uniqueItems: true, description: 'Purposes for which data goes to this recipient.' }),
    categories: CategoryList('Data categories the recipient receives; each must be allowed by one of its purposes.'),
    regions: Type.Optional(Type.Array(RegionCode, { minItems: 1, uniqueItems: true, description: 'Where the recipient processes the data.' })),
    condition: Type.Optional(Text('When the disclosure happens (e.g. "only when required by law, court order or legal process").', 500)),
    safeguards: Type.Optional(Text('Contractual or technical safeguards that bind the recipient.', 500)),
    opt_out: Type.Optional(Type.Boolean({ description: 'The person can opt out of sharing with this recipient: a choice of its own in the consent ledger, which stops what goes to it without stopping our own use of the data for the same purposes.' })),
    privacy_policy_url: Type.Optional(Url("The recipient's own privacy policy.")),
  },
  strict,
);

const Sharing = Type.Object(
  {
    sells_personal_data: Type.Boolean({ description: 'Whether personal data is sold. Pledge refuses to record a sale when false.' }),
    aggregate_statistics: Type.Optional(
      Type.Object(
        {
          shared: Type.Boolean({ description: 'Aggregate, non-personal statistics are shared with third parties.' }),
          description: Type.Optional(Text('What is shared, e.g. "the number of users by region".')),
          minimum_group_size: Type.Optional(Type.Integer({ minimum: 2, maximum: 1000000, description: 'Smallest group a released figure may describe, so no one is singled out.' })),
        },
        strict,
      ),
    ),
  },
  strict,
);

const RetentionException = Type.Object(
  {
    id: Id('Identifier of the exception.'),
    reason: Enum(['legal_obligation', 'legal_claims', 'fraud_prevention'] as const, 'Why data is kept beyond the rule.'),
    description: Text('The obligation, e.g. "invoices are kept for tax law".', 500),
    categories: CategoryList('Categories kept under this exception (restricted, not used for anything else).'),
    duration: Duration('How long they are kept under the exception.'),
  },
  strict,
);

const RetentionRule = Type.Object(
  {
    id: Id('Identifier of the rule.'),
    description: Type.Optional(Text('The rule in words.', 500)),
    categories: Type.Optional(CategoryList('Categories the rule applies to.')),
    purposes: Type.Optional(Type.Array(Id('A purpose id.'), { minItems: 1, uniqueItems: true, description: 'Or: the categories these purposes use.' })),
    subjects: Type.Optional(Type.Array(Id('A subject kind id.'), { minItems: 1, uniqueItems: true, description: 'Limit the rule to these subject kinds.' })),
    duration: Duration('How long after the trigger the data is deleted or anonymised ("0 days" means at once).'),
    trigger: Enum(RETENTION_TRIGGERS, 'When the clock starts: when the data was collected, at the last activity of the person, or when the account is closed.'),
    action: Enum(RETENTION_ACTIONS, 'What happens at the end: delete, or anonymise (keep the record without the person).'),
    exceptions: Type.Optional(Type.Array(RetentionException, { description: 'Legal-obligation exceptions: data kept longer, restricted.' })),
  },
  strict,
);

const Channel = Type.Object(
  {
    kind: Enum(CHANNEL_KINDS, 'How a request reaches us: email, web form, the privacy center, the signed-in account pages, post or phone.'),
    address: Type.Optional(Text('The email address, URL, postal address or phone number.', 500)),
    description: Type.Optional(Text('Instructions for this channel.', 500)),
  },
  strict,
);

const Right = Type.Object(
  {
    type: Enum(RIGHT_TYPES, 'The right.'),
    description: Type.Optional(Text('The right in the words of the policy.', 500)),
    channels: Type.Array(Channel, { minItems: 1, description: 'How to exercise it.' }),
    deadline: Deadline('How fast the request is answered.'),
    extension: Type.Optional(
      Type.Object(
        {
          deadline: Deadline('Additional time that may be taken, with a reason given to the person.'),
          reason_required: Type.Optional(Type.Boolean({ description: 'An extension must state its reason (default true).' })),
        },
        strict,
      ),
    ),
    verification: Type.Optional(Enum(VERIFICATION_METHODS, 'How the person proves who they are: a code sent by email, an existing signed-in session, or nothing.')),
    self_service: Type.Optional(Type.Boolean({ description: 'The person can do it at once themselves (e.g. edit their profile).' })),
    regions: Type.Optional(Type.Array(RegionCode, { minItems: 1, uniqueItems: true, description: 'Only people in these regions have this right (default: everyone).' })),
  },
  strict,
);

const Rights = Type.Object(
  {
    calendar: Type.Optional(
      Type.Object(
        {
          business_days: Type.Optional(Type.Array(Enum(WEEKDAYS, 'A working day.'), { minItems: 1, uniqueItems: true, description: 'Days that count as business days (default mon–fri).' })),
          holidays: Type.Optional(Enum(HOLIDAY_PRESETS, 'A built-in holiday calendar that does not count as business days.')),
          extra_holidays: Type.Optional(Type.Array(DateString('A holiday.'), { uniqueItems: true, description: 'Additional non-business dates.' })),
          timezone: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'IANA time zone deadlines are counted in (default UTC).' })),
        },
        strict,
      ),
    ),
    requests: Type.Array(Right, { minItems: 1, description: 'The rights people have and how they are honoured.' }),
    packages: Type.Optional(
      Type.Object(
        {
          expire_after: Duration('How long an access or portability package stays available for download before it is deleted (default 30 days).'),
        },
        strict,
      ),
    ),
    complaints: Type.Optional(
      Type.Object(
        {
          description: Type.Optional(Text('How disputes are resolved.', 500)),
          channels: Type.Array(Channel, { minItems: 1 }),
          deadline: Type.Optional(Deadline('How fast a complaint is answered.')),
          authority: Type.Optional(Text('The supervisory authority a person may complain to.', 300)),
        },
        strict,
      ),
    ),
  },
  strict,
);

const Communication = Type.Object(
  {
    id: Id('Identifier of the communication topic (e.g. newsletter).'),
    name: Text('Name shown in preferences and mail footers.', 120),
    kind: Enum(COMMUNICATION_KINDS, 'service (about what the person uses; always sent), marketing (only with the purpose allowed; unsubscribe in every message), policy_change, request_notice.'),
    purpose: Id('The purpose this mail serves; marketing mail is sent only while it is allowed.'),
    channels: Type.Array(Enum(MESSAGE_CHANNELS, 'A delivery channel.'), { minItems: 1, uniqueItems: true }),
    subjects: Type.Optional(Type.Array(Id('A subject kind id.'), { minItems: 1, uniqueItems: true, description: 'Who receives it (default: all).' })),
    description: Type.Optional(Text('What it contains and how often.', 500)),
  },
  strict,
);

const Cookie = Type.Object(
  {
    name: Type.String({ pattern: '^[!#$%&\'*+.^_`|~0-9A-Za-z-]+$', maxLength: 200, description: 'The cookie name as set in the browser.', 'x-hint': 'a cookie name (letters, digits and !#$%&\'*+.^_`|~-)' }),
    provider: Type.String({ minLength: 1, maxLength: 64, description: 'first_party, or the id of the recipient or source that sets it.' }),
    purpose: Id('The purpose the cookie serves; it is set only while the purpose is allowed.'),
    lifetime: Type.Union([Type.Literal('session'), Duration('How long the cookie lives.')], { description: '"session", or a duration such as "30 days".' }),
    description: Text('What it does, in words.', 500),
    categories: Type.Optional(CategoryList('Personal data the cookie holds (usually user.device.cookie_id).')),
  },
  strict,
);

const Signal = Type.Object(
  {
    honoured: Type.Boolean({ description: 'Whether the signal is honoured.' }),
    opts_out_of: Type.Optional(IdList('Purposes the signal opts the person out of.')),
  },
  strict,
);

const Children = Type.Object(
  {
    minimum_age: Type.Integer({ minimum: 0, maximum: 21, description: 'Youngest age for which data is accepted; younger people are refused.' }),
    directed_to_children: Type.Optional(Type.Boolean({ description: 'The service is directed to children.' })),
    description: Type.Optional(Text('The statement on children in words.', 500)),
  },
  strict,
);

const Storage = Type.Object(
  {
    regions: Type.Array(RegionCode, { minItems: 1, uniqueItems: true, description: 'Where personal data is stored.' }),
    description: Type.Optional(Text('The infrastructure in words.', 500)),
    transfers: Type.Optional(
      Type.Array(
        Type.Object(
          {
            from: Type.Optional(RegionCode),
            to: RegionCode,
            mechanism: Enum(TRANSFER_MECHANISMS, 'The legal mechanism for the transfer.'),
            description: Type.Optional(Text('The transfer in words.', 500)),
          },
          strict,
        ),
        { description: 'International transfers and their safeguards.' },
      ),
    ),
  },
  strict,
);

const Security = Type.Object(
  {
    measures: Type.Array(
      Type.Object(
        {
          id: Id('Identifier of the measure.'),
          kind: Enum(MEASURE_KINDS, 'technical (software), organizational (people and process), physical (buildings and hardware).'),
          description: Text('The measure in words.', 500),
          enforced_by: Type.Optional(Enum(['pledge', 'company'] as const, 'pledge: the engine enforces it itself; company: an operational commitment Pledge cannot check (default).')),
        },
        strict,
      ),
      { minItems: 1 },
    ),
    disclaimer: Type.Optional(Text('Limits of what security can promise.', 1000)),
  },
  strict,
);

const Changes = Type.Object(
  {
    notify: Type.Array(
      Type.Object(
        {
          audience: Enum(['registered', 'everyone'] as const, 'Who is told: people with an account (or otherwise known address), or everyone (by posting).'),
          channel: Enum(CHANGE_CHANNELS, 'How they are told.'),
          material_only: Type.Optional(Type.Boolean({ description: 'Only for material changes (default true for email and in_app, false for website).' })),
        },
        strict,
      ),
      { minItems: 1, description: 'How people learn of a new version.' },
    ),
    advance_notice: Type.Optional(Duration('How long before a material change takes effect people are told.')),
    acceptance: Enum(['continued_use', 'explicit'] as const, 'How a new version is accepted: by continuing to use the service, or by an explicit acceptance recorded per person.'),
    description: Type.Optional(Text('The change policy in words.', 500)),
  },
  strict,
);

const Notice = Type.Object(
  {
    id: Id('Identifier of the notice.'),
    title: Text('Section title.', 120),
    text: Text('The statement, in words; rendered as written.', 4000),
  },
  strict,
);

// --- datasets: the company's own datastores that requests and retention reach -------------------

export const ERASURE_STRATEGIES = ['set_null', 'fixed', 'hash', 'random', 'delete_row'] as const;
export const DATASET_IDENTITY_KINDS = ['email', 'user_id', 'phone', 'external_id', 'cookie_id'] as const;
export const REFERENCE_OWNERS = ['target', 'this'] as const;

// Names of tables and columns as the datastore spells them; quoted when used, never interpolated raw.
const SqlName = (description: string) =>
  Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$', maxLength: 63, description, 'x-hint': 'a table or column name: letters, digits and underscores, not starting with a digit' });
const EnvName = (description: string) =>
  Type.String({ pattern: '^[A-Z_][A-Z0-9_]*$', maxLength: 100, description, 'x-hint': 'an environment variable name such as SHOP_DATABASE_URL' });

const DatasetField = Type.Object(
  {
    name: SqlName('The column (or, over HTTP, the field) name.'),
    category: CategoryRef,
    identity: Type.Optional(Enum(DATASET_IDENTITY_KINDS, "This column holds one of the person's identities: requests start from the rows whose value matches.")),
    erase: Type.Optional(Enum(ERASURE_STRATEGIES, 'What erasure does to the value: set_null (default), fixed (write erase_value), hash (keyed hash of the value: stays unique, no longer personal), random, or delete_row (the whole row goes).')),
    erase_value: Type.Optional(Type.Union([Type.String({ maxLength: 200 }), Type.Number(), Type.Boolean()], { description: 'With erase: fixed, the value written instead.' })),
    exception: Type.Optional(Id('A retention exception id (retention[].exceptions[].id): the value is kept under that legal obligation, restricted, and listed in the erasure result.')),
  },
  strict,
);

const DatasetReference = Type.Object(
  {
    field: SqlName('The column of this collection that refers to another collection (a foreign key).'),
    to: Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*\\.[A-Za-z_][A-Za-z0-9_]*$', maxLength: 127, description: 'The referenced collection and column, as collection.column.', 'x-hint': 'collection.column, e.g. customers.id' }),
    owner: Type.Optional(Enum(REFERENCE_OWNERS, 'Whose rows these are: target (default) — a row here belongs to the person who owns the referenced row (an order of a customer); this — the referenced row belongs to the person who owns this row (the address a customer row points to).')),
  },
  strict,
);

const DatasetCollection = Type.Object(
  {
    name: SqlName('The table (or, over HTTP, the collection) name.'),
    description: Type.Optional(Text('What the collection holds.', 500)),
    primary_key: Type.Array(SqlName('A primary-key column.'), { minItems: 1, uniqueItems: true, description: 'The primary-key columns; rows are named by them in results and audit counts.' }),
    timestamp: Type.Optional(SqlName('A column holding when the row was created or last changed; retention rules whose categories this collection holds expire rows by it.')),
    fields: Type.Optional(Type.Array(DatasetField, { description: 'Columns holding personal data, with their category and erasure strategy. Undeclared columns are never read.' })),
    references: Type.Optional(Type.Array(DatasetReference, { description: 'Foreign keys to other collections of the datastore: how the planner reaches this collection from the person, and the order erasure follows.' })),
    exception: Type.Optional(Id('A retention exception id: every row of this collection is kept under that legal obligation (restricted, not erased).')),
    restrict_column: Type.Optional(SqlName('A boolean column set to true on rows kept under an exception, so the application can restrict their use.')),
  },
  strict,
);

const Dataset = Type.Object(
  {
    id: Id('Identifier of the connected datastore.'),
    description: Type.Optional(Text('What the datastore holds.')),
    connection: Type.Object(
      {
        env: EnvName('The environment variable holding the connection URL: postgres://…, mysql://… (MariaDB too), sqlite:path, or https://… for an HTTP endpoint. Never the credential itself.'),
        secret_env: Type.Optional(EnvName('HTTP only: the environment variable holding the secret requests are signed with.')),
        timeout_seconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 3600, description: 'How long one query or HTTP call may take (default 30).' })),
      },
      { ...strict, description: 'How to reach the datastore: by environment variable name, so no credential is written in the policy.' },
    ),
    collections: Type.Array(DatasetCollection, { minItems: 1, description: 'The tables (or collections) holding personal data.' }),
  },
  {
    ...strict,
    description: 'A connected datastore (the shop, CRM or billing database) that data-subject requests and retention reach.',
  },
);

export const PolicySchema = Type.Object(
  {
    $schema: Type.Optional(Type.String({ description: 'Path or URL of this JSON Schema, for editors.' })),
    pledge: Type.Literal(1, { description: 'Version of the policy language. Always 1 for now.' }),
    policy: PolicyMeta,
    organization: Organization,
    subject_kinds: Type.Array(SubjectKind, { minItems: 1, description: 'Kinds of people the company holds data about.' }),
    categories: Type.Optional(Type.Array(CustomCategory, { description: 'Data categories added to the built-in taxonomy. Each id must extend an existing category (user.account.licence_usage under user.account).' })),
    sources: Type.Optional(Type.Array(Source, { description: 'Named partners that provide personal data.' })),
    collection: Type.Array(Collection, { minItems: 1, description: 'What is collected, about whom, from where.' }),
    purposes: Type.Array(Purpose, { minItems: 1, description: 'Why data is used. Every read of personal data names one.' }),
    recipients: Type.Optional(Type.Array(Recipient, { description: 'Who receives personal data.' })),
    sharing: Sharing,
    retention: Type.Array(RetentionRule, { minItems: 1, description: 'How long data is kept. Every collected category needs a rule.' }),
    rights: Rights,
    communications: Type.Optional(Type.Array(Communication, { description: 'Mail and messages sent to people, by topic.' })),
    cookies: Type.Optional(Type.Array(Cookie, { description: 'Cookies and similar browser storage.' })),
    signals: Type.Optional(
      Type.Object(
        {
          gpc: Type.Optional(Signal),
          dnt: Type.Optional(Signal),
        },
        { ...strict, description: 'Browser privacy signals: Global Privacy Control and Do Not Track.' },
      ),
    ),
    children: Type.Optional(Children),
    storage: Storage,
    security: Type.Optional(Security),
    changes: Changes,
    notices: Type.Optional(Type.Array(Notice, { description: 'Further statements rendered as written (links to other sites, public forums…).' })),
    datasets: Type.Optional(Type.Array(Dataset, { description: 'Connected datastores reached by data-subject requests and retention.' })),
  },
  { ...strict, title: 'Pledge policy', description: 'A privacy policy as code: the source of truth for what Pledge allows, refuses and publishes.' },
);

export type PolicyDocument = Static<typeof PolicySchema>;
export type Purpose = Static<typeof Purpose>;
export type Recipient = Static<typeof Recipient>;
export type RetentionRule = Static<typeof RetentionRule>;
export type Right = Static<typeof Right>;
export type Channel = Static<typeof Channel>;
export type Cookie = Static<typeof Cookie>;
export type Communication = Static<typeof Communication>;
export type CollectionEntry = Static<typeof Collection>;
export type LegalBasis = (typeof LEGAL_BASES)[number];
export type Choice = (typeof CHOICES)[number];
export type RightType = (typeof RIGHT_TYPES)[number];
export type DatasetDeclaration = Static<typeof Dataset>;
export type DatasetCollectionDeclaration = Static<typeof DatasetCollection>;
export type DatasetFieldDeclaration = Static<typeof DatasetField>;
export type ErasureStrategy = (typeof ERASURE_STRATEGIES)[number];

/** The published JSON Schema (draft 2020-12 compatible). */
export function policyJsonSchema(): Record<string, unknown> {
  const schema = JSON.parse(JSON.stringify(PolicySchema as TSchema)) as Record<string, unknown>;
  return { $schema: 'https://json-schema.org/draft/2020-12/schema', $id: 'urn:pledge:policy:1', ...schema };
}
