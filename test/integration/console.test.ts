import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { artifactPath, launchChromium, type LaunchedChromium } from '../helpers/browser.js';
import { expectBody } from '../helpers/assertions.js';
import {
  completePath,
  createTenant,
  runJob as runTenantJob,
  type Tenant,
} from '../helpers/fixtures.js';
import { insertJobs, ROW_DOMAIN, seedJobTarget } from '../helpers/job-rows.js';
import { describeOnEachBackend, type TestServer } from '../helpers/test-server.js';

/**
 * The console at /ui in a real browser (Debian's chromium through playwright-core), against a
 * test server with dispatch running and real tokens. Work is started and completed through the
 * API, as clients and workers would; the page must show it without a reload. One browser for
 * the file; each test signs in in its own context (sessionStorage is per context).
 */

let chromium: LaunchedChromium | undefined;
let browser: Browser;
before(async () => {
  chromium = await launchChromium();
  browser = chromium.browser;
});
after(async () => {
  await chromium?.close();
});

const WAIT = { timeout: 15_000 };

/** A page signed in with `token` through the sign-in form, at `path`. */
async function signedIn(server: TestServer, token: string, path = '/ui') {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  await page.goto(server.url + path);
  await page.getByLabel('Token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('header.top').waitFor(WAIT);
  return { context, page };
}

async function shot(page: Page, server: TestServer, name: string) {
  await page.screenshot({ path: artifactPath(`${name}-${server.backend}.png`), fullPage: true });
}

describeOnEachBackend(
  'console',
  (current) => {
    let server: TestServer;
    let tenant: Tenant;
    let ui: string;
    let jobsUrl: string;
    let context: BrowserContext;
    let page: Page;
    let successJob: string;
    const marker = `only-client-a-${Date.now()}`;

    before(async () => {
      server = current();
      tenant = await createTenant(server);
      ui = `/ui/clients/${tenant.clientId}/domains/${tenant.domainId}`;
      jobsUrl = `${ui}/jobs`;
    });
    after(async () => {
      await context?.close();
    });

    const runJob = async (body: object = {}) =>
      expectBody<{ job_id: string }>(
        await server.post(`${tenant.domainPath}/service/service-1/assignments/default/jobs`, {
          input: { marker },
          ...body,
        }),
        202,
      ).job_id;
    const jobStatus = async (of: Tenant, jobId: string) =>
      (await server.get(`${of.domainPath}/jobs/${jobId}`)).body.status as string;
    /**
     * A job's changes through the API, once the log has numbered its change to `last`
     * (milliseconds after it committed): a page opened then finds it, rather than relying on
     * the stream for a change numbered as the page was loading.
     */
    const changesOf = async (of: Tenant, jobId: string, last: string) => {
      let changes: { status: string; attempt: number }[] = [];
      for (let tries = 0; changes.at(-1)?.status !== last && tries < 50; tries += 1) {
        if (tries > 0) await new Promise((resolve) => setTimeout(resolve, 100));
        changes = expectBody<{ items: typeof changes }>(
          await server.get(`${of.domainPath}/jobs/${jobId}/events`),
          200,
        ).items;
      }
      return changes;
    };
    const versionPath = () => `/v2/models/${tenant.modelId}/versions/${tenant.version}`;

    it('asks for the token on a shared link, then opens that page', async () => {
      context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      page = await context.newPage();
      await page.goto(server.url + jobsUrl);
      await page.getByLabel('Token').waitFor(WAIT);
      await shot(page, server, 'sign-in');
      await page.getByLabel('Token').fill('not-a-token');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByText('That token was not accepted.').waitFor(WAIT);
      await page.getByLabel('Token').fill(server.adminToken);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('heading', { name: `Jobs of ${tenant.domainId}` }).waitFor(WAIT);
      assert.equal(new URL(page.url()).pathname, jobsUrl);
    });

    it('shows a job created through the API, and its success, without a reload', async () => {
      // A reload would lose this.
      await page.evaluate(
        () => ((globalThis as unknown as { unreloaded: boolean }).unreloaded = true),
      );
      successJob = await runJob({ subscribe: true });
      const row = page.locator(`tr[data-job-id="${successJob}"]`);
      await row.locator('[data-status="queued"]').waitFor(WAIT);

      // A worker claims it and completes it.
      const worker = await server.token(['jobs:complete'], { models: [tenant.modelId] });
      const claimed = expectBody<{ jobs: { job_id: string }[] }>(
        await server.post(
          `${versionPath()}/jobs/claim`,
          { worker_id: 'console-test', max_jobs: 1, wait_ms: 0, lease_s: 60 },
          { token: worker },
        ),
        200,
      );
      assert.deepEqual(
        claimed.jobs.map((job) => job.job_id),
        [successJob],
      );
      expectBody(
        await server.post(
          `${versionPath()}/jobs/${successJob}/complete`,
          { status: 'success', output: { eta_delay_s: 42, marker } },
          { token: worker },
        ),
        200,
      );
      await row.locator('[data-status="success"]').waitFor(WAIT);
      assert.equal(await page.evaluate(() => (globalThis as any).unreloaded), true);
      // Live through the domain's event stream, not the polling fallback.
      const metrics = await fetch(`${server.url}/metrics`).then((response) => response.text());
      assert.match(metrics, /^pie_event_streams_open [1-9]/m);
      await shot(page, server, 'jobs');
    });

    it('opens the job: its features, output and the training job it triggered', async () => {
      await page.locator(`a[href="${jobsUrl}/${successJob}"]`).first().click();
      await page.getByRole('heading', { name: `Job ${successJob}` }).waitFor(WAIT);
      assert.match(await page.getByLabel('features').innerText(), /"route": "r1"/);
      assert.match(await page.getByLabel('output').innerText(), /"eta_delay_s": 42/);
      const children = expectBody<{ items: { job_id: string; job_type: string }[] }>(
        await server.get(`${tenant.domainPath}/jobs?parent_job_id=${successJob}`),
        200,
      ).items;
      assert.equal(children.length, 1);
      assert.equal(children[0]!.job_type, 'training');
      const child = page.locator(`svg.lineage a[data-lineage="${children[0]!.job_id}"]`);
      await child.waitFor(WAIT);
      assert.match((await child.textContent()) ?? '', /training/);
      await shot(page, server, 'job');

      // The child's own page draws this job above it.
      await child.click();
      await page.locator(`svg.lineage a[data-lineage="${successJob}"]`).waitFor(WAIT);
    });

    it('cancels a queued job from its page', async () => {
      const jobId = await runJob();
      await page.goto(`${server.url}${jobsUrl}/${jobId}`);
      await page.getByRole('button', { name: 'Cancel' }).click();
      await page.locator('h1 [data-status="cancelled"]').waitFor(WAIT);
      assert.equal(await jobStatus(tenant, jobId), 'cancelled');
      assert.equal(await page.getByRole('button', { name: 'Cancel' }).count(), 0);
    });

    it('retries a failed job from its page', async () => {
      const jobId = await runJob();
      expectBody(
        await server.post(`${versionPath()}/jobs/${jobId}/complete`, {
          status: 'failure',
          error: { code: 'model_error', message: 'no timetable' },
        }),
        200,
      );
      await page.goto(`${server.url}${jobsUrl}/${jobId}`);
      assert.match(await page.getByLabel('error').innerText(), /no timetable/);
      await page.getByRole('button', { name: 'Retry' }).click();
      await page.getByText('Retried as').waitFor(WAIT);
      const retries = expectBody<{ items: { job_id: string; retry_of: string }[] }>(
        await server.get(`${tenant.domainPath}/jobs?parent_job_id=${jobId}`),
        200,
      ).items;
      assert.equal(retries.length, 1);
      assert.equal(retries[0]!.retry_of, jobId);
      await page.locator(`svg.lineage a[data-lineage="${retries[0]!.job_id}"]`).waitFor(WAIT);
    });

    it('shows exact counts past the 100 a page of jobs holds, on the overview and the domain', async () => {
      // 150 succeeded jobs and one queued, written straight to the database (150 completions
      // through the API would take a while); the event log counts them as it would any job.
      const clientId = `stats-${Date.now()}`;
      await seedJobTarget(server.db, clientId);
      await insertJobs(server.db, clientId, [
        ...Array.from({ length: 150 }, (_, i) => ({
          tag: `done-${i}`,
          status: 'success' as const,
        })),
        { tag: 'waiting', status: 'queued' },
      ]);
      await server.db.query('select pie_sequence_job_events(100000)');
      await page.goto(`${server.url}/ui`);
      const count = (row: string, status: string) =>
        page.locator(`${row} [data-count="${status}"]`);
      const domainRow = `tr[data-domain="${clientId}/${ROW_DOMAIN}"]`;
      await count(domainRow, 'success')
        .filter({ hasText: /^\s*150\s*$/ })
        .waitFor(WAIT);
      assert.equal((await count(domainRow, 'queued').innerText()).trim(), '1');
      assert.equal((await count(domainRow, 'failure').innerText()).trim(), '0');
      const clientRow = `tr[data-client="${clientId}"]`;
      assert.equal((await count(clientRow, 'success').innerText()).trim(), '150');
      assert.doesNotMatch(await page.locator('main').innerText(), /100\+/);

      await page.goto(`${server.url}/ui/clients/${clientId}/domains/${ROW_DOMAIN}`);
      await count('table.stats', 'success')
        .filter({ hasText: /^\s*150\s*$/ })
        .waitFor(WAIT);
      await page.locator('.chart canvas').waitFor(WAIT);
    });

    it('screenshots the overview, domain, models and version pages', async () => {
      await page.goto(`${server.url}/ui`);
      await page.locator('.chart canvas').waitFor(WAIT);
      await page.getByRole('link', { name: tenant.domainId }).first().waitFor(WAIT);
      await shot(page, server, 'overview');
      await page.goto(`${server.url}${ui}`);
      await page.getByRole('heading', { name: `Domain ${tenant.domainId}` }).waitFor(WAIT);
      await page
        .getByRole('progressbar')
        .first()
        .waitFor(WAIT)
        .catch(() => undefined);
      await page.getByRole('button', { name: 'Pause' }).first().waitFor(WAIT);
      await shot(page, server, 'domain');
      await page.goto(`${server.url}/ui/models/${tenant.modelId}`);
      await page.getByRole('heading', { name: `Model ${tenant.modelId}` }).waitFor(WAIT);
      await shot(page, server, 'model');
      await page.goto(`${server.url}/ui/models/${tenant.modelId}/versions/${tenant.version}`);
      await page.getByRole('heading', { name: 'Feature contract' }).waitFor(WAIT);
      await shot(page, server, 'version');
    });

    it('pauses and resumes a subscription from the domain page', async () => {
      await page.goto(`${server.url}${ui}`);
      await page.getByRole('button', { name: 'Pause' }).first().click();
      await page.getByRole('button', { name: 'Resume' }).first().waitFor(WAIT);
      const subs = (await server.get(`${tenant.domainPath}/subscriptions`)).body.items;
      assert.equal(subs[0].status, 'paused');
      await page.getByRole('button', { name: 'Resume' }).first().click();
      await page.getByRole('button', { name: 'Pause' }).first().waitFor(WAIT);
    });

    it('shows both attempts of a job dispatched twice in its timeline', async () => {
      // A tenant of its own: its version's queue holds only this job, so the claims take it.
      const own = await createTenant(server);
      const version = `/v2/models/${own.modelId}/versions/${own.version}`;
      const jobId = await runTenantJob(server, own, { input: { marker } });
      const worker = await server.token(['jobs:complete'], { models: [own.modelId] });
      const claim = async (waitMs: number) =>
        expectBody<{ jobs: { job_id: string; attempt: number }[] }>(
          await server.post(
            `${version}/jobs/claim`,
            { worker_id: 'console-timeline', max_jobs: 1, wait_ms: waitMs, lease_s: 60 },
            { token: worker },
          ),
          200,
        ).jobs;
      assert.deepEqual(
        (await claim(0)).map((job) => [job.job_id, job.attempt]),
        [[jobId, 1]],
      );
      expectBody(
        await server.post(
          `${version}/jobs/${jobId}/heartbeat`,
          { attempt: 1, status: 'running' },
          { token: worker },
        ),
        200,
      );
      // The worker goes quiet: its lease expires, the reaper puts the job back after a backoff
      // (under a second), and the next claim is attempt 2.
      await server.db.query(
        `update jobs set lease_expires_at = now() - interval '1 second'
         where client_id = $1 and job_id = $2`,
        [own.clientId, jobId],
      );
      let second: { job_id: string; attempt: number }[] = [];
      for (let tries = 0; second.length === 0 && tries < 5; tries += 1) second = await claim(5000);
      assert.deepEqual(
        second.map((job) => [job.job_id, job.attempt]),
        [[jobId, 2]],
      );
      expectBody(
        await server.post(
          completePath(own, jobId),
          { status: 'success', attempt: 2, output: { marker } },
          { token: worker },
        ),
        200,
      );
      const changes = await changesOf(own, jobId, 'success');
      assert.deepEqual(
        changes.map((change) => [change.status, change.attempt]),
        [
          ['queued', 0],
          ['dispatched', 1],
          ['running', 1],
          ['queued', 1],
          ['dispatched', 2],
          ['success', 2],
        ],
      );

      await page.goto(
        `${server.url}/ui/clients/${own.clientId}/domains/${own.domainId}/jobs/${jobId}`,
      );
      const attempts = page.locator('.attempts');
      await attempts.locator('[data-attempt="2"] [data-status="success"]').waitFor(WAIT);
      const statuses = async (attempt: string) =>
        attempts
          .locator(`[data-attempt="${attempt}"] li [data-status]`)
          .evaluateAll((nodes) => nodes.map((node) => node.getAttribute('data-status')));
      assert.deepEqual(await statuses('queued'), ['queued']);
      assert.deepEqual(await statuses('1'), ['dispatched', 'running', 'queued']);
      assert.deepEqual(await statuses('2'), ['dispatched', 'success']);
      assert.match(await attempts.locator('[data-attempt="1"] h3').innerText(), /Attempt 1/);
      assert.match(await attempts.locator('[data-attempt="2"] h3').innerText(), /Attempt 2/);
      assert.match(await attempts.locator('[data-attempt="2"]').innerText(), /after queued/);
      // The picture: a bar per attempt, a segment per status.
      for (const [attempt, segments] of [
        ['queued', ['queued']],
        ['1', ['dispatched', 'running', 'queued']],
        ['2', ['dispatched', 'success']],
      ] as const) {
        assert.deepEqual(
          await page
            .locator(`svg.bars g[data-attempt="${attempt}"] rect`)
            .evaluateAll((nodes) => nodes.map((node) => node.getAttribute('data-status'))),
          segments,
        );
      }
      assert.equal(await page.locator('[data-timeline="from-row"]').count(), 0);
      await shot(page, server, 'job-timeline');
    });

    it("says when the event log no longer holds a job's start, and shows its timestamps", async () => {
      const jobId = await runJob();
      expectBody(await server.post(`${tenant.domainPath}/jobs/${jobId}/cancel`), 200);
      // As retention would have, later: the job's creation is gone from the log.
      await server.db.query(
        `delete from job_events
         where client_id = $1 and job_id = $2 and previous_status is null`,
        [tenant.clientId, jobId],
      );
      assert.deepEqual(
        (await changesOf(tenant, jobId, 'cancelled')).map((change) => change.status),
        ['cancelled'],
      );
      await page.goto(`${server.url}${jobsUrl}/${jobId}`);
      const note = page.locator('[data-timeline="from-row"]');
      await note.waitFor(WAIT);
      assert.match(await note.innerText(), /older changes are gone/);
      // The row's own timestamps, then what the log keeps: the cancel.
      assert.match(await page.locator('.job-timeline ol').first().innerText(), /created/);
      await page.locator('.attempts [data-status="cancelled"]').waitFor(WAIT);
      assert.equal(await page.locator('.attempts [data-status="queued"]').count(), 0);
    });

    it('retries every failed job of the domain from its page, and says how many', async () => {
      const own = await createTenant(server);
      const failed: string[] = [];
      for (let i = 0; i < 3; i += 1) {
        const jobId = await runTenantJob(server, own, { input: { marker, i } });
        expectBody(
          await server.post(completePath(own, jobId), {
            status: 'failure',
            error: { code: 'model_error' },
          }),
          200,
        );
        failed.push(jobId);
      }
      await runTenantJob(server, own); // queued: not retried
      await page.goto(`${server.url}/ui/clients/${own.clientId}/domains/${own.domainId}`);
      page.once('dialog', (dialog) => void dialog.accept());
      await page.getByRole('button', { name: 'Retry all failures' }).click();
      const said = page.getByRole('status');
      await said.waitFor(WAIT);
      assert.match(await said.innerText(), /Retried 3 failed jobs/);
      const retries = expectBody<{ items: { job_id: string; retry_of: string | null }[] }>(
        await server.get(`${own.domainPath}/jobs?status=queued`),
        200,
      ).items.filter((job) => job.retry_of !== null);
      assert.equal(retries.length, 3);
      assert.deepEqual(retries.map((job) => job.retry_of).sort(), [...failed].sort());
      for (const jobId of failed) assert.equal(await jobStatus(own, jobId), 'failure');
      await shot(page, server, 'domain-retried');
    });

    it('pauses and resumes a schedule from the domain page', async () => {
      const own = await createTenant(server);
      const schedulePath = `${own.domainPath}/schedules/yearly`;
      expectBody(
        await server.put(schedulePath, { cron: '0 0 1 1 *', action: { type: 'services_init' } }),
        201,
      );
      const scheduleStatus = async () =>
        expectBody<{ status: string }>(await server.get(schedulePath), 200).status;
      await page.goto(`${server.url}/ui/clients/${own.clientId}/domains/${own.domainId}`);
      const row = page.locator('tr[data-schedule="yearly"]');
      await row.getByRole('button', { name: 'Pause' }).click();
      await row.getByRole('button', { name: 'Resume' }).waitFor(WAIT);
      assert.equal(await scheduleStatus(), 'paused');
      assert.match(await row.innerText(), /paused/);
      await row.getByRole('button', { name: 'Resume' }).click();
      await row.getByRole('button', { name: 'Pause' }).waitFor(WAIT);
      assert.equal(await scheduleStatus(), 'active');
    });

    it('shows a read token no action buttons', async () => {
      const failed = await runJob();
      expectBody(
        await server.post(`${versionPath()}/jobs/${failed}/complete`, { status: 'failure' }),
        200,
      );
      const queued = await runJob();
      const read = await server.token(['read'], { clients: [tenant.clientId] });
      const reader = await signedIn(server, read, `${jobsUrl}/${failed}`);
      try {
        for (const [path, heading] of [
          [`${jobsUrl}/${failed}`, `Job ${failed}`],
          [`${jobsUrl}/${queued}`, `Job ${queued}`],
          [ui, `Domain ${tenant.domainId}`],
          [jobsUrl, `Jobs of ${tenant.domainId}`],
        ] as const) {
          await reader.page.goto(server.url + path);
          await reader.page.getByRole('heading', { name: heading }).waitFor(WAIT);
          await reader.page.locator('table, pre').first().waitFor(WAIT);
          const actions = reader.page.getByRole('button', {
            name: /^(Cancel|Retry|Pause|Resume|Retry all failures)$/,
          });
          assert.equal(await actions.count(), 0, `action buttons on ${path}`);
        }
      } finally {
        await reader.context.close();
      }
    });

    it("shows another client's token nothing of this client", async () => {
      const other = await createTenant(server);
      const token = await server.token(['read', 'jobs:write'], { clients: [other.clientId] });
      const outsider = await signedIn(server, token);
      const seen: string[] = [];
      outsider.page.on('response', (response) => {
        void response.text().then(
          (text) => seen.push(text),
          () => undefined,
        );
      });
      try {
        await outsider.page.goto(`${server.url}/ui`);
        await outsider.page.getByRole('link', { name: other.domainId }).first().waitFor(WAIT);
        assert.doesNotMatch(await outsider.page.content(), new RegExp(tenant.clientId));
        for (const path of [ui, jobsUrl, `${jobsUrl}/${successJob}`]) {
          await outsider.page.goto(server.url + path);
          await outsider.page.getByRole('alert').waitFor(WAIT);
          assert.match(await outsider.page.getByRole('alert').innerText(), /may not act on client/);
          const dom = await outsider.page.content();
          assert.doesNotMatch(dom, new RegExp(successJob), path);
          assert.doesNotMatch(dom, new RegExp(marker), path);
        }
        // Give in-flight polls a moment, then check everything the page was sent.
        await outsider.page.waitForTimeout(500);
        assert.ok(seen.length > 5, 'the page made requests');
        for (const text of seen) {
          assert.doesNotMatch(text, new RegExp(marker));
          assert.doesNotMatch(text, new RegExp(`"${successJob}"`));
        }
      } finally {
        await outsider.context.close();
      }
    });
  },
  undefined,
  {},
);
