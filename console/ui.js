import { h } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import htm from 'htm';

// Shared pieces of every page: htm bound to Preact, data loading, links, and small views.

export const html = htm.bind(h);

/** Navigates inside the console without a reload (the app listens for `pie:navigate`). */
export function navigate(href) {
  history.pushState(null, '', href);
  window.dispatchEvent(new Event('pie:navigate'));
}

/**
 * Loads `load()` when `key` changes; `reload()` re-reads without clearing what is shown, so a
 * live update never flashes the page empty.
 */
export function useData(load, key) {
  const [state, setState] = useState({ loading: true });
  const reload = useCallback(() => {
    let current = true;
    load().then(
      (data) => current && setState({ data }),
      (error) => current && setState({ error }),
    );
    return () => {
      current = false;
    };
  }, [key]);
  useEffect(() => {
    setState({ loading: true });
    return reload();
  }, [key]);
  return { ...state, reload };
}

/** Shows loading and errors, else the page's view of the data. */
export function Loaded({ state, children }) {
  if (state.error) return html`<p class="error" role="alert">${state.error.message}</p>`;
  if (state.loading) return html`<p class="muted">Loading…</p>`;
  return children(state.data);
}

export function Status({ status }) {
  return html`<span class="status status-${status}" data-status=${status}>${status}</span>`;
}

export function Json({ value, label }) {
  if (value === null || value === undefined) return html`<p class="muted">none</p>`;
  return html`<pre class="json" aria-label=${label}>${JSON.stringify(value, null, 2)}</pre>`;
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : '—';
}

/** A length of time, short: `350 ms`, `4.2 s`, `3 min 5 s`, `2 h 10 min`. */
export function duration(ms) {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.floor(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** A button that runs an action, shows it running, and reports its error beside it. */
export function Action({ label, run, confirm: question }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState();
  const click = async () => {
    if (question && !window.confirm(question)) return;
    setBusy(true);
    setError(undefined);
    try {
      await run();
    } catch (failure) {
      setError(failure.message);
    } finally {
      setBusy(false);
    }
  };
  return html`<span class="action">
    <button type="button" disabled=${busy} onClick=${click}>${label}</button>
    ${error && html`<span class="error" role="alert">${error}</span>`}
  </span>`;
}

/** "Retry all failures": the domain's failed jobs, oldest first, as many as its question says. */
export const RETRY_ALL = { status: 'failure', limit: 10_000 };

/** What "Retry all failures" did: how many new jobs it started. */
export function RetriedAll({ answer, jobs }) {
  if (answer === undefined) return null;
  const { count } = answer;
  const said = `Retried ${count === 1 ? '1 failed job' : `${count} failed jobs`}`;
  const more = count === RETRY_ALL.limit ? ' More may be left: the oldest were retried.' : '';
  if (count === 0) return html`<span role="status" class="done">${said}.</span>`;
  return html`<span role="status" class="done"
    >${said} as <a href=${`${jobs}?status=queued`}>new queued jobs</a>.${more}</span
  >`;
}

export const FINAL = ['success', 'failure', 'cancelled'];
export const STATUSES = ['queued', 'dispatched', 'running', 'success', 'failure', 'cancelled'];
