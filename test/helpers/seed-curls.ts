import fs from 'node:fs';
import path from 'node:path';

/** A curl command as a seed page prints it. */
export interface SeedCurl {
  seed: string;
  method: string;
  url: string;
  headers: string[];
  data: string | undefined;
}

// The published reference pages PIE was created from, copied into the repository.
export const SEEDS_DIR = path.resolve(import.meta.dirname, '../fixtures/seeds');

/**
 * Reads the first `curl --request ...` of a seed page. The pages are scraped text: the command
 * may sit on one line with `\` continuations, so it is tokenised rather than run by a shell.
 */
export function readSeedCurl(file: string): SeedCurl {
  const text = fs.readFileSync(path.join(SEEDS_DIR, file), 'utf8');
  const start = text.indexOf('curl --request');
  if (start === -1) throw new Error(`no curl command in ${file}`);
  const tokens = tokenize(text.slice(start + 'curl'.length));
  const command: SeedCurl = { seed: file, method: 'GET', url: '', headers: [], data: undefined };
  for (let i = 0; i < tokens.length; i += 2) {
    const [flag, value] = [tokens[i], tokens[i + 1]];
    if (value === undefined) break;
    if (flag === '--request') command.method = value;
    else if (flag === '--url') command.url = value;
    else if (flag === '--header') command.headers.push(value);
    else if (flag === '--data') command.data = value;
    else break;
  }
  return command;
}

/** Single-quoted strings and bare words, skipping `\` line continuations; enough for a curl. */
function tokenize(text: string): string[] {
  const tokens: string[] = [];
  const pattern = /\s*(?:\\\s*)*(?:'([^']*)'|([^\s'\\]+))/y;
  let match: RegExpExecArray | null;
  while (tokens.length < 20 && (match = pattern.exec(text)) !== null) {
    tokens.push(match[1] ?? match[2] ?? '');
  }
  return tokens;
}
