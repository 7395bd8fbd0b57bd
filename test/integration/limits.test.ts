import assert from 'node:assert/strict';
import { it } from 'node:test';
import { REFUSAL_HOLD_MS } from '../../src/http/rate-limit.js';
import { createTenant, runJobPath, uniqueId, type Tenant } from '../helpers/fixtures.js';
import { describeOnEachBackend, errorMessage, type ApiResponse } from '../helpers/test-server.js';
import { sleep } from '../helpers/wait.js';

/**
 * The limits on callers, through HTTP: the per-client rate limit, the open-jobs quota, and the caps
 * on body size, JSON depth, page size and claim batch size. The server allows each client 20
 * requests per second in bursts of 40, and 3 open jobs.
 */
const RPS = 20;
const BURST = 40;
const QUOTA = 3;

const runPath = (tenant: Tenant) => runJobPath(tenant.domainPath, tenant.services[0]);

function assertTooMany(response: ApiResponse, message: RegExp) {
  assert.equal(response.status, 429, JSON.stringify(response.body));
  assert.match(errorMessage(response), message);
  const retryAfter = response.headers.get('retry-after');
  assert.match(retryAfter ?? '', /^[1-9][0-9]*$/, 'Retry-After in whole seconds');
  return Number(retryAfter);
}

