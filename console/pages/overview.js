import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import { get, query, seg } from '../api.js';
import { html, Loaded, STATUSES, Status, useData } from '../ui.js';

// Overview: the token's clients and their domains, each domain's jobs by status, and the
// last hour's throughput. Everything comes from keyset pages of the jobs list (one small page
// per status, read through the status index), never from counting a domain's jobs: a count
// reads at most COUNT_CAP jobs and shows "100+" past it, so the page costs the same for a
// domain of ten jobs or of a million.

const COUNT_CAP = 100;
const MAX_DOMAINS = 10;
const BUCKET_S = 300;

async function loadOverview() {
  const clients = (await get('/v2/clients?limit=100')).items;
  const domains = [];
  for (const client of clients) {
    const page = await get(`/v2/clients/${seg(client.client_id)}/domains?limit=100`);
    domains.push(...page.items);
  }
  const shown = domains.slice(0, MAX_DOMAINS);
  const since = Date.now() - 3600_000;
  const stats = await Promise.all(
    shown.map(async (domain) => {
      const base = `/v2/clients/${seg(domain.client_id)}/domains/${seg(domain.domain_id)}/jobs`;
      const pages = await Promise.all(
        STATUSES.map((status) => get(base + query({ status, limit: COUNT_CAP }))),
      );
      const counts = {};
      const finished = [];
      STATUSES.forEach((status, i) => {
        counts[status] = { n: pages[i].items.length, more: pages[i].next_cursor !== null };
        if (status === 'success' || status === 'failure') {
          for (const job of pages[i].items) {
            const at = Date.parse(job.finished_at);
            if (at >= since) finished.push({ at, status });
          }
        }
      });
      return { domain, counts, finished };
    }),
  );
  return { clients, domains, stats, since };
}

function ThroughputChart({ stats, since }) {
  const box = useRef();
  useEffect(() => {
    const buckets = 3600 / BUCKET_S;
    const xs = Array.from({ length: buckets }, (_, i) => since / 1000 + i * BUCKET_S);
    const ok = new Array(buckets).fill(0);
    const failed = new Array(buckets).fill(0);
    for (const { finished } of stats) {
      for (const job of finished) {
        const i = Math.min(buckets - 1, Math.floor((job.at - since) / 1000 / BUCKET_S));
        (job.status === 'success' ? ok : failed)[i] += 1;
      }
    }
    const plot = new uPlot(
      {
        width: Math.min(760, box.current.clientWidth || 760),
        height: 220,
        series: [
          {},
          { label: 'success', stroke: '#2a7d46', width: 2 },
          { label: 'failure', stroke: '#b3261e', width: 2 },
        ],
        axes: [{}, { label: `jobs per ${BUCKET_S / 60} min` }],
      },
      [xs, ok, failed],
      box.current,
    );
    return () => plot.destroy();
  }, [stats, since]);
  return html`<div class="chart" ref=${box} aria-label="Throughput over the last hour"></div>`;
}

function count({ n, more }) {
  return more ? `${n}+` : String(n);
}

export function OverviewPage() {
  const state = useData(loadOverview, 'overview');
  useEffect(() => {
    const timer = setInterval(state.reload, 10_000);
    return () => clearInterval(timer);
  }, [state.reload]);
  return html`<h1>Overview</h1>
    <${Loaded} state=${state}>
      ${({ clients, domains, stats, since }) => html`
        <section>
          <h2>Clients</h2>
          ${clients.length === 0 && html`<p class="muted">This token sees no clients.</p>`}
          <ul class="clients">
            ${clients.map((c) => html`<li><strong>${c.client_id}</strong> ${c.name ?? ''}</li>`)}
          </ul>
        </section>
        <section>
          <h2>Jobs by status</h2>
          <table>
            <thead>
              <tr>
                <th>client</th>
                <th>domain</th>
                <th>status</th>
                ${STATUSES.map((s) => html`<th><${Status} status=${s} /></th>`)}
              </tr>
            </thead>
            <tbody>
              ${stats.map(({ domain, counts }) => {
                const base = `/ui/clients/${seg(domain.client_id)}/domains/${seg(domain.domain_id)}`;
                return html`<tr>
                  <td>${domain.client_id}</td>
                  <td><a href=${base}>${domain.domain_id}</a></td>
                  <td>${domain.status}</td>
                  ${STATUSES.map(
                    (s) =>
                      html`<td><a href=${`${base}/jobs?status=${s}`}>${count(counts[s])}</a></td>`,
                  )}
                </tr>`;
              })}
            </tbody>
          </table>
          ${
            domains.length > MAX_DOMAINS &&
            html`<p class="muted">Showing ${MAX_DOMAINS} of ${domains.length} domains.</p>`
          }
          <p class="muted">
            Counts stop at ${COUNT_CAP} (shown as ${COUNT_CAP}+); open a domain's jobs for all of
            them.
          </p>
        </section>
        <section>
          <h2>Throughput, last hour</h2>
          <${ThroughputChart} stats=${stats} since=${since} />
        </section>
      `}
    <//>`;
}
