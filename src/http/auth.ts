import type { FastifyInstance, FastifyRequest } from 'fastify';
import { grants, hasScope, type Caller, type Scope } from '../auth/caller.js';
import { isCallbackToken, type CallbackTokens } from '../auth/callback-tokens.js';
import { TokenError, type TokenVerifier } from '../auth/token-verifier.js';
import { forbidden } from '../domain/errors.js';
import { BearerAuthError } from './bearer-challenge.js';

declare module 'fastify' {
  interface FastifyRequest {
    caller: Caller;
  }
  interface FastifyContextConfig {
    /** The scope a route needs ; every /v2 route declares one. */
    scope?: Scope;
    /** The route also accepts the callback token of the job named in its path. */
    callback?: boolean;
  }
}

/**
 * Adds the token checks to every route of `app`, in this order: the token is verified
 * on request (401) before the body is validated (400); scope and claims are checked after
 * validation (403) and before the handler looks anything up (404).
 */
export function requireCallers(
  app: FastifyInstance,
  verifier: TokenVerifier,
  callbacks: CallbackTokens,
): void {
  app.decorateRequest('caller', null as unknown as Caller);

  // Publish each route's scope in the OpenAPI document as the bearer requirement's role list.
  app.addHook('onRoute', (route) => {
    const scope = route.config?.scope;
    if (scope !== undefined && route.schema !== undefined) {
      route.schema.security = [{ bearerAuth: [scope] }];
    }
  });

  app.addHook('onRequest', async (request) => {
    request.caller = await authenticate(request, verifier, callbacks);
  });

  app.addHook('preHandler', async (request) => {
    const scope = request.routeOptions.config.scope;
    if (scope === undefined) throw new Error(`route ${request.routeOptions.url} declares no scope`);
    const params = request.params as Record<string, string> | undefined;
    if (request.caller.job !== undefined) {
      if (
        request.routeOptions.config.callback !== true ||
        params?.['job_id'] !== request.caller.job.jobId
      ) {
        throw forbidden('a job callback token may only complete or heartbeat its own job');
      }
      return;
    }
    authorize(request.caller, scope, params);
  });
}

async function authenticate(
  request: FastifyRequest,
  verifier: TokenVerifier,
  callbacks: CallbackTokens,
): Promise<Caller> {
  const header = request.headers.authorization;
  if (header === undefined || header === '') {
    throw new BearerAuthError('missing Authorization header; send "Authorization: Bearer <token>"');
  }
  const match = /^Bearer +([^ ]+)$/i.exec(header);
  if (match?.[1] === undefined) {
    // Another scheme sends no bearer credentials at all; a Bearer header without exactly one
    // token is a malformed request.
    throw new BearerAuthError(
      'Authorization header must be "Bearer <token>"',
      /^Bearer(\s|$)/i.test(header) ? 'invalid_request' : undefined,
    );
  }
  const token = match[1];
  // Most requests come with a token seen moments ago: a map lookup, before decoding it to see
  // whether it is a callback token (a decode was 3 % of the server's CPU under steady load).
  const known = verifier.known(token);
  if (known !== undefined) return known;
  try {
    if (isCallbackToken(token)) {
      const job = await callbacks.verify(token);
      return { subject: `job:${job.jobId}`, scopes: new Set(), clients: '*', models: '*', job };
    }
    return await verifier.verify(token);
  } catch (error) {
    if (error instanceof TokenError) {
      throw new BearerAuthError(`invalid token: ${error.message}`, 'invalid_token');
    }
    throw error;
  }
}

function authorize(caller: Caller, scope: Scope, params: Record<string, string> | undefined) {
  if (!hasScope(caller, scope)) {
    throw forbidden(`this token lacks the "${scope}" scope needed here`);
  }
  const clientId = params?.['client_id'];
  if (clientId !== undefined && !grants(caller.clients, clientId)) {
    throw forbidden(`this token may not act on client "${clientId}"`);
  }
  const modelId = params?.['model_id'];
  if (modelId !== undefined && !grants(caller.models, modelId)) {
    throw forbidden(`this token may not act on model "${modelId}"`);
  }
}
