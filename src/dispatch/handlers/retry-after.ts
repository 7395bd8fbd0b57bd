/**
 * `Retry-After` (RFC 9110, section 10.2.3), as both the http and the truefoundry handlers read it
 * from a 429 or 5xx answer.
 */

/** Retry-After values beyond this are capped: a handler may not park a job for longer. */
export const MAX_RETRY_AFTER_MS = 60 * 60 * 1000;

// HTTP dates start with the day's name: "Sun, 06 Nov 1994 08:49:37 GMT", or the obsolete
// "Sunday, 06-Nov-94 08:49:37 GMT".
const HTTP_DATE = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*,? /;

/**
 * The delay a `Retry-After` header asks for, in milliseconds from `nowMs`, capped at an hour:
 * either delay-seconds (digits only) or an HTTP date (one in the past means now). Anything else
 * (missing, empty, fractional, negative, exponent notation, a date without its day name or
 * one that does not parse) is ignored and gives undefined. Only an HTTP date is taken as a
 * date, not whatever Date.parse accepts: it reads "7.5" and "-3" as days in 2001.
 *
 * A header sent more than once (undici gives an array) counts by its first value.
 */
export function parseRetryAfter(
  value: string | readonly string[] | null | undefined,
  nowMs = Date.now(),
): number | undefined {
  const text = (typeof value === 'string' ? value : value?.[0])?.trim() ?? '';
  let ms: number;
  if (/^\d+$/.test(text)) ms = Number(text) * 1000;
  else if (HTTP_DATE.test(text)) ms = Date.parse(text) - nowMs;
  else return undefined;
  if (Number.isNaN(ms)) return undefined;
  return Math.min(Math.max(ms, 0), MAX_RETRY_AFTER_MS);
}
