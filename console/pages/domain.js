import { useState } from 'preact/hooks';
import { can, get, post, put, seg } from '../api.js';
import { ThroughputChart } from '../charts.js';
import {
  Action,
  html,
  Json,
  Loaded,
  RETRY_ALL,
  RetriedAll,
  STATUSES,
  Status,
  useData,
  when,
} from '../ui.js';

// A domain: its jobs by status and the last hour's throughput (GET .../stats, counters PIE
// keeps, exact at any size), services with their resolved features, assignments with every
// revision, event subscriptions and schedules (pause and resume with `jobs:write`), and batches
// with progress. Each list shows its first page (up to LIMIT); the jobs page has its own paging.

const LIMIT = 50;
// Service-scope assignments are read per service; only the first few services' are shown.
const SERVICE_ASSIGNMENTS = 10;

async function loadDomain(base) {
  const [domain, stats, services, assignments, subscriptions, schedules, batches] =
    await Promise.all([
      get(base),
      get(`${base}/stats`),
      get(`${base}/services?limit=${LIMIT}`),
      get(`${base}/assignments?limit=${LIMIT}`),
      get(`${base}/subscriptions?limit=${LIMIT}`),
      get(`${base}/schedules?limit=${LIMIT}`),
      get(`${base}/batches?limit=${LIMIT}`),
    ]);
  const serviceScoped = await Promise.all(
    services.items
      .slice(0, SERVICE_ASSIGNMENTS)
      .map((s) => get(`${base}/service/${seg(s.service_id)}/assignments?limit=${LIMIT}`)),
  );
  const keyed = [...assignments.items, ...serviceScoped.flatMap((page) => page.items)];
  const revisions = await Promise.all(
    keyed.map((a) =>
      get(
        a.service_id === null
          ? `${base}/assignments/${seg(a.key)}/revisions?limit=20`
          : `${base}/service/${seg(a.service_id)}/assignments/${seg(a.key)}/revisions?limit=20`,
      ),
    ),
  );
  return {
    domain,
    stats,
    services,
    assignments: keyed.map((a, i) => ({ ...a, revisions: revisions[i].items })),
    subscriptions,
    schedules,
    batches,
  };
}

function Progress({ batch }) {
  const done = batch.counts.success + batch.counts.failure + batch.counts.cancelled;
  const pct = batch.total === 0 ? 100 : Math.round((done / batch.total) * 100);
  return html`<div
    class="progress"
    role="progressbar"
    aria-valuenow=${pct}
    aria-valuemin="0"
    aria-valuemax="100"
    title=${`${done} of ${batch.total} finished`}
  >
    <span
      class="ok"
      style=${`width:${(batch.counts.success / Math.max(1, batch.total)) * 100}%`}
    ></span>
    <span
      class="bad"
      style=${`width:${((batch.counts.failure + batch.counts.cancelled) / Math.max(1, batch.total)) * 100}%`}
    ></span>
  </div>`;
}

