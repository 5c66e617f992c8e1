import { readFileSync } from 'node:fs';

/** The package version, read once from package.json (two levels up from dist/src). */
export const VERSION: string = (() => {
  for (const relative of ['../../package.json', '../package.json']) {
    try {
      const parsed = JSON.parse(readFileSync(new URL(relative, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (parsed.name === 'pledge' && parsed.version) return parsed.version;
    } catch {
      // try the next location
    }
  }
  return '0.0.0';
})();
