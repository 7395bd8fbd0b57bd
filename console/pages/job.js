import { useEffect, useRef, useState } from 'preact/hooks';
import { can, get, post, query, seg } from '../api.js';
import { watchDomain } from '../live.js';
import { Action, duration, FINAL, html, Json, Loaded, Status, useData, when } from '../ui.js';

// One job: its status timeline with attempts, what it ran with and returned, its lineage up
// (the job it was retried from, the completed job or batch whose subscription started it) and
// down (jobs retried from it or started by its completion: the `parent_job_id` filter), and
// cancel or retry when the token's scopes allow. Live: it re-reads when the job changes.
//
// The timeline comes from the job's status changes in the job event log
// (`GET .../jobs/{job_id}/events`), grouped by attempt. The log keeps changes for
// PIE_EVENTS_RETENTION_S (1 h by default): for an older job (`complete: false`) the page says
// its older changes are gone and draws the job's own timestamps instead, with what is kept.

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
  const [children, timeline] = await Promise.all([
    get(`${base}/jobs${query({ parent_job_id: jobId, limit: 20 })}`),
    // A PIE without the route (or a refusal of it alone) leaves the job's own timestamps.
    get(`${base}/jobs/${seg(jobId)}/events`).catch(() => null),
  ]);
  return { job, parents, children, timeline };
}

/**
 * The changes in attempts: a claim (to `dispatched`) starts one, and the changes after it until
 * the next claim are its own (running, back to queued on a retry, the final status). Changes
 * before the first claim (created, queued) are a group of their own. Each change carries how
 * long the status before it lasted (`since`, ms; null for the first).
 */
export function groupByAttempt(items) {
  const groups = [];
  const seen = new Set();
  let group;
  items.forEach((change, i) => {
    const claim = change.status === 'dispatched';
    if (group === undefined || claim) {
      group = {
        attempt: change.attempt,
        claimed: claim,
        // A release gives its attempt back, and the next claim delivers it again.
        again: claim && seen.has(change.attempt),
        created: change.previous_status === null,
        changes: [],
      };
      if (claim) seen.add(change.attempt);
      groups.push(group);
    }
    const since = i === 0 ? null : Date.parse(change.at) - Date.parse(items[i - 1].at);
    group.changes.push({ ...change, since });
  });
  return groups;
}

function groupLabel(group) {
  if (group.claimed) return `Attempt ${group.attempt}${group.again ? ' (again)' : ''}`;
  if (group.created) return 'Queued';
  return group.attempt === 0 ? 'Before the first attempt' : `Attempt ${group.attempt}`;
}

/** The changes, grouped by attempt: status, time, and how long since the change before. */
function Changes({ groups }) {
  return html`<div class="attempts">
    ${groups.map(
      (group) =>
        html`<div class="attempt" data-attempt=${group.claimed ? group.attempt : 'queued'}>
          <h3>${groupLabel(group)}</h3>
          <ol class="timeline">
            ${group.changes.map(
              (change) =>
                html`<li data-position=${change.position}>
                  <${Status} status=${change.status} />
                  ${change.previous_status === null ? ' created ' : ' '}${when(change.at)}
                  <span class="muted">
                    ${change.since === null ? '' : ` · +${duration(change.since)} after ${change.previous_status}`}
                  </span>
                </li>`,
            )}
          </ol>
        </div>`,
    )}
  </div>`;
}

/**
 * The timeline as a picture: one bar per attempt on a shared time axis, a segment per status
 * as wide as it lasted (the current status of an unfinished job lasts until now). A final
 * status is a thin mark at its end.
 */
