import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, test } from 'node:test';
import { processTreeCpuMicros } from './process-cpu.js';

// A process that burns CPU until its own count says 300 ms, prints that count, and stays until its stdin ends.
const BURNER = `
let spent = 0;
while (spent < 300_000) { const now = process.cpuUsage(); spent = now.user + now.system; }
process.stdout.write(String(spent) + '\\n');
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
`;

// Its parent, which only waits for it, as the primary of pledge serve --workers N waits for its workers.
const PARENT = `
const child = require('node:child_process').spawn(process.execPath, ['-e', ${JSON.stringify(BURNER)}], { stdio: 'inherit' });
child.on('exit', () => process.exit(0));
`;

describe('the server CPU time the HTTP benchmarks report', { skip: !existsSync('/proc/self/stat') && 'no /proc on this system' }, () => {
  test('counts the CPU time of a process and of the processes it started (the workers of pledge serve)', async () => {
    const parent = spawn(process.execPath, ['-e', PARENT], { stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      const childSpent = await new Promise<number>((resolve, reject) => {
        parent.stdout.setEncoding('utf8').once('data', (text: string) => resolve(Number(text.trim())));
        parent.once('exit', (code) => reject(new Error(`the burner exited with ${code}`)));
      });
      assert.ok(childSpent >= 300_000);
      const counted = processTreeCpuMicros(parent.pid!);
      assert.ok(counted !== undefined, 'the tree is found');
      // /proc counts in ticks of 10 ms; the parent's own start-up comes on top.
      assert.ok(counted >= childSpent - 20_000, `counted ${counted} µs, the child alone spent ${childSpent} µs`);
      const own = processTreeCpuMicros(process.pid)!;
      assert.ok(own > 0, 'this process has spent CPU time too');
    } finally {
      // The child leaves when its stdin (this pipe) ends, and the parent with it.
      parent.stdin.end();
      await new Promise((resolve) => (parent.exitCode === null ? parent.once('exit', resolve) : resolve(undefined)));
    }
  });

  test('is undefined for a process that does not exist', () => {
    assert.equal(processTreeCpuMicros(2 ** 22 + 12345), undefined);
  });
});