describeOnEachBackend(
  'limits',
  (server) => {
    /** Fires `count` GETs at once and sorts the answers by status. */
    async function flood(path: string, count: number, token?: string) {
      const started = performance.now();
      // Every request let in was let in before its answer: by the last 200, the bucket can
      // have refilled for that long at most.
      let lastAllowedS = 0;
      const answers = await Promise.all(
        Array.from({ length: count }, async () => {
          const answer = await server().get(path, { token });
          if (answer.status === 200) lastAllowedS = (performance.now() - started) / 1000;
          return answer;
        }),
      );
      const byStatus = new Map<number, ApiResponse[]>();
      for (const answer of answers) {
        byStatus.set(answer.status, [...(byStatus.get(answer.status) ?? []), answer]);
      }
      return { byStatus, lastAllowedS };
    }

    /** Asks until refused (the bucket refills between floods) and returns its Retry-After. */
    async function exhaust(path: string): Promise<number> {
      for (let i = 0; i < BURST * 2; i++) {
        const started = performance.now();
        const answer = await server().get(path);
        if (answer.status === 429) {
          // Refusals are held back, so a client retrying at once cannot spin on them.
          assert.ok(performance.now() - started >= REFUSAL_HOLD_MS / 2 - 5, 'the 429 was held');
          return assertTooMany(answer, /too many requests/);
        }
        assert.equal(answer.status, 200);
      }
      throw new Error(`${path} was never refused`);
    }

    it('answers 429 with Retry-After once a client spends its burst, then lets it in again', async (t) => {
      const clientId = uniqueId('flooder');
      assert.equal((await server().put(`/v2/clients/${clientId}`, {})).status, 201);
      const { byStatus, lastAllowedS } = await flood(`/v2/clients/${clientId}`, BURST + 40);
      const allowed = byStatus.get(200)?.length ?? 0;
      const refused = byStatus.get(429) ?? [];
      // The PUT spent one token; the rest of the burst, plus what refilled meanwhile, got in.
      assert.ok(allowed >= BURST - 1, `${allowed} allowed`);
      assert.ok(allowed <= BURST + Math.ceil(lastAllowedS * RPS), `${allowed} allowed`);
      assert.equal(allowed + refused.length, BURST + 40, 'nothing but 200 and 429');
      for (const answer of refused) {
        assert.equal(assertTooMany(answer, /too many requests.*20 per second/), 1);
      }
      t.diagnostic(
        `${allowed} allowed within ${lastAllowedS.toFixed(2)} s, ${refused.length} refused`,
      );

      // Another client is not held back by this one's flood: asked at once after a 429.
      const other = uniqueId('quiet');
      assert.equal((await server().put(`/v2/clients/${other}`, {})).status, 201);
      const retryAfter = await exhaust(`/v2/clients/${clientId}`);
      assert.equal((await server().get(`/v2/clients/${other}`)).status, 200);

      // Retry-After is honest: after waiting it, the client is let in again.
      await sleep(retryAfter * 1000);
      assert.equal((await server().get(`/v2/clients/${clientId}`)).status, 200);
    });

    it("a token refused a client spends its own budget, not that client's", async () => {
      const victim = uniqueId('victim');
      assert.equal((await server().put(`/v2/clients/${victim}`, {})).status, 201);
      const outsider = await server().token(['read'], { clients: ['someone-else'] });
      const { byStatus } = await flood(`/v2/clients/${victim}`, BURST + 20, outsider);
      assert.ok((byStatus.get(403)?.length ?? 0) >= BURST - 1, 'the outsider gets its 403s');
      assert.ok((byStatus.get(429)?.length ?? 0) >= 1, 'then its own budget runs out');
      assert.equal((await server().get(`/v2/clients/${victim}`)).status, 200);
    });

    it('leaves health, metrics and the API document unlimited, and counts 429s', async () => {
      for (const path of ['/healthz', '/openapi.json', '/metrics']) {
        const answers = await Promise.all(
          Array.from({ length: BURST + 20 }, () => server().get(path, { token: null })),
        );
        assert.deepEqual(new Set(answers.map((answer) => answer.status)), new Set([200]), path);
      }
      const metrics = await server().get('/metrics', { token: null });
      const line = /^pie_rate_limited_total\{reason="rate_limit"\} (\d+)$/m.exec(metrics.body);
      assert.ok(Number(line?.[1]) > 0, 'the earlier floods were counted');
    });

    it('refuses new jobs at the open-jobs quota until jobs finish or are cancelled', async () => {
      const tenant = await createTenant(server());
      const jobs: string[] = [];
      for (let i = 0; i < QUOTA; i++) {
        const run = await server().post(runPath(tenant), {});
        assert.equal(run.status, 202, JSON.stringify(run.body));
        jobs.push(run.body.job_id);
      }
      assertTooMany(await server().post(runPath(tenant), {}), /quota of 3 open jobs/);
      assertTooMany(
        await server().post(`${tenant.domainPath}/services/init`),
        /quota of 3 open jobs/,
      );
      assertTooMany(
        await server().post(`${tenant.domainPath}/assignments/default/jobs`, {}),
        /quota of 3 open jobs/,
      );
      const listed = await server().get(`${tenant.domainPath}/jobs?limit=500`);
      assert.equal(listed.body.items.length, QUOTA, 'the refused requests started nothing');

      // Another tenant is not affected by this one's quota.
      const other = await createTenant(server());
      assert.equal((await server().post(runPath(other), {})).status, 202);

      // A cancelled job and a completed one free two places, seen once the counts are renewed
      // (at most a second old): exactly two more jobs may start.
      const cancel = await server().post(`${tenant.domainPath}/jobs/${jobs[0]}/cancel`);
      assert.equal(cancel.status, 200, JSON.stringify(cancel.body));
      const complete = await server().post(
        `/v2/models/${tenant.modelId}/versions/${tenant.version}/jobs/${jobs[1]}/complete`,
        { status: 'success', output: {} },
      );
      assert.equal(complete.status, 200, JSON.stringify(complete.body));
      await sleep(1100);
      assert.equal((await server().post(runPath(tenant), {})).status, 202);
      assert.equal((await server().post(runPath(tenant), {})).status, 202);
      assertTooMany(await server().post(runPath(tenant), {}), /quota/);
    });

    it('answers 413 for a body over the size limit', async () => {
      const tenant = await createTenant(server());
      const big = await server().post(runPath(tenant), { input: { blob: 'x'.repeat(70_000) } });
      assert.equal(big.status, 413);
      assert.match(errorMessage(big), /too large/);
    });

    it('answers 400 for a body nested deeper than 32 levels, and accepts 32', async () => {
      const tenant = await createTenant(server());
      // The body is level 1 and `input` level 2: 30 more objects make 32 in all.
      let input: Record<string, unknown> = {};
      for (let i = 0; i < 30; i++) input = { next: input };
      const atLimit = await server().post(runPath(tenant), { input });
      assert.equal(atLimit.status, 202, JSON.stringify(atLimit.body));
      const tooDeep = await server().post(runPath(tenant), { input: { next: input } });
      assert.equal(tooDeep.status, 400);
      assert.match(errorMessage(tooDeep), /deeper than 32 levels/);
    });

    it('answers 400 for a page size or a claim batch over its maximum', async () => {
      const tenant = await createTenant(server());
      for (const path of ['/v2/clients', `${tenant.domainPath}/jobs`, '/v2/models']) {
        assert.equal((await server().get(`${path}?limit=500`)).status, 200, path);
        const over = await server().get(`${path}?limit=501`);
        assert.equal(over.status, 400, path);
        assert.match(errorMessage(over), /limit/);
      }
      const claim = `/v2/models/${tenant.modelId}/versions/${tenant.version}/jobs/claim`;
      const batch = (maxJobs: number) => ({ worker_id: 'w1', max_jobs: maxJobs, wait_ms: 0 });
      assert.equal((await server().post(claim, batch(100))).status, 200);
      const over = await server().post(claim, batch(101));
      assert.equal(over.status, 400);
      assert.match(errorMessage(over), /max_jobs/);
    });
  },
  undefined,
  undefined,
  { rateLimit: { rps: RPS, burst: BURST }, quotaOpenJobs: QUOTA },
);
