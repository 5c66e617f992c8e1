import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { DEMO_POLICY_PATH, loadConfig } from './config.js';
import { PledgeError } from './errors.js';

const cwd = '/srv/app';

test('defaults: port 4400, SQLite in ./.pledge, the demo policy when there is no pledge.yaml', () => {
  const { config, warnings } = loadConfig({}, {}, cwd);
  assert.equal(config.port, 4400);
  assert.equal(config.host, '127.0.0.1');
  assert.equal(config.dataDir, path.join(cwd, '.pledge'));
  assert.equal(config.databaseUrl, `sqlite:${path.join(cwd, '.pledge', 'pledge.db')}`);
  assert.equal(config.policyPath, DEMO_POLICY_PATH);
  assert.equal(config.policyIsDemo, true);
  assert.equal(config.environment, 'development');
  assert.deepEqual(warnings, []);
  assert.ok(Object.isFrozen(config));
});

test('flags win over environment variables', () => {
  const { config } = loadConfig({ PLEDGE_PORT: '5000', PLEDGE_HOST: '0.0.0.0' }, { port: '6000' }, cwd);
  assert.equal(config.port, 6000);
  assert.equal(config.host, '0.0.0.0');
  assert.equal(config.publicUrl, 'http://0.0.0.0:6000');
});

test('DATABASE_URL selects PostgreSQL; PLEDGE_DATABASE_URL wins over it', () => {
  assert.equal(loadConfig({ DATABASE_URL: 'postgres://a@h/db' }, {}, cwd).config.databaseUrl, 'postgres://a@h/db');
  assert.equal(loadConfig({ DATABASE_URL: 'postgres://a@h/db', PLEDGE_DATABASE_URL: 'postgres://b@h/db' }, {}, cwd).config.databaseUrl, 'postgres://b@h/db');
});

test('PLEDGE_DATABASE_LISTEN_URL: a postgres:// URL or off, only beside a PostgreSQL database, never echoed', () => {
  const pg = { DATABASE_URL: 'postgres://a@pooler/db' };
  assert.equal(loadConfig(pg, {}, cwd).config.databaseListenUrl, undefined);
  assert.equal(loadConfig({ ...pg, PLEDGE_DATABASE_LISTEN_URL: 'off' }, {}, cwd).config.databaseListenUrl, false);
  assert.equal(loadConfig({ ...pg, PLEDGE_DATABASE_LISTEN_URL: 'postgres://a@server/db' }, {}, cwd).config.databaseListenUrl, 'postgres://a@server/db');
  const refused = (env: NodeJS.ProcessEnv, message: RegExp) =>
    assert.throws(() => loadConfig(env, {}, cwd), (error: unknown) => error instanceof PledgeError && error.code === 'config_invalid' && message.test(error.message) && !error.message.includes('s3cret'));
  refused({ ...pg, PLEDGE_DATABASE_LISTEN_URL: 'mysql://root:s3cret@db/x' }, /PLEDGE_DATABASE_LISTEN_URL must be a postgres:\/\/ URL or off/);
  refused({ PLEDGE_DATABASE_LISTEN_URL: 'postgres://a:s3cret@server/db' }, /PLEDGE_DATABASE_LISTEN_URL is for PostgreSQL/);
});

test('an unknown PLEDGE_ variable is named in a warning, with the likely intended one', () => {
  const { warnings } = loadConfig({ PLEDGE_PROT: '1', PLEDGE_SOMETHING_ELSE: 'x' }, {}, cwd);
  assert.equal(warnings.length, 2);
  assert.match(warnings[0]!, /PLEDGE_PROT.*did you mean PLEDGE_PORT\?/);
  assert.match(warnings[1]!, /PLEDGE_SOMETHING_ELSE is ignored/);
});

test('invalid values are refused with the variable named', () => {
  const cases: Array<[NodeJS.ProcessEnv, RegExp]> = [
    [{ PLEDGE_PORT: 'eighty' }, /PLEDGE_PORT must be a port number/],
    [{ PLEDGE_PORT: '70000' }, /PLEDGE_PORT must be a port number/],
    [{ PLEDGE_ENV: 'staging' }, /PLEDGE_ENV must be development or production/],
    [{ PLEDGE_LOG_LEVEL: 'loud' }, /PLEDGE_LOG_LEVEL must be one of/],
    [{ PLEDGE_PUBLIC_URL: 'ftp://x' }, /PLEDGE_PUBLIC_URL must be an http/],
    [{ PLEDGE_BODY_LIMIT: '10' }, /PLEDGE_BODY_LIMIT/],
  ];
  for (const [env, message] of cases) {
    assert.throws(() => loadConfig(env, {}, cwd), (error: unknown) => error instanceof PledgeError && error.code === 'config_invalid' && message.test(error.message));
  }
});

test('a bad database URL is refused without echoing it (it may hold a password)', () => {
  assert.throws(
    () => loadConfig({ DATABASE_URL: 'mysql://root:s3cret@db/x' }, {}, cwd),
    (error: unknown) => error instanceof PledgeError && /DATABASE_URL/.test(error.message) && !error.message.includes('s3cret'),
  );
});

test('NODE_ENV=production implies production unless PLEDGE_ENV says otherwise', () => {
  assert.equal(loadConfig({ NODE_ENV: 'production' }, {}, cwd).config.environment, 'production');
  assert.equal(loadConfig({ NODE_ENV: 'production', PLEDGE_ENV: 'development' }, {}, cwd).config.environment, 'development');
});
