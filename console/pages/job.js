import { useEffect, useRef, useState } from 'preact/hooks';
import { can, get, post, query, seg } from '../api.js';
import { watchDomain } from '../live.js';
import { Action, FINAL, html, Json, Loaded, Status, useData, when } from '../ui.js';

// One job: its status timeline with attempts, what it ran with and returned, its lineage up
// (the job it was retried from, the completed job or batch whose subscription started it) and
// down (jobs retried from it or started by its completion: the `parent_job_id` filter), and
// cancel or retry when the token's scopes allow. Live: it re-reads when the job changes.

async function loadJob(base, jobId) {
  const job = await get(`${base}/jobs/${seg(jobId)}`);
  const trigger = job.trigger ?? {};
  const parentIds = [
    ...new Set(
      [job.retry_of, trigger.job_id, ...(trigger.job_ids ?? []).slice(0, 5)].filter(Boolean),
    ),
  ];
  const parents = await Promise.all(
    parentIds.map((id) =>
      get(`${base}/jobs/${seg(id)}`).catch(() => ({ job_id: id, status: 'gone', job_type: '?' })),
    ),
  );
  const children = await get(`${base}/jobs${query({ parent_job_id: jobId, limit: 20 })}`);
  return { job, parents, children };
}

/** Lineage as an SVG: parents above, the job, its children below; each box links to its job. */
function Lineage({ ui, job, parents, batchId, children }) {
  const up = [
    ...parents.map((p) => ({
      href: `${ui}/jobs/${p.job_id}`,
      title: p.job_id,
      sub: `${p.job_type} · ${p.status} · ${p.job_id === job.retry_of ? 'retried from' : 'triggered by'}`,
    })),
    ...(batchId
      ? [
          {
            href: `${ui}/jobs?batch_id=${batchId}`,
            title: 'batch',
            sub: batchId.slice(0, 13) + '…',
          },
        ]
      : []),
  ];
  const down = children.map((c) => ({
    href: `${ui}/jobs/${c.job_id}`,
    title: c.job_id,
    sub: `${c.job_type} · ${c.status} · ${c.retry_of === job.job_id ? 'retry' : 'triggered'}`,
  }));
  const self = [
    {
      href: `${ui}/jobs/${job.job_id}`,
      title: job.job_id,
      sub: `${job.job_type} · ${job.status}`,
      self: true,
    },
  ];
  const W = 190;
  const H = 44;
  const GAP = 20;
  const rows = [up, self, down].filter((row) => row.length > 0);
  const width = Math.max(...rows.map((row) => row.length)) * (W + GAP) + GAP;
  const place = (row, r) =>
    row.map((node, i) => ({
      ...node,
      x: (width - (row.length * (W + GAP) - GAP)) / 2 + i * (W + GAP),
      y: GAP + r * (H + 40),
    }));
  const placed = rows.map(place);
  const selfRow = placed.findIndex((row) => row[0].self);
  const me = placed[selfRow][0];
  const edges = placed.flatMap((row, r) =>
    r === selfRow ? [] : row.map((n) => (r < selfRow ? [n, me] : [me, n])),
  );
  const height = rows.length * (H + 40);
  return html`<svg
    class="lineage"
    role="img"
    aria-label="Lineage"
    width=${width}
    height=${height}
    viewBox=${`0 0 ${width} ${height}`}
  >
    ${edges.map(([a, b]) => html`<line x1=${a.x + W / 2} y1=${a.y + H} x2=${b.x + W / 2} y2=${b.y} class="edge" />`)}
    ${placed.flat().map(
      (n) =>
        html`<a href=${n.href} data-lineage=${n.self ? 'self' : n.title}>
          <rect
            x=${n.x}
            y=${n.y}
            width=${W}
            height=${H}
            rx="6"
            class=${n.self ? 'node self' : 'node'}
          />
          <text x=${n.x + 10} y=${n.y + 18} class="node-title">${n.title}</text>
          <text x=${n.x + 10} y=${n.y + 35} class="node-sub">${n.sub}</text>
        </a>`,
    )}
  </svg>`;
}

