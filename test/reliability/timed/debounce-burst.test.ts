import assert from 'node:assert/strict';
import { it } from 'node:test';
import { assertStatus } from '../../helpers/assertions.js';
import { completePath, createTenant, runJob, trainingJobs } from '../../helpers/fixtures.js';
import { sleep } from '../../helpers/wait.js';
import { describeOnEachBackend } from '../../helpers/test-server.js';

/**
 * SPEC 10's debounce, at its own figures: `debounce_s: 2`, 200 inference completions 20 at a
 * time → one training job with `count: 200`, reported in every completion; a completion after
 * the window starts a second job. Timed (the burst must fit in the window), so it runs alone.
 */

describeOnEachBackend('debounce burst', (server) => {
  it('debounce_s 2: 200 completions, 20 at a time, make one job; a later one another', async (context) => {
    const t = await createTenant(server());
    const created = await server().post(`${t.domainPath}/subscriptions`, {
      source: { model_id: t.modelId },
      action: { assignment_key: 'default', job_type: 'training' },
      debounce_s: 2,
    });
    assertStatus(created, 201);
    const subscriptionId = created.body.subscription_id as string;
    const jobIds: string[] = [];
    for (let i = 0; i < 201; i++) jobIds.push(await runJob(server(), t, { input: { i } }));

    const started = Date.now();
    const answers: unknown[] = [];
    for (let i = 0; i < 200; i += 20) {
      const group = jobIds.slice(i, i + 20).map(async (jobId) => {
        const done = await server().post(completePath(t, jobId), {
          status: 'success',
          output: { eta: 4 },
        });
        assertStatus(done, 200);
        return done.body.triggered_events as unknown;
      });
      answers.push(...(await Promise.all(group)));
    }
    const burstMs = Date.now() - started;
    context.diagnostic(`200 completions in ${burstMs} ms`);
    assert.ok(burstMs < 2000, `200 completions took ${burstMs} ms, more than the 2 s window`);

    const training = await trainingJobs(server(), t);
    assert.equal(training.length, 1);
    assert.equal(training[0]!.trigger.count, 200);
    for (const events of answers) {
      assert.deepEqual(events, [{ subscription_id: subscriptionId, job_id: training[0]!.job_id }]);
    }

    await sleep(Math.max(0, training[0]!.run_at.getTime() - Date.now()) + 100);
    const late = await server().post(completePath(t, jobIds[200]!), { status: 'success' });
    assertStatus(late, 200);
    const after = await trainingJobs(server(), t);
    assert.equal(after.length, 2);
    assert.equal(after[0]!.trigger.count, 200);
    assert.equal(after[1]!.trigger.count, 1);
  });
});
