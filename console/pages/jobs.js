import { useEffect, useRef, useState } from 'preact/hooks';
import { can, get, post, query, seg } from '../api.js';
import { watchDomain } from '../live.js';
import {
  Action,
  html,
  Loaded,
  navigate,
  RETRY_ALL,
  RetriedAll,
  STATUSES,
  Status,
  useData,
  when,
} from '../ui.js';

// A domain's jobs, newest first: the API's filters (kept in the page's URL, so a shared link
// shows the same list), one keyset page at a time (`next_cursor`; never a count), and live:
// the first page re-reads when the domain's jobs change, a later page updates its rows in place.

const FILTERS = ['status', 'service_id', 'job_type', 'assignment_key', 'batch_id'];
const PAGE_SIZE = 50;

function readFilters() {
  const params = new URLSearchParams(location.search);
  return Object.fromEntries(FILTERS.map((name) => [name, params.get(name) ?? '']));
}

export function JobsPage({ clientId, domainId }) {
  const base = `/v2/clients/${seg(clientId)}/domains/${seg(domainId)}`;
  const ui = `/ui/clients/${seg(clientId)}/domains/${seg(domainId)}`;
  const filters = readFilters();
  // Cursors of the pages before this one, for "Previous".
  const [cursors, setCursors] = useState([]);
  const cursor = cursors[cursors.length - 1];
  const key = `${location.search}|${cursor ?? ''}`;
  const state = useData(
    () => get(`${base}/jobs${query({ ...filters, cursor, limit: PAGE_SIZE })}`),
    key,
  );
  const [patched, setPatched] = useState({});
  const [retriedAll, setRetriedAll] = useState();
  const reloadRef = useRef(state.reload);
  reloadRef.current = state.reload;

  useEffect(() => {
    setPatched({});
    let pending;
    const stop = watchDomain(clientId, domainId, (event) => {
      if (event !== null && cursor !== undefined) {
        setPatched((rows) => ({ ...rows, [event.job_id]: event }));
        return;
      }
      // Bursts of events re-read the page once.
      clearTimeout(pending);
      pending = setTimeout(() => reloadRef.current(), 300);
    });
    return () => {
      clearTimeout(pending);
      stop();
    };
  }, [clientId, domainId, key]);

  const apply = (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const next = Object.fromEntries(FILTERS.map((name) => [name, form.get(name)?.trim() ?? '']));
    setCursors([]);
    navigate(`${ui}/jobs${query(next)}`);
  };

  return html`<p class="crumbs">
      <a href="/ui">Overview</a> / ${clientId} / <a href=${ui}>${domainId}</a> / jobs
    </p>
    <h1>Jobs of ${domainId}</h1>
    <form class="filters" onSubmit=${apply}>
      <label
        >status
        <select name="status" value=${filters.status}>
          <option value="">any</option>
          ${STATUSES.map((s) => html`<option value=${s}>${s}</option>`)}
        </select>
      </label>
      ${FILTERS.slice(1).map(
        (name) =>
          html`<label
            >${name.replace('_', ' ')} <input name=${name} value=${filters[name]} size="12"
          /></label>`,
      )}
      <button type="submit">Filter</button>
    </form>
    ${
      can('jobs:write') &&
      html`<p>
        <${Action}
          label="Retry all failures"
          confirm="Start a new job for every failed job of this domain (up to 10,000)?"
          run=${async () => {
            setRetriedAll(undefined);
            setRetriedAll(await post(`${base}/jobs/retry`, RETRY_ALL));
            state.reload();
          }}
        />
        <${RetriedAll} answer=${retriedAll} jobs=${`${ui}/jobs`} />
      </p>`
    }
    <${Loaded} state=${state}>
      ${(page) => html`
        <table class="jobs">
          <thead>
            <tr>
              <th>job</th>
              <th>status</th>
              <th>type</th>
              <th>service</th>
              <th>key</th>
              <th>attempt</th>
              <th>created</th>
              <th>updated</th>
            </tr>
          </thead>
          <tbody>
            ${
              page.items.length === 0 &&
              html`<tr>
                <td colspan="8" class="muted">No jobs match.</td>
              </tr>`
            }
            ${page.items.map((job) => {
              const live = { ...job, ...patched[job.job_id] };
              return html`<tr data-job-id=${job.job_id}>
                <td><a href=${`${ui}/jobs/${job.job_id}`}>${job.job_id}</a></td>
                <td><${Status} status=${live.status} /></td>
                <td>${job.job_type}</td>
                <td>${job.service_id ?? '—'}</td>
                <td>${job.assignment_key}</td>
                <td>${live.attempt}</td>
                <td>${when(job.created_at)}</td>
                <td>${when(live.updated_at)}</td>
              </tr>`;
            })}
          </tbody>
        </table>
        <p class="pager">
          <button
            type="button"
            disabled=${cursors.length === 0}
            onClick=${() => setCursors(cursors.slice(0, -1))}
          >
            Previous
          </button>
          <button
            type="button"
            disabled=${page.next_cursor === null}
            onClick=${() => setCursors([...cursors, page.next_cursor])}
          >
            Next
          </button>
        </p>
      `}
    <//>`;
}