export function JobPage({ clientId, domainId, jobId }) {
  const base = `/v2/clients/${seg(clientId)}/domains/${seg(domainId)}`;
  const ui = `/ui/clients/${seg(clientId)}/domains/${seg(domainId)}`;
  const state = useData(() => loadJob(base, jobId), jobId);
  const [retried, setRetried] = useState();
  const reloadRef = useRef(state.reload);
  reloadRef.current = state.reload;
  useEffect(() => {
    // Any change in the domain may be this job or a new child of it; a burst re-reads once.
    let pending;
    const stop = watchDomain(clientId, domainId, () => {
      clearTimeout(pending);
      pending = setTimeout(() => reloadRef.current(), 300);
    });
    return () => {
      clearTimeout(pending);
      stop();
    };
  }, [clientId, domainId, jobId]);

  // The crumbs show the job's id once the API has answered it: a page refused by the API shows
  // nothing but the refusal.
  return html`<${Loaded} state=${state}>
    ${({ job, parents, children }) => html`
      <p class="crumbs">
        <a href="/ui">Overview</a> / ${clientId} / <a href=${ui}>${domainId}</a> /
        <a href=${`${ui}/jobs`}>jobs</a> / ${jobId}
      </p>
      <h1>Job ${job.job_id} <${Status} status=${job.status} /></h1>
      <p>
        ${[
          `${job.job_type} of `,
          html`<a href=${`/ui/models/${seg(job.model_id)}/versions/${seg(job.model_version)}`}
            >${job.model_id} ${job.model_version}</a
          >`,
          ' through ',
          html`<code>${job.assignment_key}</code>`,
          job.service_id && ` for service ${job.service_id}`,
          `, priority ${job.priority}`,
        ]}
      </p>
      ${
        can('jobs:write') &&
        html`<p class="actions">
          ${
            !FINAL.includes(job.status) &&
            html`<${Action}
              label="Cancel"
              run=${async () => {
                await post(`${base}/jobs/${job.job_id}/cancel`);
                state.reload();
              }}
            />`
          }
          ${
            (job.status === 'failure' || job.status === 'cancelled') &&
            html`<${Action}
              label="Retry"
              run=${async () => {
                setRetried((await post(`${base}/jobs/${job.job_id}/retry`)).job_id);
                state.reload();
              }}
            />`
          }
          ${retried && html`<span>Retried as <a href=${`${ui}/jobs/${retried}`}>${retried}</a></span>`}
        </p>`
      }
      <section>
        <h2>Timeline</h2>
        <ol class="timeline">
          <li><${Status} status="queued" /> created ${when(job.created_at)}</li>
          ${job.dispatched_at && html`<li><${Status} status="dispatched" /> attempt ${job.attempt} of ${job.max_attempts}, ${when(job.dispatched_at)}</li>`}
          ${job.status === 'running' && html`<li><${Status} status="running" /> since ${when(job.updated_at)}</li>`}
          ${job.finished_at && html`<li><${Status} status=${job.status} /> after ${job.attempt} attempt${job.attempt === 1 ? '' : 's'}, ${when(job.finished_at)}</li>`}
          ${!job.finished_at && html`<li class="muted">deadline ${when(job.deadline)}</li>`}
        </ol>
      </section>
      <section>
        <h2>Lineage</h2>
        <${Lineage}
          ui=${ui}
          job=${job}
          parents=${parents}
          batchId=${job.batch_id ?? job.trigger?.batch_id}
          children=${children.items}
        />
      </section>
      <div class="grid">
        <section>
          <h2>Input</h2>
          <${Json} label="input" value=${job.input} />
        </section>
        <section>
          <h2>Features</h2>
          <${Json} label="features" value=${job.features} />
        </section>
        <section>
          <h2>Config</h2>
          <${Json} label="config" value=${job.config} />
        </section>
        <section>
          <h2>Output</h2>
          <${Json} label="output" value=${job.output} />
        </section>
        <section>
          <h2>Error</h2>
          <${Json} label="error" value=${job.error} />
        </section>
        <section>
          <h2>Trigger</h2>
          <${Json} label="trigger" value=${job.trigger} />
        </section>
      </div>
    `}
  <//>`;
}
