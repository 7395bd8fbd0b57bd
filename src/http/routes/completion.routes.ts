import { Type } from '@sinclair/typebox';
import { completeJob } from '../../usecases/complete-job.usecase.js';
import { completeJobs } from '../../usecases/complete-jobs.usecase.js';
import type { AppContext } from '../../usecases/context.js';
import { errorResponses } from '../schemas/common.schemas.js';
import { ModelId, ModelVersion } from '../schemas/common.schemas.js';
import {
  CompleteJobBody,
  CompleteJobsBody,
  CompleteJobsResult,
  CompletionParams,
  CompletionResult,
  MAX_COMPLETIONS,
} from '../schemas/completion.schemas.js';
import type { TypedApp } from '../typed-app.js';

export function completionRoutes(app: TypedApp, ctx: AppContext) {
  app.post(
    '/models/:model_id/versions/:version/jobs/:job_id/complete',
    {
      config: { scope: 'jobs:complete', callback: true },
      schema: {
        tags: ['jobs'],
        operationId: 'completeJob',
        summary:
          'Report completion of a model job. Fires inference_complete event subscriptions on successful inference jobs.',
        description:
          'Called by the model handler. Sending the same completion again returns the first ' +
          'answer; a different completion of a finished job, or one with a stale attempt, is a 409.',
        params: CompletionParams,
        body: CompleteJobBody,
        response: {
          200: {
            ...CompletionResult,
            description: 'Job completed; all triggered subscriptions (if any) dispatched cleanly.',
          },
          207: {
            ...CompletionResult,
            description:
              'Job completed, but one or more cascade subscriptions failed. Inspect triggered_events[*].error for per-subscription detail.',
          },
          ...errorResponses({
            404: 'job "123456789012" not found for model "example-model" version "2.0.0"',
            409: 'job "123456789012" is already final with status "success"',
          }),
        },
      },
    },
    async (request, reply) => {
      const { model_id, version, job_id } = request.params;
      const answer = await completeJob(ctx, request.caller, {
        modelId: model_id,
        modelVersion: version,
        jobId: job_id,
        body: request.body,
      });
      return reply.status(answer.statusCode).send(answer.body);
    },
  );

  app.post(
    '/models/:model_id/versions/:version/jobs/complete',
    {
      config: { scope: 'jobs:complete' },
      schema: {
        tags: ['jobs'],
        operationId: 'completeJobs',
        summary: `Report the completion of up to ${MAX_COMPLETIONS} jobs of a model version at once`,
        description:
          'For a worker that claimed a batch: each completion is handled exactly as ' +
          '`POST .../jobs/{job_id}/complete` would handle it (its own transaction, replays, ' +
          'attempt fencing, subscriptions), so one refused completion refuses nothing else. ' +
          'The answer is 200 with one result per completion, in order: the status code and ' +
          'body the single route would have answered. Needs a token with `jobs:complete` for ' +
          "the model (a job's callback token completes that job only, on the single route). " +
          'A job named twice is a 400; an unknown model version a 404.',
        params: Type.Object({ model_id: ModelId, version: ModelVersion }),
        body: CompleteJobsBody,
        response: {
          200: {
            ...CompleteJobsResult,
            description:
              'Every completion was handled; each result says how (see its status_code).',
          },
          ...errorResponses({ 404: 'version "2.0.0" of model "example-model" not found' }),
        },
      },
    },
    async (request) => {
      const { model_id, version } = request.params;
      const results = await completeJobs(ctx, request.caller, {
        modelId: model_id,
        modelVersion: version,
        completions: request.body.completions,
      });
      return { results };
    },
  );
}
