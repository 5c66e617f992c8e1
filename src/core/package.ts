import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Where the installed package lives and its version. Found by walking up from this module to
 * the package.json named "pledge", so it holds for the compiled tree (dist/src/…) and for the
 * single-file build (dist/pledge.mjs) alike.
 */
function findPackage(): { root: string; version: string } {
  let directory = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const manifest = JSON.parse(readFileSync(path.join(directory, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (manifest.name === 'pledge') return { root: directory, version: manifest.version ?? '0.0.0' };
    } catch {
      // no package.json here; keep climbing
    }
    const parent = path.dirname(directory);
    if (parent === directory) throw new Error('cannot find the pledge package.json above ' + fileURLToPath(import.meta.url));
    directory = parent;
  }
}

const found = findPackage();

export const PACKAGE_ROOT: string = found.root;
export const VERSION: string = found.version;
