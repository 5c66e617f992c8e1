import cluster from 'node:cluster';
import Fastify from 'fastify';

/**
 * The ceiling for server benchmarks: a bare Fastify route answering a constant, started the
 * same way as `pledge serve` (fresh Node processes listening on the loopback) — in one process,
 * or in N sharing the port through node:cluster as `pledge serve --workers N` does.
 *
 *   node dist/bench/bare-server.js <port> [processes]
 */
const port = Number(process.argv[2] ?? 0);
const processes = Number(process.argv[3] ?? 1);

if (processes > 1 && cluster.isPrimary) {
  let listening = 0;
  cluster.on('listening', (_worker, address) => {
    if (++listening === processes) process.stdout.write(`listening on http://127.0.0.1:${address.port}\n`);
  });
  for (let index = 0; index < processes; index++) cluster.fork();
  process.on('SIGTERM', () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
    process.exit(0);
  });
} else {
  const app = Fastify({ logger: false });
  // Every path answers the same constant, so the ceiling can be loaded with exactly the
  // requests the measured route gets (same paths, headers and bodies).
  app.route({ method: ['GET', 'POST'], url: '/*', handler: async () => ({ status: 'ok' }) });
  const address = await app.listen({ port, host: '127.0.0.1' });
  if (!cluster.isWorker) process.stdout.write(`listening on ${address}\n`);
  process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
}
