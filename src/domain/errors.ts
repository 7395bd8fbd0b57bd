/**
 * The one error type PIE throws on purpose. It carries the HTTP status and a message a person
 * can act on; `details` adds fields such as `problems` or `blocking_services` to the body.
 * Anything else that escapes a handler is a fault: the error handler logs it and answers a
 * generic 500 with the request id.
 */
export class AppError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly details: Record<string, unknown> = {},
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
/** A 429; the caller sets `Retry-After` on the reply, since only it knows when to come back. */
export const tooManyRequests = (message: string) => new AppError(429, message);
