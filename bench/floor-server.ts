import Fastify from 'fastify';
import pg from 'pg';

/**
 * The floor the run_job route is compared with: a bare Fastify route on the same path that
 * does one INSERT into the jobs table through a `pg` pool (max 20, as PIE's) and answers 202
 * with the job id, with no authentication, validation or look-ups. Run as its own process:
 * `node --import tsx bench/floor-server.ts '<json FloorOptions>'`; prints its URL.
 */

export interface FloorOptions {
  databaseUrl: string;
  /** An assignment that exists, so the row is valid for the schema. */
  clientId: string;
  domainId: string;
  assignmentId: string;
  modelId: string;
  modelVersion: string;
}

const raw = process.argv[2];
if (raw === undefined) {
  process.stderr.write("usage: node --import tsx bench/floor-server.ts '<json options>'\n");
  process.exit(2);
}
const options = JSON.parse(raw) as FloorOptions;

const pool = new pg.Pool({ connectionString: options.databaseUrl, max: 20 });
pool.on('error', () => undefined);

const INSERT = `insert into jobs (client_id, domain_id, service_id, assignment_id, assignment_key,
    model_id, model_version, job_type, max_attempts, deadline_at)
  values ($1, $2, $3, $4, $5, $6, $7, 'inference', 5, now() + interval '1 hour')
  returning job_id`;

const app = Fastify({ logger: false });

app.post<{ Params: { client_id: string; domain_id: string; service_id: string; key: string } }>(
  '/v2/clients/:client_id/domains/:domain_id/service/:service_id/assignments/:key/jobs',
  async (request, reply) => {
    const { rows } = await pool.query<{ job_id: string }>(INSERT, [
      options.clientId,
      options.domainId,
      request.params.service_id,
      options.assignmentId,
      request.params.key,
      options.modelId,
      options.modelVersion,
    ]);
    return reply.status(202).send({ job_id: rows[0]!.job_id });
  },
);

const shutDown = () => {
  void app
    .close()
    .then(() => pool.end())
    .finally(() => process.exit(0));
};
process.once('SIGTERM', shutDown);
process.once('SIGINT', shutDown);

await pool.query('select 1');
const address = await app.listen({ host: '127.0.0.1', port: 0 });
process.stdout.write(`floor serving at ${address}\n`);
