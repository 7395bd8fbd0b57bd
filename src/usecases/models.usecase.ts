import { isDeepStrictEqual } from 'node:util';
import type { Caller } from '../auth/caller.js';
import type { Queryable } from '../db/database.js';
import { describeProblems, validateFeatureDefinitions } from '../domain/features.js';
import {
  DEFAULT_HANDLER,
  handlerProblems,
  publicHandler,
  settledHandler,
  type Handler,
  type HandlerInput,
} from '../domain/handlers.js';
import { badRequest, conflict, forbidden, notFound, unprocessable } from '../domain/errors.js';
import { type PageRequest, toPage } from '../domain/paging.js';
import * as models from '../repositories/models.repository.js';
import * as versions from '../repositories/model-versions.repository.js';
import type { AppContext } from './context.js';
import { wakeKey } from '../lifecycle/job-wakeups.js';

export const DEFAULT_JOB_TYPES = ['inference'];
export const DEFAULT_TIMEOUT_S = 3600;
export const DEFAULT_MAX_ATTEMPTS = 5;

export function putModel(
  ctx: AppContext,
  _caller: Caller,
  input: { modelId: string; body: { description?: string } },
) {
  return models.upsertModel(ctx.db, input.modelId, input.body.description);
}

export function getModel(ctx: AppContext, _caller: Caller, input: { modelId: string }) {
  return requireModel(ctx.db, input.modelId);
}

export async function listModels(ctx: AppContext, caller: Caller, input: { page: PageRequest }) {
  const { page } = input;
  const rows = await models.listModels(ctx.db.reads, caller.models, page);
  return toPage(rows, page.limit, (row) => [row.model_id]);
}

/** A version as callers see it: an http handler's signing secret never leaves PIE. */
export type VersionView = Omit<versions.ModelVersion, 'handler'> & {
  handler: ReturnType<typeof publicHandler>;
};

/**
 * `generatedSecret`, the secret PIE made for this request's http handler, is shown in this one
 * answer: the caller has no other way to learn it.
 */
function versionView(version: versions.ModelVersion, generatedSecret?: string): VersionView {
  const handler = publicHandler(version.handler);
  return {
    ...version,
    handler:
      generatedSecret === undefined || handler.type !== 'http'
        ? handler
        : { ...handler, secret: generatedSecret },
  };
}

export interface PutVersionBody {
  features: unknown[];
  job_types?: string[];
  handler?: HandlerInput;
  timeout_s?: number;
  max_attempts?: number;
  max_in_flight?: number | null;
}

/**
 * Registers a version or updates its settings. The feature contract and job types are frozen
 * at creation: re-sending them unchanged is a no-op, sending different ones is a 409. The
 * handler, timeout_s and max_attempts may change. A handler sent replaces the stored one: an
 * http handler sent without a secret gets a newly generated one (a rotation), so to keep the
 * secret while changing other settings, leave the handler out.
 */
export async function putModelVersion(
  ctx: AppContext,
  caller: Caller,
  input: { modelId: string; modelVersion: string; body: PutVersionBody },
): Promise<{ version: VersionView; created: boolean }> {
  const { modelId, modelVersion, body } = input;
  const contract = validateFeatureDefinitions(body.features);
  if (!contract.ok) {
    throw unprocessable(`invalid feature definitions: ${describeProblems(contract.problems)}`, {
      problems: contract.problems,
    });
  }
  if (body.handler?.type === 'command' && !caller.scopes.has('admin')) {
    throw forbidden('a command handler runs programs on the PIE host: registering one needs admin');
  }
  let settled: { handler: Handler; generatedSecret?: string } | undefined;
  if (body.handler !== undefined) {
    const problems = handlerProblems(body.handler);
    if (problems.length > 0) throw badRequest(`invalid handler: ${problems.join('; ')}`);
    const outcome = settledHandler(body.handler);
    if ('problem' in outcome) throw unprocessable(`invalid handler: ${outcome.problem}`);
    settled = outcome;
  }
  const features = contract.value;
  const jobTypes = body.job_types ?? DEFAULT_JOB_TYPES;

  const result = await ctx.db.transaction(async (tx) => {
    if ((await models.findModel(tx, modelId)) === undefined) {
      throw notFound(`model "${modelId}" not found; create it with PUT /v2/models/${modelId}`);
    }
    const inserted = await versions.insertVersion(tx, {
      modelId,
      modelVersion,
      features,
      jobTypes,
      handler: settled?.handler ?? DEFAULT_HANDLER,
      timeoutS: body.timeout_s ?? DEFAULT_TIMEOUT_S,
      maxAttempts: body.max_attempts ?? DEFAULT_MAX_ATTEMPTS,
      maxInFlight: body.max_in_flight ?? null,
    });
    if (inserted !== undefined) return { version: inserted, created: true };

    const existing = (await versions.findVersion(tx, modelId, modelVersion, { forUpdate: true }))!;
    if (!isDeepStrictEqual(existing.features, features)) {
      throw conflict(
        `version "${modelVersion}" of model "${modelId}" is frozen with a different feature ` +
          'contract; register a new version to change it',
      );
    }
    if (body.job_types !== undefined && !sameSet(existing.job_types, body.job_types)) {
      throw conflict(
        `version "${modelVersion}" of model "${modelId}" is frozen with job_types ` +
          `${JSON.stringify(existing.job_types)}; register a new version to change them`,
      );
    }
    const updated = await versions.updateVersionSettings(tx, modelId, modelVersion, {
      handler: settled?.handler,
      timeoutS: body.timeout_s,
      maxAttempts: body.max_attempts,
      maxInFlight: body.max_in_flight,
    });
    return { version: updated, created: false };
  });
  // Queued jobs follow a changed handler: whoever claims that kind may take them now.
  if (!result.created && body.handler !== undefined) {
    ctx.wakeups.announce([
      wakeKey({ model_id: modelId, model_version: modelVersion, handler_type: body.handler.type }),
    ]);
  }
  return {
    version: versionView(result.version, settled?.generatedSecret),
    created: result.created,
  };
}

export async function getModelVersion(
  ctx: AppContext,
  _caller: Caller,
  input: { modelId: string; modelVersion: string },
): Promise<VersionView> {
  const { modelId, modelVersion } = input;
  const version = await versions.findVersion(ctx.db, modelId, modelVersion);
  if (version !== undefined) return versionView(version);
  await requireModel(ctx.db, modelId);
  throw notFound(`version "${modelVersion}" of model "${modelId}" not found`);
}

export async function listModelVersions(
  ctx: AppContext,
  _caller: Caller,
  input: { modelId: string; page: PageRequest },
) {
  const { modelId, page } = input;
  await requireModel(ctx.db, modelId);
  const rows = await versions.listVersions(ctx.db.reads, modelId, page);
  const result = toPage(rows, page.limit, (row) => [row.model_version]);
  return { ...result, items: result.items.map((version) => versionView(version)) };
}

async function requireModel(q: Queryable, modelId: string): Promise<models.Model> {
  const model = await models.findModel(q, modelId);
  if (model === undefined) throw notFound(`model "${modelId}" not found`);
  return model;
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((item) => b.includes(item));
}
