// Talking to the dimwatch REST API (docs/api.md). Paths are relative to the page, so the
// dashboard also works behind a reverse proxy that mounts the service under a prefix.
// When the server has tokens, a 401 raises AuthError; the page then asks for a token, keeps it in
// localStorage and sends it as a Bearer header (the event stream takes it as ?token=).

const TOKEN_KEY = "dimwatch.token";

export class AuthError extends Error {}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function getToken() {
  return localStorage.getItem(TOKEN_KEY) ?? "";
}

export function setToken(token) {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
}

export function streamPath(name, rest = "") {
  return `v1/streams/${encodeURIComponent(name)}${rest}`;
}

/** GET a JSON resource; throws AuthError on 401 and ApiError (with the server's message) otherwise. */
export async function getJson(path) {
  const headers = { Accept: "application/json" };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, { headers, cache: "no-store" });
  if (response.status === 401) throw new AuthError("this server needs an API token");
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    throw new ApiError(response.status, body?.error ?? "http_error", body?.message ?? response.statusText);
  }
  return body;
}

/** Every history point after `after`, oldest first, following pages of `limit` points. */
export async function getHistory(name, after = -1, limit = 10000, maxPages = 10) {
  const points = [];
  for (let page = 0; page < maxPages; page += 1) {
    const body = await getJson(`${streamPath(name, "/history")}?after=${after}&limit=${limit}`);
    points.push(...body.data);
    if (body.data.length < limit) break;
    after = body.data[body.data.length - 1].step;
  }
  return points;
}

/** An EventSource on the stream's server-sent events (EventSource cannot send headers). */
export function openEvents(name) {
  const token = getToken();
  const query = token ? `?token=${encodeURIComponent(token)}` : "";
  return new EventSource(streamPath(name, "/events") + query);
}
