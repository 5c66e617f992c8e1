import cluster, { type Worker } from 'node:cluster';
import path from 'node:path';
import { EXIT, type CommandIO } from './cli/io.js';
import type { Config } from './core/config.js';
import type { Policy } from './policy/policy.model.js';
import type { PolicyService } from './policy/policy.service.js';
import { createEngine } from './engine.js';

/**
 * `pledge serve --workers N`: N server processes sharing one port (node:cluster hands each new
 * connection to one of them) and one database — the same set-up as several servers behind a
 * load balancer, which every part of Pledge is built for (group-committed audit appends, leases
 * on background work, the database as the one place any decision is read from). One process
 * per CPU uses the machine; a single Node process uses one core.
 *
 * The supervisor migrates the database before any worker starts, restarts a worker that dies
 * after it had started, and stops them all on SIGTERM or SIGINT. Background work (the outbox,
 * request tasks, retention sweeps) runs in the first worker only: it would be safe in each
 * (leases and SKIP LOCKED), but N pollers are N times the idle queries.
 */
export const WORKER_ROLE_VARIABLE = 'PLEDGE_WORKER_ROLE';

export type WorkerRole = 'jobs' | 'http';

/** In a worker of the supervisor: whether it runs the background work. Outside one: always. */
export function runsBackgroundWork(): boolean {
  return !cluster.isWorker || process.env[WORKER_ROLE_VARIABLE] === 'jobs';
}

export function isSupervisedWorker(): boolean {
  return cluster.isWorker;
}

/** A worker that has shut down lets go of its supervisor: the channel to it would keep the process alive. */
export function leaveSupervisor(): void {
  if (cluster.isWorker) cluster.worker?.disconnect();
}

const RESTART_DELAY_MS = 1_000;
const STOP_TIMEOUT_MS = 30_000;

export async function superviseWorkers(config: Config, policy: Policy, io: CommandIO, announce: (port: number) => void): Promise<number> {
  // Migrations, and the development master key, before any worker: N processes would only queue on them.
  const engine = await createEngine(config, { policy, warn: (message) => io.err(`warning: ${message}`) });
  try {
    await warnIfUnpublished(engine.policy, config, io);
  } finally {
    await engine.close();
  }

  let stopping = false;
  let announced = false;
  const roles = new Map<Worker, WorkerRole>();
  const started = new Set<Worker>();

  const fork = (role: WorkerRole): void => {
    const worker = cluster.fork({ [WORKER_ROLE_VARIABLE]: role });
    roles.set(worker, role);
  };

  return new Promise<number>((resolve) => {
    const finish = (code: number) => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve(code);
    };
    const stopAll = (code: number) => {
      if (stopping) return;
      stopping = true;
      if (roles.size === 0) return finish(code);
      const timer = setTimeout(() => {
        for (const worker of roles.keys()) worker.process.kill('SIGKILL');
      }, STOP_TIMEOUT_MS);
      timer.unref();
      for (const worker of roles.keys()) worker.process.kill('SIGTERM');
      cluster.on('exit', () => {
        if (roles.size === 0) {
          clearTimeout(timer);
          finish(code);
        }
      });
    };
    const stop = () => stopAll(EXIT.ok);
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);

    cluster.on('listening', (worker, address) => {
      started.add(worker);
      if (!announced && started.size === config.workers) {
        announced = true;
        announce(address.port);
      }
    });
    cluster.on('exit', (worker, code, signal) => {
      const role = roles.get(worker) ?? 'http';
      roles.delete(worker);
      const hadStarted = started.delete(worker);
      if (stopping) return;
      if (!hadStarted) {
        // A worker that cannot start will not start on a retry either (the port, the database).
        io.err(`pledge serve: a worker process could not start (exit ${signal ?? code}); stopping.`);
        stopAll(EXIT.failure);
        return;
      }
      io.err(`pledge serve: a worker process ended (exit ${signal ?? code}); starting another.`);
      setTimeout(() => {
        if (!stopping) fork(role);
      }, RESTART_DELAY_MS).unref();
    });

    for (let index = 0; index < config.workers; index++) fork(index === 0 ? 'jobs' : 'http');
  });
}

/**
 * Says so at start when the policy file is not the version people were told about: enforcing
 * an unannounced change is what policy publication exists to prevent.
 */
export async function warnIfUnpublished(policy: PolicyService, config: Config, io: CommandIO): Promise<void> {
  const file = config.policyIsDemo ? 'pledge.yaml' : path.relative(io.cwd, config.policyPath) || config.policyPath;
  const warning = await policy.publicationWarning(file);
  if (warning) io.err(`warning: ${warning}`);
}
