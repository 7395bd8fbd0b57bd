import { writeFile } from 'node:fs/promises';
import {
  CLIENT_SCHEMA_FILE,
  inProcessDocument,
  relativeToRepository,
  renderClientSchema,
} from './client-schema.js';

/** `npm run client:generate`: writes the TypeScript client's types from PIE's OpenAPI document. */
const schema = await renderClientSchema(await inProcessDocument());
await writeFile(CLIENT_SCHEMA_FILE, schema);
process.stdout.write(`wrote ${relativeToRepository(CLIENT_SCHEMA_FILE)}\n`);
