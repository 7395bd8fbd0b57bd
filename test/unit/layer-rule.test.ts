import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';

/**
 * The lint rule that keeps layers pointing inward (eslint.config.js) refuses an import the
 * wrong way and lets the right way through. Linted as if the text were an existing file's, so
 * the rule for that file's folder applies.
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const eslint = new ESLint({ cwd: ROOT });

async function layerErrors(file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: path.join(ROOT, file) });
  return (result?.messages ?? [])
    .filter((message) => message.ruleId === 'no-restricted-imports')
    .map((message) => message.message);
}

describe('layers point inward', () => {
  it('refuses a repository importing a use case', async () => {
    const errors = await layerErrors(
      'src/repositories/clients.repository.ts',
      "import { runJob } from '../usecases/run-job.usecase.js';\nexport const wrong = runJob;\n",
    );
    assert.equal(errors.length, 1);
    assert.match(errors[0]!, /src\/repositories\/ may import only from auth, db, domain/);
  });

  it('refuses use cases importing http/, and domain/ importing anything outside it', async () => {
    const fromUseCase = await layerErrors(
      'src/usecases/jobs.usecase.ts',
      "import { sendAnswer } from '../http/idempotency.js';\nexport const wrong = sendAnswer;\n",
    );
    assert.equal(fromUseCase.length, 1);
    const fromDomain = await layerErrors(
      'src/domain/errors.ts',
      "import type { Queryable } from '../db/database.js';\nexport type Wrong = Queryable;\n",
    );
    assert.equal(fromDomain.length, 1);
  });

  it('lets a route import a use case and a use case import a repository', async () => {
    assert.deepEqual(
      await layerErrors(
        'src/http/routes/jobs.routes.ts',
        "import { runJob } from '../../usecases/run-job.usecase.js';\nexport const right = runJob;\n",
      ),
      [],
    );
    assert.deepEqual(
      await layerErrors(
        'src/usecases/jobs.usecase.ts',
        "import { findJob } from '../repositories/jobs.repository.js';\nexport const right = findJob;\n",
      ),
      [],
    );
  });
});
