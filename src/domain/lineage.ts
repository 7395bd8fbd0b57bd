/**
 * How many subscription hops a cascade may take. A job started by a subscription carries the
 * chain of subscriptions that led to it (its lineage).
 */
export const MAX_CASCADE_DEPTH = 8;

/**
 * Why a subscription may not fire for a job with this lineage (the subscription ids that led
 * to it, oldest first), or undefined when it may. A subscription already in the lineage would
 * loop; a lineage at the limit would go deeper than allowed.
 */
export function cascadeRefusal(
  lineage: readonly string[],
  subscriptionId: string,
): string | undefined {
  if (lineage.includes(subscriptionId)) {
    return `cascade loop: subscription ${subscriptionId} already started a job in this chain`;
  }
  if (lineage.length >= MAX_CASCADE_DEPTH) {
    return `cascade too deep: a chain may start at most ${MAX_CASCADE_DEPTH} jobs through subscriptions`;
  }
  return undefined;
}