function Bars({ groups, job, now }) {
  const changes = groups.flatMap((group) => group.changes);
  const start = Date.parse(changes[0].at);
  const last = Date.parse(changes[changes.length - 1].at);
  const end = FINAL.includes(job.status) ? last : Math.max(now, last);
  const span = Math.max(end - start, 1);
  const LABEL = 130;
  const PLOT = 600;
  const ROW = 22;
  const GAP = 8;
  const width = LABEL + PLOT + 70;
  const height = groups.length * (ROW + GAP) + 20;
  const x = (t) => LABEL + ((t - start) / span) * PLOT;
  let index = 0;
  const rows = groups.map((group, r) => {
    const y = r * (ROW + GAP);
    const segments = group.changes.map((change) => {
      index += 1;
      const from = Date.parse(change.at);
      const next = changes[index];
      const to = next === undefined ? end : Date.parse(next.at);
      const final = FINAL.includes(change.status);
      const w = final ? 4 : Math.max(((to - from) / span) * PLOT, 2);
      return { change, x: final ? x(from) - 2 : x(from), w, lasted: to - from, final };
    });
    return { group, y, segments };
  });
  return html`<svg
    class="bars"
    role="img"
    aria-label="Timeline by attempt"
    width=${width}
    height=${height}
    viewBox=${`0 0 ${width} ${height}`}
  >
    ${rows.map(
      ({ group, y, segments }) =>
        html`<g data-attempt=${group.claimed ? group.attempt : 'queued'}>
          <text x="0" y=${y + 15} class="bar-label">${groupLabel(group)}</text>
          ${segments.map(
            (s) =>
              html`<rect
                x=${s.x}
                y=${y}
                width=${s.w}
                height=${ROW}
                rx="3"
                class=${`seg seg-${s.change.status}`}
                data-status=${s.change.status}
              >
                <title>
                  ${s.final ? s.change.status : `${s.change.status} for ${duration(s.lasted)}`}
                </title>
              </rect>`,
          )}
        </g>`,
    )}
    <line x1=${LABEL} y1=${height - 16} x2=${LABEL + PLOT} y2=${height - 16} class="axis" />
    <text x=${LABEL} y=${height - 3} class="bar-label">${when(changes[0].at)}</text>
    <text x=${LABEL + PLOT} y=${height - 3} class="bar-label" text-anchor="end">
      +${duration(end - start)}
    </text>
  </svg>`;
}

/** Which colour is which status in the bars. */
function Legend({ statuses }) {
  return html`<p class="legend">
    ${statuses.map((status) => html`<span><i class=${`swatch seg-${status}`}></i>${status}</span>`)}
  </p>`;
}

/** The job's own timestamps: what the row says when the event log no longer has its start. */
function RowTimeline({ job }) {
  return html`<ol class="timeline">
    <li><${Status} status="queued" /> created ${when(job.created_at)}</li>
    ${job.dispatched_at && html`<li><${Status} status="dispatched" /> attempt ${job.attempt} of ${job.max_attempts}, ${when(job.dispatched_at)}</li>`}
    ${job.status === 'running' && html`<li><${Status} status="running" /> since ${when(job.updated_at)}</li>`}
    ${job.finished_at && html`<li><${Status} status=${job.status} /> after ${job.attempt} attempt${job.attempt === 1 ? '' : 's'}, ${when(job.finished_at)}</li>`}
  </ol>`;
}

function Timeline({ job, timeline }) {
  const items = timeline?.items ?? [];
  const groups = groupByAttempt(items);
  const complete = timeline?.complete === true;
  const attempts = `attempt ${job.attempt} of ${job.max_attempts}`;
  return html`<section class="job-timeline">
    <h2>Timeline <span class="muted">(${attempts})</span></h2>
    ${
      !complete &&
      html`<p class="muted" data-timeline="from-row">
          ${
            timeline === null
              ? "This PIE answers no job changes: the job's own timestamps."
              : "The event log no longer holds this job's start (it keeps changes for " +
                "PIE_EVENTS_RETENTION_S); older changes are gone. The job's own timestamps:"
          }
        </p>
        <${RowTimeline} job=${job} />`
    }
    ${
      groups.length > 0 &&
      html`${!complete && html`<p class="muted">The changes the log still holds:</p>`}
        <${Bars} groups=${groups} job=${job} now=${Date.now()} />
        <${Legend} statuses=${[...new Set(items.map((change) => change.status))]} />
        <${Changes} groups=${groups} />`
    }
    ${!FINAL.includes(job.status) && html`<p class="muted">deadline ${when(job.deadline)}</p>`}
  </section>`;
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
    ${({ job, parents, children, timeline }) => html`
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
      <${Timeline} job=${job} timeline=${timeline} />
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
