#!/usr/bin/env node
// Runs every compiled test file (dist/**/*.test.js) with Node's own test runner.
// Node 20 cannot expand globs for --test, so the files are listed here.
// A TAP copy of the results goes to $PLEDGE_TEST_TAP when set (the CI script counts it).
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname), '..');
const dist = path.join(root, 'dist');

function findTests(directory, found = []) {
  for (const entry of readdirSync(directory)) {
    const full = path.join(directory, entry);
    if (statSync(full).isDirectory()) findTests(full, found);
    else if (entry.endsWith('.test.js')) found.push(full);
  }
  return found;
}

const filters = process.argv.slice(2);
const files = findTests(dist)
  .filter((file) => filters.length === 0 || filters.some((filter) => file.includes(filter)))
  .sort();
if (files.length === 0) {
  console.error('no test files found under dist/ — run `npm run build` first');
  process.exit(1);
}

const args = ['--enable-source-maps', '--test', '--test-reporter=spec', '--test-reporter-destination=stdout'];
if (process.env.PLEDGE_TEST_TAP) {
  args.push('--test-reporter=tap', `--test-reporter-destination=${process.env.PLEDGE_TEST_TAP}`);
}
const result = spawnSync(process.execPath, [...args, ...files], { stdio: 'inherit', cwd: root });
process.exit(result.status ?? 1);
