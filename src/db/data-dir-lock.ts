import fs from 'node:fs';
import path from 'node:path';

/**
 * PGlite is a single-process database: two processes opening one data folder would corrupt it.
 * A lock file holding the owner's pid turns that into a clear error. A lock left by a process
 * that no longer exists (killed with SIGKILL, say) is taken over.
 */
export function lockDataDir(dir: string): () => void {
  const file = path.join(dir, 'pie.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, String(process.pid), { flag: 'wx' });
      return () => fs.rmSync(file, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const owner = Number(fs.readFileSync(file, 'utf8'));
      if (isAlive(owner) && owner !== process.pid) {
        throw new Error(
          `the embedded database in ${dir} is in use by process ${owner}; stop it first, ` +
            'or use DATABASE_URL to share a PostgreSQL server between processes',
        );
      }
      fs.rmSync(file, { force: true });
    }
  }
  throw new Error(`could not lock ${dir}`);
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
