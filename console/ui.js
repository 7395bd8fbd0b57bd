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

export const FINAL = ['success', 'failure', 'cancelled'];
export const STATUSES = ['queued', 'dispatched', 'running', 'success', 'failure', 'cancelled'];
