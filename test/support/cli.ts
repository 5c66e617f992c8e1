import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';

/** The compiled `pledge` bin, run as a user would run it. */
export const PLEDGE_BIN = path.resolve('dist/pledge.mjs');

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Environment for child processes: no inherited PLEDGE_ settings, no colours. */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('PLEDGE_') && key !== 'DATABASE_URL' && key !== 'NODE_ENV') env[key] = value;
  }
  return { ...env, NO_COLOR: '1', ...extra };
}

export function runPledge(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {}): CliResult {
  const result = spawnSync(process.execPath, [PLEDGE_BIN, ...args], {
    cwd: options.cwd ?? process.cwd(),
    env: cleanEnv(options.env),
    input: options.input ?? '',
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

export interface RunningServer {
  url: string;
  pid: number;
  output(): { stdout: string; stderr: string };
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts `pledge serve --port 0` and resolves once it prints its address. */
export function startServer(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<RunningServer> {
  const child = spawn(process.execPath, [PLEDGE_BIN, 'serve', '--port', '0', ...args], {
    cwd: options.cwd ?? process.cwd(),
    env: cleanEnv({ PLEDGE_LOG_LEVEL: 'warn', ...options.env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server did not start in 20 s\n${stdout}\n${stderr}`));
    }, 20_000);
    const check = () => {
      const match = /Pledge is running on (http:\/\/[^\s]+)/.exec(stdout);
      if (!match) return;
      clearTimeout(timer);
      child.stdout.off('data', check);
      resolve({
        url: match[1]!,
        pid: child.pid!,
        output: () => ({ stdout, stderr }),
        stop: (signal = 'SIGTERM') => {
          child.kill(signal);
          return exited;
        },
      });
    };
    child.stdout.on('data', check);
    exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before starting\n${stdout}\n${stderr}`));
    });
  });
}
