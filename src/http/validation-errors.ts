import type { FastifySchemaValidationError } from 'fastify/types/schema.js';

/** Turns schema errors into one message that points at the field: `body/name must be string`. */
export function formatValidationErrors(
  errors: FastifySchemaValidationError[],
  dataVar: string,
): Error {
  const text = errors
    .map((error) => {
      const where = `${dataVar}${error.instancePath}`;
      const unknownField = error.params['additionalProperty'];
      if (error.keyword === 'additionalProperties' && typeof unknownField === 'string') {
        return `${where} has an unknown field "${unknownField}"`;
      }
      // Each branch of a tagged union (a handler, a schedule's action) names its tag this way.
      if (error.keyword === 'const') {
        return `${where} must be ${JSON.stringify(error.params['allowedValue'])}`;
      }
      if (error.keyword === 'enum' && Array.isArray(error.params['allowedValues'])) {
        return `${where} must be one of ${error.params['allowedValues'].map((v) => JSON.stringify(v)).join(', ')}`;
      }
      return `${where} ${error.message ?? 'is invalid'}`;
    })
    .join('; ');
  return new Error(text);
}
