import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../usecases/context.js';
import { openJobEventStream } from '../../usecases/job-events.usecase.js';
import { errorResponses } from '../schemas/common.schemas.js';
import { DomainParams } from '../schemas/tenants.schemas.js';
import { SseSink, type SseOptions } from '../sse-sink.js';
import type { TypedApp } from '../typed-app.js';

// Positions are integers JavaScript holds exactly (up to 2^53 - 1: 16 digits at most).
const Position = Type.String({
  pattern: '^(0|[1-9][0-9]{0,15})$',
  description: 'An event id (`id:` of an event) received earlier; the stream resumes after it.',
});

const EventsQuery = Type.Object({
  last_event_id: Type.Optional({
    ...Position,
    description: 'As the Last-Event-ID header, for clients that cannot set headers.',
  }),
});

const EventsHeaders = Type.Object({ 'last-event-id': Type.Optional(Position) });

const EVENT_STREAM_EXAMPLE =
  'id: 42\nevent: job\ndata: {"job_id":"123456789012","status":"success",' +
  '"previous_status":"running","job_type":"inference","service_id":"service-1",' +
  '"model_id":"example-model","model_version":"2.0.0","attempt":1,' +
  '"updated_at":"2026-11-29T10:00:01.234Z"}\n\n: keep-alive\n\n';

export function eventRoutes(app: TypedApp, ctx: AppContext, options: SseOptions) {
  app.get(
    '/clients/:client_id/domains/:domain_id/events',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['jobs'],
        operationId: 'streamJobEvents',
        summary: "Follow a domain's job lifecycle changes (Server-Sent Events)",
        description:
          'A `text/event-stream` of every job created in the domain and every change of a ' +
          "job's status, in the order they committed, whichever PIE process made them. Each " +
          'event is `id: <position>`, `event: job` and one line of JSON; an idle stream gets a ' +
          '`: keep-alive` comment every PIE_EVENTS_HEARTBEAT_S seconds. Reconnect with the ' +
          'last id received (`Last-Event-ID` header or `last_event_id` parameter) to get exactly ' +
          'the events after it. An id older than the kept window (PIE_EVENTS_RETENTION_S) gets ' +
          'an `event: reset` first: reload what you show, then carry on from the stream. A ' +
          'consumer that stops reading is disconnected once PIE_EVENTS_MAX_BUFFER_BYTES wait ' +
          'unsent. See docs/API-CONTRACT.md, "Job events".',
        params: DomainParams,
        querystring: EventsQuery,
        headers: EventsHeaders,
        response: {
          200: {
            description: 'The event stream; it stays open until the client or the server ends it.',
            content: {
              'text/event-stream': {
                schema: Type.String({ examples: [EVENT_STREAM_EXAMPLE] }),
              },
            },
          },
          ...errorResponses({ 404: 'domain "south_australia" not found in client "client-1"' }),
        },
      },
    },
    async (request, reply) => {
      const { client_id, domain_id } = request.params;
      const raw = request.headers['last-event-id'] ?? request.query.last_event_id;
      const stream = await openJobEventStream(ctx, request.caller, {
        clientId: client_id,
        domainId: domain_id,
        lastEventId: raw === undefined ? undefined : Number(raw),
      });
      // From here on the response is ours: a stream, not a Fastify reply.
      reply.hijack();
      const sink = new SseSink(reply.raw, options, ctx.metrics);
      try {
        const stop = await stream.start(sink);
        await sink.done;
        stop();
      } catch (error) {
        // Headers are sent: the stream can only end. The client reconnects with its last id.
        request.log.error({ err: error }, 'job event stream failed');
        sink.cutOff();
      }
    },
  );
}
