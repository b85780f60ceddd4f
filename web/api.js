// SPDX-License-Identifier: MIT
// The server's API as the dashboard uses it: one fetch wrapper that sends the
// token kept in this tab's session storage and turns a refusal into an Error
// carrying the server's own {"error": "..."} text.

const TOKEN_KEY = 'quiver.token';

export function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  } catch {
    return '';
  }
}

export function setToken(t) {
  try {
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    /* storage disabled: the token lasts until the page reloads */
  }
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  const token = getToken();
  if (token) headers.Authorization = 'Bearer ' + token;
  const init = { method, headers, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'the server cannot be reached (' + e.message + ')');
  }
  const text = await res.text();
  let json = null;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
  }
  if (!res.ok) {
    const msg = json && typeof json.error === 'string' ? json.error : `${res.status} ${res.statusText}`;
    throw new ApiError(res.status, msg);
  }
  return json === null ? text : json;
}

export const get = (path) => api('GET', path);

export function enc(s) {
  return encodeURIComponent(String(s));
}

// Model names from the Prometheus text of /metrics, which needs no token: the
// fallback when the repository index is refused.
export async function modelsFromMetrics() {
  const text = await api('GET', '/metrics');
  const names = new Set();
  for (const m of String(text).matchAll(/model="([^"\\]{1,200})"/g)) names.add(m[1]);
  return [...names].sort();
}
