import { PGlite } from '@electric-sql/pglite';
import { migrate } from './migrate.js';
import { openPgliteDatabase } from './pglite-database.js';

/**
 * Run as a child process by `openPgliteDatabase`: creates a new PGlite data directory (initdb),
 * applies the migrations, and exits. PGlite keeps the WebAssembly memory a process grew for the
 * life of the process: about 500 MB for initdb, and some 60 MB more for the migrations. Doing
 * both here gives that memory back to the system before PIE starts serving.
 */
const dataDir = process.argv[2];
if (dataDir === undefined) throw new Error('usage: pglite-initdb <data directory>');
const pglite = await PGlite.create({ dataDir });
await pglite.close();
const db = await openPgliteDatabase(dataDir);
const applied = await migrate(db);
await db.close();
// The parent reports them (`pie migrate` lists what it applied, these included).
process.send?.({ applied });
