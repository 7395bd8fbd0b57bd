import { PGlite } from '@electric-sql/pglite';

/**
 * Run as a child process by `openPgliteDatabase`: creates a new PGlite data directory (initdb)
 * and exits. PGlite keeps the WebAssembly memory initdb grew (about 500 MB) for the life of
 * the process; doing it here gives that memory back to the system before PIE starts serving.
 */
const dataDir = process.argv[2];
if (dataDir === undefined) throw new Error('usage: pglite-initdb <data directory>');
const pglite = await PGlite.create({ dataDir });
await pglite.close();
