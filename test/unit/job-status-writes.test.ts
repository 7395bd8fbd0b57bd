import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

/**
 * A job's status is written only by the lifecycle module (src/lifecycle/), one function per
 * transition. This reads every other source file and migration and fails on SQL that writes
 * the jobs table's status: an UPDATE of jobs that sets `status`, or an INSERT into jobs that
 * names the column (new jobs take the column's default, queued).
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const LIFECYCLE = path.join(ROOT, 'src', 'lifecycle') + path.sep;

function filesUnder(dir: string, extension: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true, recursive: true }).flatMap((entry) => {
    const file = path.join(entry.parentPath, entry.name);
    return entry.isFile() && file.endsWith(extension) ? [file] : [];
  });
}

// `update jobs [alias] set <assignments> [from|where|returning|end of text]`
const UPDATE_JOBS =
  /\bupdate\s+jobs\b(?:\s+(?:as\s+)?\w+)?\s+set\b([\s\S]*?)(?=\bfrom\b|\bwhere\b|\breturning\b|`|'|;|$)/gi;
// `insert into jobs (<columns>)`
const INSERT_JOBS = /\binsert\s+into\s+jobs\s*\(([^)]*)\)/gi;
const SETS_STATUS = /(?:^|[\s,])(?:\w+\.)?status\s*=/i;

// `const NAME = `...`;`: SQL fragments a statement interpolates as `${NAME}`.
const FRAGMENT = /\bconst\s+(\w+)\s*=\s*`([^`]*)`/g;

/** `text` with each `${NAME}` of a fragment defined in it replaced by the fragment. */
function inlineFragments(text: string): string {
  const fragments = new Map([...text.matchAll(FRAGMENT)].map((m) => [m[1]!, m[2]!]));
  return text.replace(/\$\{(\w+)\}/g, (whole, name: string) => fragments.get(name) ?? whole);
}

/** Where `source` writes a job's status, as `file:line` descriptions. */
export function statusWrites(file: string, source: string): string[] {
  const found: string[] = [];
  const text = inlineFragments(source);
  const lineOf = (index: number) => text.slice(0, index).split('\n').length;
  for (const match of text.matchAll(UPDATE_JOBS)) {
    if (SETS_STATUS.test(match[1] ?? '')) found.push(`${file}:${lineOf(match.index)} (update)`);
  }
  for (const match of text.matchAll(INSERT_JOBS)) {
    if (/\bstatus\b/i.test(match[1] ?? '')) found.push(`${file}:${lineOf(match.index)} (insert)`);
  }
  return found;
}

describe('who writes a job status', () => {
  it('finds status writes in SQL of either form (the check itself can fail)', () => {
    assert.deepEqual(statusWrites('a.ts', '`update jobs set locked_by = null where x`'), []);
    assert.equal(statusWrites('a.ts', "`update jobs set status = 'queued' where x`").length, 1);
    assert.equal(
      statusWrites('a.ts', "`update jobs j set attempt = 1,\n  status = 'failure' from x`").length,
      1,
    );
    assert.equal(
      statusWrites('a.ts', '`insert into jobs (job_id, status) values ($1, $2)`').length,
      1,
    );
    assert.deepEqual(statusWrites('a.ts', '`insert into jobs (job_id, input) select 1`'), []);
    const fragment =
      "const SET = `attempt = 2, status = 'dispatched'`;\n`update jobs j set ${SET} where x`";
    assert.equal(statusWrites('a.ts', fragment).length, 1);
  });

  it('no source file outside src/lifecycle/ and no migration writes a job status', () => {
    const files = [
      ...filesUnder(path.join(ROOT, 'src'), '.ts').filter((file) => !file.startsWith(LIFECYCLE)),
      ...filesUnder(path.join(ROOT, 'migrations'), '.sql'),
    ];
    assert.ok(files.length > 50, `expected the whole source tree, read ${files.length} files`);
    const writes = files.flatMap((file) =>
      statusWrites(path.relative(ROOT, file), fs.readFileSync(file, 'utf8')),
    );
    assert.deepEqual(writes, []);
  });

  it('the lifecycle module does write statuses (so the scan reads what it should)', () => {
    const writes = filesUnder(LIFECYCLE, '.ts').flatMap((file) =>
      statusWrites(path.relative(ROOT, file), fs.readFileSync(file, 'utf8')),
    );
    assert.ok(writes.length >= 7, `expected the transitions' writes, found ${writes.join(', ')}`);
  });
});
