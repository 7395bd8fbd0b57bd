/**
 * The middle item of `items` by `key` (the lower middle of an even count): how the bench picks
 * the run or round it reports from repeated measurements.
 */
export function medianBy<T>(items: readonly T[], key: (item: T) => number): T {
  const sorted = [...items].sort((a, b) => key(a) - key(b));
  const middle = sorted[Math.floor((sorted.length - 1) / 2)];
  if (middle === undefined) throw new Error('medianBy of nothing');
  return middle;
}

/** The middle value of `values`, as `medianBy`. */
export const median = (values: readonly number[]): number => medianBy(values, (value) => value);
