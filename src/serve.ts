import path from 'node:path';
import { createApp } from './app.js';
import { EXIT, parseCommandArgs, type CommandIO } from './cli/io.js';
import { loadConfig } from './core/config.js';
import { holdNextTickShape } from './http/next-tick-shape.js';
import { formatReport } from './policy/policy.issues.js';
import { loadPolicyFile } from './policy/policy.load.js';
import { startRetentionSchedule } from './retention/retention.scheduler.js';
import { isSupervisedWorker, leaveSupervisor, runsBackgroundWork, superviseWorkers, warnIfUnpublished } from './serve.workers.js';

/**
 * `pledge serve`: validates the policy first and refuses to start on any error (nothing is
 * created before that), then opens the database, runs migrations and listens.
 */
export async function serveCommand(args: string[], io: CommandIO): Promise<number> {
  // First thing, before the database opens and its start-up collections run (next-tick-shape.ts).
  holdNextTickShape();
  const { values, positionals } = parseCommandArgs(args, {
    port: { type: 'string', short: 'p' },
    host: { type: 'string' },
    policy: { type: 'string' },
    'data-dir': { type: 'string' },
    'database-url': { type: 'string' },
    'log-level': { type: 'string' },
    'public-url': { type: 'string' },
    workers: { type: 'string', short: 'w' },
  });
  if (positionals.length > 0) io.err(`ignoring unexpected arguments: ${positionals.join(' ')}`);

  const { config, warnings } = loadConfig(undefined, {
    ...(values.port !== undefined ? { port: values.port } : {}),
    ...(values.host !== undefined ? { host: values.host } : {}),
    ...(values.policy !== undefined ? { policy: values.policy } : {}),
    ...(values['data-dir'] !== undefined ? { dataDir: values['data-dir'] } : {}),
    ...(values['database-url'] !== undefined ? { databaseUrl: values['database-url'] } : {}),
    ...(values['log-level'] !== undefined ? { logLevel: values['log-level'] } : {}),
    ...(values['public-url'] !== undefined ? { publicUrl: values['public-url'] } : {}),
    ...(values.workers !== undefined ? { workers: values.workers } : {}),
  }, io.cwd);
  // A supervised worker runs this same command; its supervisor has already said all of it.
  const worker = isSupervisedWorker();
  if (!worker) for (const warning of warnings) io.err(`warning: ${warning}`);

  const loaded = loadPolicyFile(config.policyPath);
  if (!loaded.policy) {
    io.err(formatReport(loaded.issues));
    io.err('pledge serve: refusing to start with an invalid policy; nothing was started or written.');
    return EXIT.invalid;
  }
  if (!worker) for (const issue of loaded.issues) io.err(`warning: ${issue.file}:${issue.line}:${issue.column}: ${issue.message}`);

  const policy = loaded.policy;
  const announce = (address: string) => {
    const base = config.publicUrl.endsWith(`:${config.port}`) || !address.endsWith(`:${config.port}`) ? address : config.publicUrl;
    const policyName = config.policyIsDemo ? 'the demo policy (no pledge.yaml here; run `pledge init` to write yours)' : path.relative(io.cwd, config.policyPath) || config.policyPath;
    const lines: Array<[string, string]> = [
      ['policy', `${policyName}, version ${policy.version}`],
      ['database', config.databaseUrl.startsWith('sqlite:') ? config.databaseUrl.slice('sqlite:'.length) : 'PostgreSQL'],
      ...(config.workers > 1 ? [['processes', `${config.workers} (the first runs the background work)`] as [string, string]] : []),
      ['privacy policy', `${base}/policy`],
      ['API docs', `${base}/docs`],
      ['health', `${base}/health`],
    ];
    io.out([`Pledge is running on ${address}`, ...lines.map(([label, value]) => `  ${label.padEnd(15)}${value}`)].join('\n'));
  };
  if (config.workers > 1 && !worker) {
    return superviseWorkers(config, policy, io, (port) => announce(`http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`));
  }

  const app = await createApp(config, { policy, warn: (message) => io.err(`warning: ${message}`) });
  if (!worker) await warnIfUnpublished(app.policy, config, io);
  const address = await app.http.listen({ port: config.port, host: config.host });
  const background = runsBackgroundWork();
  if (background) {
    app.comms.startWorker();
    // Background work (request tasks, reminders) starts once the server answers.
    app.requests.schedule();
    app.jobs.start();
  }
  if (!worker) announce(address);
  const retentionSchedule = startRetentionSchedule(app.retention, background ? config.retentionIntervalMinutes * 60_000 : 0, app.logger);

  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = () => {
      if (stopping) return;
      stopping = true;
      // Alone, a second Ctrl-C ends the process at once. A supervised worker gets the terminal's
      // SIGINT and its supervisor's SIGTERM together: it ignores the second and finishes closing
      // (the supervisor ends it after 30 s if it does not).
      if (!worker) {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
      retentionSchedule.stop().then(() => app.close()).then(resolve, resolve);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  leaveSupervisor();
  return EXIT.ok;
}

