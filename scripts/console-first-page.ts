/**
 * How long the console's jobs page takes to show its first page for a domain of 1,000,000 jobs
 * (docs/CONSOLE.md, "Cost on a large domain"). Not part of `npm test`: seeding takes a minute.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npx tsx scripts/console-first-page.ts [jobs]
 *
 * It makes its own database on that server (dropped at the end), a tenant through the API, one
 * job completed through the API, then the rest straight into the table as the bench's retained
 * scenario does (`insert ... select generate_series`), analyzes, and times in chromium, from
 * navigation until the page's 50 rows are in the DOM, a signed-in load of
 * `/ui/clients/{c}/domains/{d}/jobs`, unfiltered and filtered by status.
 */
import { seedFinishedJobs } from '../bench/scenarios/retained-seed.js';
import { launchChromium } from '../test/helpers/browser.js';
import { expectBody } from '../test/helpers/assertions.js';
import { createTenant } from '../test/helpers/fixtures.js';
import { testBackends } from '../test/helpers/backends.js';
import { TestServer } from '../test/helpers/test-server.js';

const count = Number(process.argv[2] ?? 1_000_000);
const backend = testBackends().find((b) => b.name === 'postgres');
if (backend === undefined) throw new Error('set DATABASE_URL to a PostgreSQL server');

const server = await TestServer.start(backend);
const chromium = await launchChromium();
const browser = chromium.browser;
try {
  const tenant = await createTenant(server);
  const { job_id } = expectBody<{ job_id: string }>(
    await server.post(`${tenant.domainPath}/service/service-1/assignments/default/jobs`, {}),
    202,
  );
  expectBody(
    await server.post(
      `/v2/models/${tenant.modelId}/versions/${tenant.version}/jobs/${job_id}/complete`,
      {
        status: 'success',
        output: { eta_delay_s: 1 },
      },
    ),
    200,
  );
  const shadow = expectBody<{ assignment_id: string }>(
    await server.put(`${tenant.domainPath}/assignments/shadow`, {
      model_id: tenant.modelId,
      model_version: tenant.version,
    }),
    201,
  );
  const started = Date.now();
  await seedFinishedJobs(server.db, {
    clientId: tenant.clientId,
    shadowAssignmentId: shadow.assignment_id,
    count,
    chunk: 100_000,
    log: (line) => console.log(line),
  });
  await server.db.exec('analyze jobs');
  console.log(`seeded ${count} jobs in ${((Date.now() - started) / 1000).toFixed(0)} s`);

  const context = await browser.newContext();
  const page = await context.newPage();
  const jobs = `${server.url}/ui/clients/${tenant.clientId}/domains/${tenant.domainId}/jobs`;
  await page.goto(jobs);
  await page.getByLabel('Token').fill(server.adminToken);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('tr[data-job-id]').nth(49).waitFor();
  for (const [label, url] of [
    ['unfiltered', jobs],
    ['status=failure', `${jobs}?status=failure`],
    ['service_id=service-7', `${jobs}?service_id=service-7`],
  ] as const) {
    const times: number[] = [];
    for (let i = 0; i < 5; i += 1) {
      const t0 = performance.now();
      await page.goto(url);
      await page.locator('tr[data-job-id]').nth(49).waitFor();
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    console.log(
      `${label}: first page shown in ${times.map((t) => t.toFixed(0)).join(', ')} ms (median ${times[2]!.toFixed(0)} ms)`,
    );
  }
} finally {
  await chromium.close();
  await server.close();
}
