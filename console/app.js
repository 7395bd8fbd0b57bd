import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { claims, get, getToken, setToken } from './api.js';
import { html } from './ui.js';
import { OverviewPage } from './pages/overview.js';
import { DomainPage } from './pages/domain.js';
import { JobsPage } from './pages/jobs.js';
import { JobPage } from './pages/job.js';
import { ModelsPage, ModelPage, VersionPage } from './pages/models.js';

// The console's router: each page's URL mirrors the API path it reads, under /ui, so that a
// reload or a shared link opens the same view (the server answers this shell for any /ui path).

const ROUTES = [
  [/^\/ui\/?$/, () => html`<${OverviewPage} />`],
  [
    /^\/ui\/clients\/([^/]+)\/domains\/([^/]+)\/jobs\/([^/]+)$/,
    (c, d, j) => html`<${JobPage} clientId=${c} domainId=${d} jobId=${j} />`,
  ],
  [
    /^\/ui\/clients\/([^/]+)\/domains\/([^/]+)\/jobs$/,
    (c, d) => html`<${JobsPage} clientId=${c} domainId=${d} />`,
  ],
  [
    /^\/ui\/clients\/([^/]+)\/domains\/([^/]+)$/,
    (c, d) => html`<${DomainPage} clientId=${c} domainId=${d} />`,
  ],
  [/^\/ui\/models\/?$/, () => html`<${ModelsPage} />`],
  [
    /^\/ui\/models\/([^/]+)\/versions\/([^/]+)$/,
    (m, v) => html`<${VersionPage} modelId=${m} version=${v} />`,
  ],
  [/^\/ui\/models\/([^/]+)$/, (m) => html`<${ModelPage} modelId=${m} />`],
];

function route(pathname) {
  for (const [pattern, page] of ROUTES) {
    const match = pattern.exec(pathname);
    if (match) return page(...match.slice(1).map(decodeURIComponent));
  }
  return html`<p class="error" role="alert">No console page at ${pathname}.</p>`;
}

function SignIn({ onSignedIn }) {
  const [error, setError] = useState();
  const submit = async (event) => {
    event.preventDefault();
    const token = new FormData(event.target).get('token').trim();
    setToken(token);
    try {
      await get('/v2/clients?limit=1'); // any read proves the token; a 401 means it is not one
      onSignedIn();
    } catch (failure) {
      setToken(null);
      setError(failure.status === 401 ? 'That token was not accepted.' : failure.message);
    }
  };
  return html`<form class="sign-in" onSubmit=${submit}>
    <h1>PIE console</h1>
    <p>Paste a token (for a local <code>npm start</code>, the admin token it printed).</p>
    <label for="token">Token</label>
    <input id="token" name="token" type="password" autocomplete="off" required />
    <button type="submit">Sign in</button>
    ${error && html`<p class="error" role="alert">${error}</p>`}
  </form>`;
}

function App() {
  const [path, setPath] = useState(location.pathname + location.search);
  const [signedIn, setSignedIn] = useState(getToken() !== null);
  useEffect(() => {
    const follow = () => setPath(location.pathname + location.search);
    const signOut = () => {
      setToken(null);
      setSignedIn(false);
    };
    // Links inside the console change the page without a reload.
    const click = (event) => {
      const link = event.target.closest?.('a[href^="/ui"]');
      if (!link || event.ctrlKey || event.metaKey || event.shiftKey || link.target) return;
      event.preventDefault();
      history.pushState(null, '', link.getAttribute('href'));
      follow();
    };
    window.addEventListener('popstate', follow);
    window.addEventListener('pie:navigate', follow);
    window.addEventListener('pie:signed-out', signOut);
    document.addEventListener('click', click);
    return () => {
      window.removeEventListener('popstate', follow);
      window.removeEventListener('pie:navigate', follow);
      window.removeEventListener('pie:signed-out', signOut);
      document.removeEventListener('click', click);
    };
  }, []);
  if (!signedIn) return html`<${SignIn} onSignedIn=${() => setSignedIn(true)} />`;
  const who = claims();
  return html`<header class="top">
      <a class="brand" href="/ui">PIE console</a>
      <nav><a href="/ui">Overview</a> <a href="/ui/models">Models</a></nav>
      <span class="who" title="scopes">${who.sub ?? ''} · ${who.scope ?? ''}</span>
      <button type="button" onClick=${() => window.dispatchEvent(new Event('pie:signed-out'))}>
        Sign out
      </button>
    </header>
    <main key=${path}>${route(location.pathname)}</main>`;
}

const root = document.getElementById('app');
root.textContent = ''; // the "Loading" placeholder
render(html`<${App} />`, root);
