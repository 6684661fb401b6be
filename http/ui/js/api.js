// The API, from the browser, on this page's own origin. The token lives
// only in this module's memory: not in localStorage, sessionStorage or a
// cookie, so that it leaves with the tab and no other page or script on the
// origin can read it back later.

let token = "";
const tokenListeners = new Set();

export function setToken(secret) {
  token = secret.trim();
  for (const f of tokenListeners) f(token !== "");
}

export function hasToken() {
  return token !== "";
}

// onToken calls f(hasToken) whenever the token changes.
export function onToken(f) {
  tokenListeners.add(f);
}

// APIError is an answer other than success: status is the HTTP status (0
// when the server could not be reached), message the server's own words.
export class APIError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function send(path, accept, signal) {
  const headers = new Headers({ Accept: accept });
  if (token) headers.set("Authorization", "Bearer " + token);
  try {
    // credentials: "omit": the API takes tokens, never cookies.
    return await fetch(path, { headers, signal, cache: "no-store", credentials: "omit" });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new APIError(0, "the server cannot be reached");
  }
}

// failure turns a refused answer into an APIError with the envelope's
// message.
async function failure(res) {
  let msg = `${res.status} ${res.statusText}`;
  try {
    const body = await res.json();
    if (body && body.message) msg = body.message;
  } catch {
    // Not the envelope (a proxy's page): the status says enough.
  }
  return new APIError(res.status, msg);
}

// get answers the data of a JSON envelope, and the answer's headers.
export async function get(path, signal) {
  const res = await send(path, "application/json", signal);
  if (!res.ok) throw await failure(res);
  const body = await res.json();
  if (!body || body.status !== "success") throw new APIError(res.status, (body && body.message) || "not the API's answer");
  return { data: body.data, headers: res.headers };
}

// getBlob answers a body that is not JSON (CSV results) as a Blob, and the
// answer's headers.
export async function getBlob(path, accept, signal) {
  const res = await send(path, accept, signal);
  if (!res.ok) throw await failure(res);
  return { blob: await res.blob(), headers: res.headers };
}

// query writes params as a query string: empty values are left out, arrays
// repeat their key.
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    for (const x of Array.isArray(v) ? v : [v]) {
      if (x !== undefined && x !== null && x !== "") q.append(k, String(x));
    }
  }
  const s = q.toString();
  return s ? "?" + s : "";
}

// path joins path segments, each escaped.
export function path(...parts) {
  return "/" + parts.map((p) => encodeURIComponent(p)).join("/");
}
