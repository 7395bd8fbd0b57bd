import { get, seg } from '../api.js';
import { html, Json, Loaded, useData, when } from '../ui.js';

// The model registry: models, their versions, and a version's frozen feature contract and
// handler settings. PIE never answers an http handler's secret, so none can be shown.

export function ModelsPage() {
  const state = useData(() => get('/v2/models?limit=100'), 'models');
  return html`<h1>Models</h1>
    <${Loaded} state=${state}>
      ${(page) =>
        html`<table>
          <thead>
            <tr>
              <th>model</th>
              <th>description</th>
              <th>created</th>
            </tr>
          </thead>
          <tbody>
            ${page.items.map(
              (m) =>
                html`<tr>
                  <td><a href=${`/ui/models/${seg(m.model_id)}`}>${m.model_id}</a></td>
                  <td>${m.description ?? ''}</td>
                  <td>${when(m.created_at)}</td>
                </tr>`,
            )}
          </tbody>
        </table>`}
    <//>`;
}

export function ModelPage({ modelId }) {
  const base = `/v2/models/${seg(modelId)}`;
  const state = useData(
    async () => ({ model: await get(base), versions: await get(`${base}/versions?limit=100`) }),
    base,
  );
  return html`<p class="crumbs"><a href="/ui/models">Models</a> / ${modelId}</p>
    <${Loaded} state=${state}>
      ${({ model, versions }) =>
        html`<h1>Model ${model.model_id}</h1>
          <p>${model.description ?? ''}</p>
          <table>
            <thead>
              <tr>
                <th>version</th>
                <th>job types</th>
                <th>handler</th>
                <th>features</th>
                <th>created</th>
              </tr>
            </thead>
            <tbody>
              ${versions.items.map(
                (v) =>
                  html`<tr>
                    <td>
                      <a href=${`/ui/models/${seg(modelId)}/versions/${seg(v.model_version)}`}
                        >${v.model_version}</a
                      >
                    </td>
                    <td>${v.job_types.join(', ')}</td>
                    <td>${v.handler.type}</td>
                    <td>${v.features.length}</td>
                    <td>${when(v.created_at)}</td>
                  </tr>`,
              )}
            </tbody>
          </table>`}
    <//>`;
}

export function VersionPage({ modelId, version }) {
  const path = `/v2/models/${seg(modelId)}/versions/${seg(version)}`;
  const state = useData(() => get(path), path);
  return html`<p class="crumbs">
      <a href="/ui/models">Models</a> / <a href=${`/ui/models/${seg(modelId)}`}>${modelId}</a> /
      ${version}
    </p>
    <${Loaded} state=${state}>
      ${(v) => {
        const { secret: _hidden, ...handler } = v.handler;
        return html`<h1>${v.model_id} ${v.model_version}</h1>
          <p>
            Job types: ${v.job_types.join(', ')} · timeout ${v.timeout_s} s · up to
            ${v.max_attempts} attempts
            ${v.max_in_flight != null && html` · at most ${v.max_in_flight} in flight`}
          </p>
          <section>
            <h2>Feature contract</h2>
            <table>
              <thead>
                <tr>
                  <th>name</th>
                  <th>type</th>
                  <th>required</th>
                  <th>default</th>
                  <th>values</th>
                  <th>description</th>
                </tr>
              </thead>
              <tbody>
                ${v.features.map(
                  (f) =>
                    html`<tr>
                      <td><code>${f.name}</code></td>
                      <td>${f.type}</td>
                      <td>${f.required ? 'yes' : 'no'}</td>
                      <td>${f.default === undefined ? '' : JSON.stringify(f.default)}</td>
                      <td>${(f.values ?? []).join(', ')}</td>
                      <td>${f.description ?? ''}</td>
                    </tr>`,
                )}
              </tbody>
            </table>
          </section>
          <section>
            <h2>Handler</h2>
            <${Json} label="handler" value=${handler} />
          </section>`;
      }}
    <//>`;
}
