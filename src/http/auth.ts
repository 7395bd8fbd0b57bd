import type { FastifyInstance, FastifyRequest } from 'fastify';
import { grants, hasScope, type Caller, type Scope } from '../auth/caller.js';
import { TokenError, type TokenVerifier } from '../auth/token-verifier.js';
import { forbidden, unauthorized } from './errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    caller: Caller;
  }
  interface FastifyContextConfig {
    /** The scope a route needs (SPEC section 6); every /v2 route declares one. */
    scope?: Scope;
  }
}

/**
 * Adds SPEC section 6's checks to every route of `app`, in SPEC order: the token is verified
 * on request (401) before the body is validated (400); scope and claims are checked after
 * validation (403) and before the handler looks anything up (404).
 */
export function requireCallers(app: FastifyInstance, verifier: TokenVerifier): void {
  app.decorateRequest('caller', null as unknown as Caller);

  // Publish each route's scope in the OpenAPI document as the bearer requirement's role list.
  app.addHook('onRoute', (route) => {
    const scope = route.config?.scope;
    if (scope !== undefined && route.schema !== undefined) {
      route.schema.security = [{ bearerAuth: [scope] }];
    }
  });

  app.addHook('onRequest', async (request) => {
    request.caller = await authenticate(request, verifier);
  });

  app.addHook('preHandler', async (request) => {
    const scope = request.routeOptions.config.scope;
    if (scope === undefined) throw new Error(`route ${request.routeOptions.url} declares no scope`);
    authorize(request.caller, scope, request.params as Record<string, string> | undefined);
  });
}

async function authenticate(request: FastifyRequest, verifier: TokenVerifier): Promise<Caller> {
  const header = request.headers.authorization;
  if (header === undefined || header === '') {
    throw unauthorized('missing Authorization header; send "Authorization: Bearer <token>"');
  }
  const match = /^Bearer +([^ ]+)$/i.exec(header);
  if (match?.[1] === undefined) {
    throw unauthorized('Authorization header must be "Bearer <token>"');
  }
  try {
    return await verifier.verify(match[1]);
  } catch (error) {
    if (error instanceof TokenError) throw unauthorized(`invalid token: ${error.message}`);
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
