/**
 * The one error type PIE throws on purpose. It carries the status (HTTP's numbers, which the
 * API answers with) and a message a person can act on; `details` adds fields such as `problems` or `blocking_services` to the body.
 * Anything else that escapes a handler is a fault: the error handler logs it and answers a
 * generic 500 with the request id.
 */
export class AppError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly details: Record<string, unknown> = {},
    /** Seconds after which the caller may try again, sent as `Retry-After` (429s and 503s). */
    readonly retryAfterS?: number,
  ) {
    super(message);
    this.name = 'AppError';
  }
}

export const badRequest = (message: string, details?: Record<string, unknown>) =>
  new AppError(400, message, details);
export const unauthorized = (message: string) => new AppError(401, message);
export const forbidden = (message: string) => new AppError(403, message);
export const notFound = (message: string) => new AppError(404, message);
export const conflict = (message: string, details?: Record<string, unknown>) =>
  new AppError(409, message, details);
export const unprocessable = (message: string, details?: Record<string, unknown>) =>
  new AppError(422, message, details);
/** A 429, with the seconds after which to try again (sent as `Retry-After`). */
export const tooManyRequests = (message: string, retryAfterS: number) =>
  new AppError(429, message, {}, retryAfterS);
/** A 503: this process cannot serve the request now; try again (here or elsewhere) later. */
export const unavailable = (message: string, retryAfterS: number) =>
  new AppError(503, message, {}, retryAfterS);
