#!/usr/bin/env node
// Bundles the compiled command (dist/src/main.js) into one file, dist/pledge.mjs: loading one
// module instead of hundreds halves the start-up time of `pledge serve`. Packages that read
// their own files at run time (swagger-ui's static assets), native modules and modules loaded
// only on demand stay outside the bundle.
import { build } from 'esbuild';

await build({
  entryPoints: ['dist/src/main.js'],
  outfile: 'dist/pledge.mjs',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: 'linked',
  // Smaller source is parsed faster and held in less memory. Identifiers keep their names, so
  // stack traces stay readable without the source map; esbuild's keepNames would instead wrap
  // every function in a defineProperty call that runs each time a closure is created — a tenth
  // of a request's CPU in Fastify's per-request hook runners.
  minifyWhitespace: true,
  minifySyntax: true,
  minifyIdentifiers: false,
  keepNames: false,
  legalComments: 'none',
  logLevel: 'warning',
  external: ['better-sqlite3', 'better-sqlite3-napi', '@node-rs/argon2', 'pg', 'pino', '@fastify/swagger-ui', 'mysql2', 'nodemailer'],
  // Some bundled dependencies are CommonJS and call require(); give them one.
  banner: { js: "import { createRequire as __pledgeCreateRequire } from 'node:module';\nconst require = __pledgeCreateRequire(import.meta.url);" },
});
