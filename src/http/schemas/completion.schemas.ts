import { Type } from '@sinclair/typebox';
import {
  ErrorResponse,
  JsonObject,
  ModelId,
  ModelVersion,
  named,
  StringEnum,
} from './common.schemas.js';
import { JobId, JobOutput, JobStatus } from './jobs.schemas.js';

/** What a handler or worker reports of the jobs it ran: one completion, or many at once. */

export const CompletionParams = Type.Object({
  model_id: ModelId,
  version: ModelVersion,
  job_id: JobId,
});

export const CompleteJobBody = named(
  'CompleteJobRequest',
  Type.Object(
    {
      status: StringEnum(['success', 'failure'] as const),
      output: Type.Optional({
        ...JsonObject,
        description:
          'Output metadata from the completed job (e.g. S3 paths). Passed as trigger_output to downstream event subscriptions.',
      }),
      error: Type.Optional({
        ...JsonObject,
        description:
          'Structured failure details from the handler. Stored on the durable job when status is failure.',
      }),
      attempt: Type.Optional(
        Type.Integer({
          minimum: 0,
          description: 'The attempt the handler worked on; a stale attempt is a 409.',
        }),
      ),
    },
    { additionalProperties: false, examples: [{ status: 'success', output: {}, error: {} }] },
  ),
);

export const TriggeredEvent = named(
  'TriggeredEvent',
  Type.Object({
    subscription_id: Type.String({ format: 'uuid' }),
    job_id: Type.Optional({
      ...JobId,
      description: 'Present when the target action was successfully triggered',
    }),
    error: Type.Optional(
      Type.String({ description: 'Present when the target action failed to trigger' }),
    ),
  }),
);

export const CompletionResult = named(
  'CompletionResult',
  Type.Object(
    {
      job_id: JobId,
      model_id: Type.String(),
      model_version: Type.String(),
      status: JobStatus,
      triggered_events: Type.Array(TriggeredEvent, {
        description:
          'Event subscriptions triggered by this job completion. Empty for failures or non-inference jobs.',
      }),
    },
    {
      examples: [
        {
          job_id: '123456789012',
          model_id: 'example-model',
          model_version: '1',
          status: 'success',
          triggered_events: [
            { subscription_id: '2489e9ad-2ee2-4e00-8ec9-32d5f69181c0', job_id: '210987654321' },
          ],
        },
      ],
    },
  ),
);

/** The most completions one request may carry. */
export const MAX_COMPLETIONS = 100;

export const CompleteJobsBody = named(
  'CompleteJobsRequest',
  Type.Object(
    {
      completions: Type.Array(
        named(
          'JobCompletion',
          Type.Object(
            {
              job_id: JobId,
              status: StringEnum(['success', 'failure'] as const),
              output: Type.Optional(JobOutput),
              error: Type.Optional({
                ...JsonObject,
                description: 'Structured failure details; stored when status is failure.',
              }),
              attempt: Type.Optional(
                Type.Integer({
                  minimum: 0,
                  description: 'The attempt the worker ran (from the claim); a stale one is a 409.',
                }),
              ),
            },
            { additionalProperties: false },
          ),
        ),
        {
          minItems: 1,
          maxItems: MAX_COMPLETIONS,
          description: `Up to ${MAX_COMPLETIONS} completions of jobs of this model version, each job once.`,
        },
      ),
    },
    {
      additionalProperties: false,
      examples: [
        {
          completions: [
            { job_id: '123456789012', attempt: 1, status: 'success', output: { score: 0.93 } },
            {
              job_id: '123456789013',
              attempt: 1,
              status: 'failure',
              error: { code: 'oom', message: 'out of memory' },
            },
          ],
        },
      ],
    },
  ),
);

export const CompleteJobsResult = named(
  'CompleteJobsResult',
  Type.Object({
    results: Type.Array(
      named(
        'JobCompletionResult',
        Type.Object({
          job_id: JobId,
          status_code: Type.Integer({
            description:
              'What the single completion route would have answered for this job: 200, 207, ' +
              '403, 404 or 409.',
          }),
          body: Type.Union([CompletionResult, ErrorResponse], {
            description: "That answer's body: the completion, or the error.",
          }),
        }),
      ),
      { description: 'One per completion sent, in the same order.' },
    ),
  }),
);
