import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../usecases/context.js';
import { claimJobs, heartbeat } from '../../usecases/worker-jobs.usecase.js';
import { errorResponses, Identifier, JsonObject, Nullable } from '../schemas/common.schemas.js';
import { CompletionParams } from '../schemas/completion.schemas.js';
import { JobId } from '../schemas/jobs.schemas.js';
import { VersionParams } from '../schemas/registry.schemas.js';
import type { TypedApp } from '../typed-app.js';

const tags = ['workers'];

const ClaimBody = Type.Object(
  {
    worker_id: Identifier('Names the worker in leases and logs.', 'worker-1'),
    max_jobs: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 1 })),
    wait_ms: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 30_000,
        default: 0,
        description: 'Long-poll: how long to wait for a job when none is ready.',
      }),
    ),
    lease_s: Type.Optional(
      Type.Integer({
        minimum: 5,
        maximum: 3600,
        default: 60,
        description: 'The job returns to the queue if no heartbeat or completion comes by then.',
      }),
    ),
  },
  {
    additionalProperties: false,
    examples: [{ worker_id: 'worker-1', max_jobs: 4, wait_ms: 20000, lease_s: 60 }],
  },
);

const Envelope = Type.Object(
  {
    job_id: JobId,
    job_type: Type.String(),
    attempt: Type.Integer(),
    model_id: Type.String(),
    model_version: Type.String(),
    client_id: Type.String(),
    domain_id: Type.String(),
    service_id: Nullable(Type.String()),
    assignment_id: Type.String(),
    assignment_key: Type.String(),
    config: JsonObject,
    input: JsonObject,
    features: Nullable(JsonObject),
    trigger: Type.Unknown(),
    deadline: Type.String({ format: 'date-time' }),
    callback: Type.Object({
      url: Type.String(),
      heartbeat_url: Type.String(),
      token: Type.String({ description: 'Completes or heartbeats this attempt only.' }),
    }),
    traceparent: Type.Optional(
      Type.String({
        description:
          "The W3C trace context stored with the job, when it was started with tracing on; send it back as the completion's traceparent header.",
      }),
    ),
  },
  { description: 'A job as its handler receives it.' },
);

const HeartbeatBody = Type.Object(
  {
    attempt: Type.Optional(Type.Integer({ minimum: 1 })),
    lease_s: Type.Optional(Type.Integer({ minimum: 5, maximum: 3600, default: 60 })),
    status: Type.Optional(Type.Literal('running')),
  },
  { additionalProperties: false, examples: [{ attempt: 1, lease_s: 60, status: 'running' }] },
);

export function workerRoutes(app: TypedApp, ctx: AppContext) {
  app.post(
    '/models/:model_id/versions/:version/jobs/claim',
    {
      config: { scope: 'jobs:complete' },
      schema: {
        tags,
        operationId: 'claimJobs',
        summary: 'Claim queued jobs for a pull worker',
        description:
          'Claims up to max_jobs queued jobs of this version under a lease, waiting up to ' +
          'wait_ms for one. Each comes with a callback token for its attempt.',
        params: VersionParams,
        body: ClaimBody,
        response: {
          200: Type.Object({ jobs: Type.Array(Envelope) }),
          ...errorResponses({ 404: 'version "2.0.0" of model "example-model" not found' }),
        },
      },
    },
    (request) => {
      const closed = new AbortController();
      request.raw.once('close', () => closed.abort());
      const { model_id, version } = request.params;
      return claimJobs(ctx, request.caller, {
        modelId: model_id,
        modelVersion: version,
        body: request.body,
        signal: closed.signal,
      });
    },
  );

  app.post(
    '/models/:model_id/versions/:version/jobs/:job_id/heartbeat',
    {
      config: { scope: 'jobs:complete', callback: true },
      schema: {
        tags,
        operationId: 'heartbeatJob',
        summary: "Extend the lease of a job's current attempt",
        params: CompletionParams,
        body: HeartbeatBody,
        response: {
          200: Type.Object({ job_id: JobId, attempt: Type.Integer(), status: Type.String() }),
          ...errorResponses({
            404: 'job "123456789012" not found for model "example-model" version "2.0.0"',
            409: 'job "123456789012" was cancelled; stop working on it',
          }),
        },
      },
    },
    (request) => {
      const { model_id, version, job_id } = request.params;
      return heartbeat(ctx, request.caller, {
        modelId: model_id,
        modelVersion: version,
        jobId: job_id,
        body: request.body,
      });
    },
  );
}
