import { getToken, seg } from './api.js';

// Live updates of a domain's jobs. The domain's Server-Sent Events route is read with fetch()
// rather than EventSource, which cannot send the Authorization header. Where the route does
// not exist (a PIE without it answers 404), or the stream keeps failing, the console polls:
// `onChange` is then called every POLL_MS and the page re-reads what it shows.

const POLL_MS = 2000;
const RETRY_MS = 1000;

/**
 * Calls `onChange(event)` for every job event of the domain (`{job_id, status, ...}`), or
 * `onChange(null)` when the page should simply re-read (polling, a `reset`, a reconnect).
 * Answers a function that stops it.
 */
export function watchDomain(clientId, domainId, onChange) {
  const url = `/v2/clients/${seg(clientId)}/domains/${seg(domainId)}/events`;
  const abort = new AbortController();
  let stopped = false;
  let timer;
  let lastEventId;

  const poll = () => {
    if (stopped) return;
    onChange(null);
    timer = setTimeout(poll, POLL_MS);
  };

  const connect = async () => {
    const headers = { authorization: `Bearer ${getToken()}`, accept: 'text/event-stream' };
    if (lastEventId !== undefined) headers['last-event-id'] = lastEventId;
    let response;
    try {
      response = await fetch(url, { headers, signal: abort.signal });
    } catch {
      if (!stopped) timer = setTimeout(connect, RETRY_MS);
      return;
    }
    const streaming = (response.headers.get('content-type') ?? '').startsWith('text/event-stream');
    if (!response.ok || !streaming || response.body === null) {
      // No events route here (or it refused us): polling shows the same changes, later.
      void response.body?.cancel();
      poll();
      return;
    }
    // Whatever changed while disconnected is re-read once, then events carry the rest.
    if (lastEventId !== undefined) onChange(null);
    try {
      await readEvents(response.body, (event) => {
        if (event.id !== undefined) lastEventId = event.id;
        if (event.event === 'job') onChange(JSON.parse(event.data));
        else if (event.event === 'reset') onChange(null);
      });
    } catch {
      // The stream broke (server restart, network): reconnect below.
    }
    if (!stopped) timer = setTimeout(connect, RETRY_MS);
  };

  void connect();
  return () => {
    stopped = true;
    clearTimeout(timer);
    abort.abort();
  };
}

/** Parses an SSE stream (https://html.spec.whatwg.org/#event-stream-interpretation). */
async function readEvents(body, dispatch) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let event = { data: [] };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    const lines = buffer.split(/\r\n|\r|\n/);
    buffer = lines.pop();
    for (const line of lines) {
      if (line === '') {
        if (event.data.length > 0) dispatch({ ...event, data: event.data.join('\n') });
        event = { data: [] };
        continue;
      }
      if (line.startsWith(':')) continue; // a heartbeat comment
      const colon = line.indexOf(':');
      const field = colon === -1 ? line : line.slice(0, colon);
      const text = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'data') event.data.push(text);
      else if (field === 'event') event.event = text;
      else if (field === 'id') event.id = text;
    }
  }
}
