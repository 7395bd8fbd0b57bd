import { generateWebhookSecret, webhookSecretProblem } from './webhook-secret.js';

/**
 * How a job reaches its model handler: pulled by a worker, or pushed over http, to a local
 * command, or to TrueFoundry.
 */
export type Handler =
  | { type: 'worker' }
  | { type: 'http'; url: string; secret: string }
  | { type: 'command'; command: string; args?: string[] }
  | {
      type: 'truefoundry';
      base_url: string;
      deployment_id?: string;
      application_id?: string;
      token_env: string;
    };

export type HandlerType = Handler['type'];

/** A handler as a caller sends it: an http handler's secret may be left for PIE to generate. */
export type HandlerInput =
  Exclude<Handler, { type: 'http' }> | { type: 'http'; url: string; secret?: string };

const TOKEN_ENV_PATTERN = /^(TFY|PIE_TFY)_[A-Z0-9_]+$/;

export const DEFAULT_HANDLER: Handler = { type: 'worker' };

/**
 * Problems of form the request schema cannot express (a 400); an empty list means the handler
 * is well formed. The http secret's rule is checked apart, by `settledHandler`, since breaking it
 * is a 422.
 */
export function handlerProblems(handler: HandlerInput): string[] {
  switch (handler.type) {
    case 'worker':
    case 'command':
      return [];
    case 'http':
      return isHttpUrl(handler.url) ? [] : ['handler.url must be an http(s) URL'];
    case 'truefoundry': {
      const problems = isHttpUrl(handler.base_url)
        ? []
        : ['handler.base_url must be an http(s) URL'];
      if ((handler.deployment_id === undefined) === (handler.application_id === undefined)) {
        problems.push('handler needs exactly one of deployment_id and application_id');
      }
      // The token is read from PIE's environment: only variables meant for it, never, say,
      // DATABASE_URL sent to a base_url of the registrant's choosing.
      if (!TOKEN_ENV_PATTERN.test(handler.token_env)) {
        problems.push('handler.token_env must name a variable starting with TFY_ or PIE_TFY_');
      }
      return problems;
    }
  }
}

/** A handler as answers show it: an http handler's signing secret is left out. */
export type HandlerView =
  Exclude<Handler, { type: 'http' }> | { type: 'http'; url: string; secret?: string };

/**
 * The handler to store: an http handler without a secret gets a generated one, which the answer
 * to this request shows once (`generatedSecret`). A secret that breaks the Standard Webhooks rule
 * is returned as `problem`.
 */
export function settledHandler(
  input: HandlerInput,
): { handler: Handler; generatedSecret?: string } | { problem: string } {
  if (input.type !== 'http') return { handler: input };
  if (input.secret === undefined) {
    const secret = generateWebhookSecret();
    return { handler: { ...input, secret }, generatedSecret: secret };
  }
  const problem = webhookSecretProblem(input.secret);
  return problem === undefined ? { handler: { ...input, secret: input.secret } } : { problem };
}

/** The handler as shown to callers: an http handler's signing secret never leaves PIE. */
export function publicHandler(handler: Handler): HandlerView {
  if (handler.type !== 'http') return handler;
  const { secret: _secret, ...shown } = handler;
  return shown;
}

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}
