import { Type } from '@sinclair/typebox';
import {
  ClientId,
  DomainId,
  JsonObject,
  MaxInFlight,
  named,
  Nullable,
  ServiceId,
  StringEnum,
  Timestamp,
} from './common.schemas.js';

export const ClientParams = Type.Object({ client_id: ClientId });
export const DomainParams = Type.Object({ client_id: ClientId, domain_id: DomainId });
export const ServiceParams = Type.Object({
  client_id: ClientId,
  domain_id: DomainId,
  service_id: ServiceId,
});

export const PutClientBody = named(
  'PutClientRequest',
  Type.Object(
    {
      name: Type.Optional(Type.String({ maxLength: 256, description: 'Display name.' })),
      max_in_flight: Type.Optional(MaxInFlight),
    },
    { additionalProperties: false, examples: [{ name: 'Adelaide Metro' }] },
  ),
);

export const Client = named(
  'Client',
  Type.Object(
    {
      client_id: Type.String(),
      name: Nullable(Type.String()),
      max_in_flight: Nullable(Type.Integer()),
      created_at: Timestamp,
      updated_at: Timestamp,
    },
    {
      examples: [
        {
          client_id: 'client-1',
          name: 'Adelaide Metro',
          max_in_flight: null,
          created_at: '2026-01-01T00:00:00.000Z',
          updated_at: '2026-01-01T00:00:00.000Z',
        },
      ],
    },
  ),
);

export const DomainStatus = named(
  'DomainStatus',
  StringEnum(['active', 'inactive'] as const, { description: 'Jobs run only in active domains.' }),
);

export const PutDomainBody = named(
  'PutDomainRequest',
  Type.Object(
    { status: Type.Optional(DomainStatus) },
    { additionalProperties: false, examples: [{ status: 'active' }] },
  ),
);

export const Domain = named(
  'Domain',
  Type.Object({
    client_id: Type.String(),
    domain_id: Type.String(),
    status: DomainStatus,
    created_at: Timestamp,
    updated_at: Timestamp,
  }),
);

export const ServiceStatus = named(
  'ServiceStatus',
  StringEnum(['active', 'departed'] as const, {
    description: 'Departed services keep their history and receive no new jobs.',
  }),
);

export const PutServiceBody = named(
  'PutServiceRequest',
  Type.Object(
    {
      provided_features: Type.Optional({
        ...JsonObject,
        description:
          'Feature values for this service. Resolved against the domain default contract when the domain has one.',
      }),
      status: Type.Optional(ServiceStatus),
    },
    { additionalProperties: false, examples: [{ provided_features: { route: 'route-a' } }] },
  ),
);

export const Service = named(
  'Service',
  Type.Object({
    client_id: Type.String(),
    domain_id: Type.String(),
    service_id: Type.String(),
    status: ServiceStatus,
    provided_features: JsonObject,
    resolved_features: Nullable(JsonObject),
    created_at: Timestamp,
    updated_at: Timestamp,
    departed_at: Nullable(Timestamp),
  }),
);

export const ListServicesQuery = Type.Object({ status: Type.Optional(ServiceStatus) });
