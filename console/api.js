// The console's only way to PIE: the /v2 API with the signed-in token, as any API user would.
// The token's claims are read only to decide which buttons to show; the API decides what is
// allowed (a hidden button never grants anything, and a shown one can still answer 403).

const TOKEN_KEY = 'pie.token';

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(token) {
  if (token === null) sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, token);
}

/** The token's claims (`scope`, `clients`, `models`), unverified: for display decisions only. */
export function claims() {
  const token = getToken();
  try {
    const payload = token.split('.')[1].replaceAll('-', '+').replaceAll('_', '/');
    return JSON.parse(atob(payload));
  } catch {
    return {};
  }
}

/** Whether the token names this scope (or `admin`), as src/auth/caller.ts `hasScope` decides. */
export function can(scope) {
  const scopes = String(claims().scope ?? '').split(' ');
  return scopes.includes('admin') || scopes.includes(scope);
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Calls the API; answers the parsed body, or throws ApiError with PIE's message. */
export async function api(method, path, body) {
  const headers = { authorization: `Bearer ${getToken()}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    parsed = text;
  }
  if (!response.ok && response.status !== 207) {
    if (response.status === 401) window.dispatchEvent(new Event('pie:signed-out'));
    throw new ApiError(response.status, parsed?.message ?? `${response.status} from ${path}`);
  }
  return parsed;
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body ?? {});
export const put = (path, body) => api('PUT', path, body ?? {});

/** Encodes an identifier for a path segment. */
export const seg = (value) => encodeURIComponent(value);

/** `?a=1&b=2` of the given fields that are set. */
export function query(fields) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(fields)) {
    if (value !== undefined && value !== null && value !== '') params.set(key, String(value));
  }
  const text = params.toString();
  return text === '' ? '' : `?${text}`;
}