export function DomainPage({ clientId, domainId }) {
  const base = `/v2/clients/${seg(clientId)}/domains/${seg(domainId)}`;
  const ui = `/ui/clients/${seg(clientId)}/domains/${seg(domainId)}`;
  const state = useData(() => loadDomain(base), base);
  const write = can('jobs:write');
  const [retriedAll, setRetriedAll] = useState();
  return html`<p class="crumbs"><a href="/ui">Overview</a> / ${clientId} / ${domainId}</p>
    <${Loaded} state=${state}>
      ${({ domain, stats, services, assignments, subscriptions, schedules, batches }) => html`
        <h1>Domain ${domain.domain_id} <span class="muted">(${domain.status})</span></h1>
        <p>
          <a href=${`${ui}/jobs`}>Jobs of this domain</a> ·
          <a href=${`${ui}/jobs?status=failure`}>failures</a>
        </p>
        ${
          write &&
          html`<p>
            <${Action}
              label="Retry all failures"
              confirm="Start a new job for every failed job of this domain (up to 10,000)?"
              run=${async () => {
                setRetriedAll(undefined);
                setRetriedAll(await post(`${base}/jobs/retry`, RETRY_ALL));
              }}
            />
            <${RetriedAll} answer=${retriedAll} jobs=${`${ui}/jobs`} />
          </p>`
        }
        <section>
          <h2>Jobs by status</h2>
          <table class="stats">
            <thead>
              <tr>
                ${STATUSES.map((s) => html`<th><${Status} status=${s} /></th>`)}
              </tr>
            </thead>
            <tbody>
              <tr>
                ${STATUSES.map(
                  (s) =>
                    html`<td class="count" data-count=${s}>
                      <a href=${`${ui}/jobs?status=${s}`}>${stats.jobs_by_status[s]}</a>
                    </td>`,
                )}
              </tr>
            </tbody>
          </table>
          <${ThroughputChart}
            throughput=${stats.throughput}
            height=${160}
            label="This domain's throughput over the last hour, per minute"
          />
        </section>
        <section>
          <h2>Services</h2>
          <table>
            <thead>
              <tr>
                <th>service</th>
                <th>status</th>
                <th>resolved features</th>
                <th>provided features</th>
              </tr>
            </thead>
            <tbody>
              ${services.items.map(
                (s) =>
                  html`<tr>
                    <td>
                      <a href=${`${ui}/jobs?service_id=${seg(s.service_id)}`}>${s.service_id}</a>
                    </td>
                    <td>${s.status}</td>
                    <td>
                      <${Json}
                        label=${`resolved features of ${s.service_id}`}
                        value=${s.resolved_features}
                      />
                    </td>
                    <td>
                      <${Json}
                        label=${`provided features of ${s.service_id}`}
                        value=${s.provided_features}
                      />
                    </td>
                  </tr>`,
              )}
            </tbody>
          </table>
          ${services.next_cursor && html`<p class="muted">First ${LIMIT} services shown.</p>`}
        </section>
        <section>
          <h2>Assignments</h2>
          ${assignments.map(
            (a) =>
              html`<details class="assignment">
                <summary>
                  <code>${a.key}</code> ${a.service_id ? `(service ${a.service_id})` : '(domain)'} →
                  <a href=${`/ui/models/${seg(a.model_id)}/versions/${seg(a.model_version)}`}
                    >${a.model_id} ${a.model_version}</a
                  >
                  · ${a.status} · ${a.revisions.length} revision(s)
                </summary>
                <table>
                  <thead>
                    <tr>
                      <th>revision</th>
                      <th>model</th>
                      <th>status</th>
                      <th>config</th>
                      <th>created</th>
                      <th>archived</th>
                    </tr>
                  </thead>
                  <tbody>
                    ${a.revisions.map(
                      (r) =>
                        html`<tr>
                          <td><code>${r.assignment_id.slice(0, 8)}</code></td>
                          <td>${r.model_id} ${r.model_version}</td>
                          <td>${r.status}</td>
                          <td><${Json} label="config" value=${r.config} /></td>
                          <td>${when(r.created_at)}</td>
                          <td>${when(r.archived_at)}</td>
                        </tr>`,
                    )}
                  </tbody>
                </table>
              </details>`,
          )}
        </section>
        <section>
          <h2>Subscriptions</h2>
          <table>
            <thead>
              <tr>
                <th>id</th>
                <th>event</th>
                <th>source</th>
                <th>action</th>
                <th>status</th>
                <th></th>
              </tr>
            </thead>
            <tbody>
              ${subscriptions.items.map(
                (s) =>
                  html`<tr data-subscription=${s.subscription_id}>
                    <td><code>${s.subscription_id.slice(0, 8)}</code></td>
                    <td>${s.event}</td>
                    <td><${Json} label="source" value=${s.source} /></td>
                    <td><${Json} label="action" value=${s.action} /></td>
                    <td>${s.status}</td>
                    <td>
                      ${
                        write &&
                        html`<${PauseResume}
                          active=${s.status === 'active'}
                          change=${(pause) =>
                            post(
                              `${base}/subscriptions/${s.subscription_id}/${pause ? 'pause' : 'resume'}`,
                            )}
                          done=${state.reload}
                        />`
                      }
                    </td>
                  </tr>`,
              )}
            </tbody>
          </table>
        </section>
        <section>
          <h2>Schedules</h2>
          <table>
            <thead>
              <tr>
                <th>name</th>
                <th>cron</th>
                <th>action</th>
                <th>status</th>
                <th>next run</th>
                <th>last run</th>
                <th>last error</th>
                <th></th>
              </tr>
            </thead>
            <tbody>
              ${schedules.items.map(
                (s) =>
                  html`<tr data-schedule=${s.name}>
                    <td>${s.name}</td>
                    <td><code>${s.cron}</code> ${s.timezone}</td>
                    <td>${s.action.type}</td>
                    <td>${s.status}</td>
                    <td>${when(s.next_run_at)}</td>
                    <td>${when(s.last_run_at)}</td>
                    <td>${s.last_error ? JSON.stringify(s.last_error) : ''}</td>
                    <td>
                      ${
                        write &&
                        html`<${PauseResume}
                          active=${s.status === 'active'}
                          change=${(pause) =>
                            put(`${base}/schedules/${seg(s.name)}`, {
                              status: pause ? 'paused' : 'active',
                            })}
                          done=${state.reload}
                        />`
                      }
                    </td>
                  </tr>`,
              )}
            </tbody>
          </table>
        </section>
        <section>
          <h2>Batches</h2>
          <table>
            <thead>
              <tr>
                <th>batch</th>
                <th>kind</th>
                <th>progress</th>
                <th>counts</th>
                <th>created</th>
                <th>finished</th>
              </tr>
            </thead>
            <tbody>
              ${batches.items.map(
                (b) =>
                  html`<tr>
                    <td>
                      <a href=${`${ui}/jobs?batch_id=${b.batch_id}`}
                        ><code>${b.batch_id.slice(0, 8)}</code></a
                      >
                    </td>
                    <td>${b.kind}</td>
                    <td><${Progress} batch=${b} /></td>
                    <td>
                      ${Object.entries(b.counts)
                        .filter(([, n]) => n > 0)
                        .map(([k, n]) => `${k} ${n}`)
                        .join(', ')}
                      of ${b.total}
                    </td>
                    <td>${when(b.created_at)}</td>
                    <td>${when(b.finished_at)}</td>
                  </tr>`,
              )}
            </tbody>
          </table>
        </section>
      `}
    <//>`;
}

/** Pauses what is active, resumes what is paused (subscriptions and schedules alike). */
function PauseResume({ active, change, done }) {
  return html`<${Action}
    label=${active ? 'Pause' : 'Resume'}
    run=${async () => {
      await change(active);
      done();
    }}
  />`;
}
