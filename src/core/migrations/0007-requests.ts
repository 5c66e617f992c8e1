import type { Kysely } from 'kysely';

/**
 * Durable jobs (src/core/jobs.ts) and data-subject requests with their per-datastore tasks and
 * packages (src/requests/requests.tables.ts).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('jobs')
    .addColumn('id', 'text', (column) => column.primaryKey())
    .addColumn('kind', 'text', (column) => column.notNull())
    .addColumn('payload', 'text', (column) => column.notNull())
    .addColumn('state', 'text', (column) => column.notNull())
    .addColumn('attempts', 'integer', (column) => column.notNull().defaultTo(0))
    .addColumn('max_attempts', 'integer', (column) => column.notNull())
    .addColumn('run_at', 'text', (column) => column.notNull())
    .addColumn('lease_owner', 'text')
    .addColumn('lease_until', 'text')
    .addColumn('last_error', 'text')
    .addColumn('dedupe_key', 'text', (column) => column.unique())
    .addColumn('created_at', 'text', (column) => column.notNull())
    .addColumn('updated_at', 'text', (column) => column.notNull())
    .execute();
  // The claim query: due jobs by time, and running jobs whose lease ran out.
  await db.schema.createIndex('jobs_due').on('jobs').columns(['state', 'run_at']).execute();
  await db.schema.createIndex('jobs_lease').on('jobs').columns(['state', 'lease_until']).execute();

  await db.schema
    .createTable('requests')
    .addColumn('id', 'text', (column) => column.primaryKey())
    .addColumn('type', 'text', (column) => column.notNull())
    .addColumn('status', 'text', (column) => column.notNull())
    .addColumn('channel', 'text', (column) => column.notNull())
    .addColumn('identities', 'text', (column) => column.notNull())
    .addColumn('identity_kinds', 'text', (column) => column.notNull())
    .addColumn('details', 'text')
    .addColumn('received_at', 'text', (column) => column.notNull())
    .addColumn('due_at', 'text', (column) => column.notNull())
    .addColumn('extended_due_at', 'text')
    .addColumn('extension_reason', 'text')
    .addColumn('verified_at', 'text')
    .addColumn('verification', 'text')
    .addColumn('code_hash', 'text')
    .addColumn('code_expires_at', 'text')
    .addColumn('code_attempts', 'integer', (column) => column.notNull().defaultTo(0))
    .addColumn('code_sends', 'integer', (column) => column.notNull().defaultTo(0))
    .addColumn('decision_reason', 'text')
    .addColumn('run', 'integer', (column) => column.notNull().defaultTo(0))
    .addColumn('result', 'text')
    .addColumn('failure', 'text')
    .addColumn('reminded_at', 'text')
    .addColumn('created_by', 'text', (column) => column.notNull())
    .addColumn('created_at', 'text', (column) => column.notNull())
    .addColumn('updated_at', 'text', (column) => column.notNull())
    .addColumn('completed_at', 'text')
    .execute();
  await db.schema.createIndex('requests_status_due').on('requests').columns(['status', 'due_at']).execute();

  await db.schema
    .createTable('request_tasks')
    .addColumn('id', 'text', (column) => column.primaryKey())
    .addColumn('request_id', 'text', (column) => column.notNull().references('requests.id'))
    .addColumn('datastore', 'text', (column) => column.notNull())
    .addColumn('state', 'text', (column) => column.notNull())
    .addColumn('attempts', 'integer', (column) => column.notNull().defaultTo(0))
    .addColumn('output', 'text')
    .addColumn('summary', 'text')
    .addColumn('last_error', 'text')
    .addColumn('created_at', 'text', (column) => column.notNull())
    .addColumn('updated_at', 'text', (column) => column.notNull())
    .addColumn('completed_at', 'text')
    .addUniqueConstraint('request_tasks_request_datastore', ['request_id', 'datastore'])
    .execute();

  await db.schema
    .createTable('request_packages')
    .addColumn('id', 'text', (column) => column.primaryKey())
    .addColumn('request_id', 'text', (column) => column.notNull().references('requests.id'))
    .addColumn('format', 'text', (column) => column.notNull())
    .addColumn('content', 'text')
    .addColumn('bytes', 'integer', (column) => column.notNull())
    .addColumn('created_at', 'text', (column) => column.notNull())
    .addColumn('expires_at', 'text', (column) => column.notNull())
    .addColumn('deleted_at', 'text')
    .addUniqueConstraint('request_packages_request_format', ['request_id', 'format'])
    .execute();
  await db.schema.createIndex('request_packages_expires').on('request_packages').columns(['deleted_at', 'expires_at']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('request_packages').execute();
  await db.schema.dropTable('request_tasks').execute();
  await db.schema.dropTable('requests').execute();
  await db.schema.dropTable('jobs').execute();
}
