import type { FeatureValues } from './features.js';

/**
 * Applies a `static_features` patch to a service's provided features: each key
 * of the patch replaces the provided value whole, and a `null` value removes the key. The
 * merge is shallow on purpose: a feature is one value, so an `object` feature is replaced, not
 * merged. Neither argument is changed.
 */
export function mergeProvidedFeatures(
  provided: FeatureValues,
  patch: FeatureValues,
): FeatureValues {
  // A Map and fromEntries keep a key such as "__proto__" an ordinary own key.
  const merged = new Map(Object.entries(provided));
  for (const [name, value] of Object.entries(patch)) {
    if (value === null) merged.delete(name);
    else merged.set(name, value);
  }
  return Object.fromEntries(merged);
}
