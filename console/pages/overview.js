import { useEffect } from 'preact/hooks';
import { get, seg } from '../api.js';
import { sumThroughput, ThroughputChart } from '../charts.js';
import { html, Loaded, STATUSES, Status, useData } from '../ui.js';

// Overview: the token's clients with their jobs by status, the first domains' own, and the
// last hour's throughput. The numbers come from GET /v2/clients/{c}/stats and
// GET .../domains/{d}/stats: counters PIE keeps as jobs change, so each read costs the same for
// a domain of ten jobs or of a million, and the counts are exact (they lag the jobs by the event
// log's turn, milliseconds). The page reads the first MAX_CLIENTS clients, one stats read and
// one page of domains each, and the stats of the first MAX_DOMAINS domains among them.

const MAX_CLIENTS = 20;
const MAX_DOMAINS = 20;

async function loadOverview() {
  const page = await get(`/v2/clients?limit=${MAX_CLIENTS}`);
  const clients = await Promise.all(
    page.items.map(async (client) => {
      const base = `/v2/clients/${seg(client.client_id)}`;
      const [stats, domains] = await Promise.all([
        get(`${base}/stats`),
        get(`${base}/domains?limit=${MAX_DOMAINS}`),
      ]);
      return { client, stats, domains: domains.items, moreDomains: domains.next_cursor !== null };
    }),
  );
  const shown = clients.flatMap(({ domains }) => domains).slice(0, MAX_DOMAINS);
  const domainStats = await Promise.all(
    shown.map((d) => get(`/v2/clients/${seg(d.client_id)}/domains/${seg(d.domain_id)}/stats`)),
  );
  const statsOf = new Map(shown.map((d, i) => [`${d.client_id}/${d.domain_id}`, domainStats[i]]));
  return {
    clients,
    moreClients: page.next_cursor !== null,
    domainCount: clients.reduce((n, { domains }) => n + domains.length, 0),
    shownDomains: shown.length,
    statsOf,
    throughput: sumThroughput(clients.map(({ stats }) => stats.throughput)),
  };
}

/** "1 domain", "3 domains", "20+ domains". */
function plural(n, word, more = false) {
  return `${n}${more ? '+' : ''} ${word}${n === 1 && !more ? '' : 's'}`;
}

/** What the page shows of what the token sees. */
function shownNote(clients, moreClients, shownDomains, domainCount) {
  const anyMore = clients.some((c) => c.moreDomains);
  return (
    `${moreClients ? 'The first' : 'All'} ${plural(clients.length, 'client')} this token sees; ` +
    "a client's row counts the jobs of all its domains. Rows for " +
    `${shownDomains} of ${plural(domainCount, 'domain', anyMore)} (the first ${MAX_DOMAINS} at ` +
    'most). Exact counts, as of a moment ago.'
  );
}

function Counts({ counts, link }) {
  return STATUSES.map(
    (s) =>
      html`<td class="count" data-count=${s}>
        ${link ? html`<a href=${`${link}/jobs?status=${s}`}>${counts[s]}</a>` : counts[s]}
      </td>`,
  );
}

function ClientRows({ client, stats, domains, moreDomains, statsOf }) {
  const shown = domains.filter((d) => statsOf.has(`${d.client_id}/${d.domain_id}`));
  return html`<tr class="client-row" data-client=${client.client_id}>
      <td><strong>${client.client_id}</strong> ${client.name ?? ''}</td>
      <td class="muted">all ${plural(domains.length, 'domain', moreDomains)}</td>
      <td></td>
      <${Counts} counts=${stats.jobs_by_status} />
    </tr>
    ${shown.map((domain) => {
      const base = `/ui/clients/${seg(domain.client_id)}/domains/${seg(domain.domain_id)}`;
      const domainStats = statsOf.get(`${domain.client_id}/${domain.domain_id}`);
      return html`<tr data-domain=${`${domain.client_id}/${domain.domain_id}`}>
        <td></td>
        <td><a href=${base}>${domain.domain_id}</a></td>
        <td>${domain.status}</td>
        <${Counts} counts=${domainStats.jobs_by_status} link=${base} />
      </tr>`;
    })}`;
}

export function OverviewPage() {
  const state = useData(loadOverview, 'overview');
  useEffect(() => {
    const timer = setInterval(state.reload, 10_000);
    return () => clearInterval(timer);
  }, [state.reload]);
  return html`<h1>Overview</h1>
    <${Loaded} state=${state}>
      ${({ clients, moreClients, domainCount, shownDomains, statsOf, throughput }) => html`
        <section>
          <h2>Jobs by status</h2>
          ${clients.length === 0 && html`<p class="muted">This token sees no clients.</p>`}
          <table class="stats">
            <thead>
              <tr>
                <th>client</th>
                <th>domain</th>
                <th>status</th>
                ${STATUSES.map((s) => html`<th><${Status} status=${s} /></th>`)}
              </tr>
            </thead>
            <tbody>
              ${clients.map(
                (each) =>
                  html`<${ClientRows}
                    key=${each.client.client_id}
                    ...${each}
                    statsOf=${statsOf}
                  />`,
              )}
            </tbody>
          </table>
          <p class="muted">${shownNote(clients, moreClients, shownDomains, domainCount)}</p>
        </section>
        <section>
          <h2>Throughput, last hour</h2>
          <${ThroughputChart}
            throughput=${throughput}
            label="Throughput over the last hour, per minute"
          />
        </section>
      `}
    <//>`;
}
