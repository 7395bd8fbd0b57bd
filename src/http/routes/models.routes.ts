import type { AppContext } from '../../usecases/context.js';
import * as usecase from '../../usecases/models.usecase.js';
import { pageRequest } from '../../domain/paging.js';
import { errorResponses, Page, PageQuery } from '../schemas/common.schemas.js';
import {
  Model,
  ModelParams,
  PutModelBody,
  PutVersionBody,
  Version,
  VersionParams,
} from '../schemas/registry.schemas.js';
import type { TypedApp } from '../typed-app.js';

const tags = ['registry'];

export function modelRoutes(app: TypedApp, ctx: AppContext) {
  app.put(
    '/models/:model_id',
    {
      config: { scope: 'registry:write' },
      schema: {
        tags,
        operationId: 'putModel',
        summary: 'Register or update a model',
        params: ModelParams,
        body: PutModelBody,
        response: {
          200: { ...Model, description: 'Model updated' },
          201: { ...Model, description: 'Model registered' },
          ...errorResponses({}),
        },
      },
    },
    async (request, reply) => {
      const { model, created } = await usecase.putModel(ctx, request.caller, {
        modelId: request.params.model_id,
        body: request.body,
      });
      return reply.status(created ? 201 : 200).send(model);
    },
  );

  app.get(
    '/models',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        operationId: 'listModels',
        summary: "List the models the caller's token may see",
        querystring: PageQuery,
        response: { 200: Page(Model), ...errorResponses({}) },
      },
    },
    (request) => usecase.listModels(ctx, request.caller, { page: pageRequest(request.query, 1) }),
  );

  app.get(
    '/models/:model_id',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        operationId: 'getModel',
        summary: 'Get a model',
        params: ModelParams,
        response: { 200: Model, ...errorResponses({ 404: 'model "example-model" not found' }) },
      },
    },
    (request) => usecase.getModel(ctx, request.caller, { modelId: request.params.model_id }),
  );

  app.put(
    '/models/:model_id/versions/:version',
    {
      config: { scope: 'registry:write' },
      schema: {
        tags,
        operationId: 'putModelVersion',
        summary: 'Register a model version or update its settings',
        description:
          'The feature contract and job_types freeze when the version is created: sending the ' +
          'same ones again is a no-op, different ones a 409. handler, timeout_s and max_attempts ' +
          "may change. An http handler's secret must be whsec_ and the standard base64 of 24 to " +
          '64 bytes (else 422); left out, PIE generates one and shows it once, in this answer.',
        params: VersionParams,
        body: PutVersionBody,
        response: {
          200: { ...Version, description: 'Version settings updated (or unchanged)' },
          201: { ...Version, description: 'Version registered' },
          ...errorResponses({
            404: 'model "example-model" not found; create it with PUT /v2/models/example-model',
            409: 'version "2.0.0" of model "example-model" is frozen with a different feature contract; register a new version to change it',
            422: 'invalid feature definitions: capacity: type "float64" is not one of string, integer, number, boolean, enum',
          }),
        },
      },
    },
    async (request, reply) => {
      const { version, created } = await usecase.putModelVersion(ctx, request.caller, {
        modelId: request.params.model_id,
        modelVersion: request.params.version,
        body: request.body,
      });
      return reply.status(created ? 201 : 200).send(version);
    },
  );

  app.get(
    '/models/:model_id/versions',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        operationId: 'listModelVersions',
        summary: "List a model's versions",
        params: ModelParams,
        querystring: PageQuery,
        response: {
          200: Page(Version),
          ...errorResponses({ 404: 'model "example-model" not found' }),
        },
      },
    },
    (request) =>
      usecase.listModelVersions(ctx, request.caller, {
        modelId: request.params.model_id,
        page: pageRequest(request.query, 1),
      }),
  );

  app.get(
    '/models/:model_id/versions/:version',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        operationId: 'getModelVersion',
        summary: 'Get a model version',
        params: VersionParams,
        response: {
          200: Version,
          ...errorResponses({ 404: 'version "2.0.0" of model "example-model" not found' }),
        },
      },
    },
    (request) =>
      usecase.getModelVersion(ctx, request.caller, {
        modelId: request.params.model_id,
        modelVersion: request.params.version,
      }),
  );
}
