import { completeJob } from '../../usecases/complete-job.usecase.js';
import type { AppContext } from '../../usecases/context.js';
import { errorResponses } from '../schemas/common.schemas.js';
import { CompleteJobBody, CompletionParams, CompletionResult } from '../schemas/jobs.schemas.js';
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
}
