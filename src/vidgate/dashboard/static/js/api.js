// One call to the public HTTP API: JSON in and out, the key as a Bearer header, never a cookie.

// A task in these statuses has not finished yet: pages keep following it.
export const UNFINISHED = new Set(["pending", "processing"]);

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `The server answered HTTP ${status}.`);
    this.status = status;
    this.code = error.code || null;
    this.param = error.param || null;
  }
}

/** The session's key was refused (401): it is forgotten and the sign-in page is showing. */
export class SignedOut extends Error {}

/** One call with `key`; an answer other than 2xx is an ApiError with the server's message. */
export async function request(path, { method = "GET", body, form, headers = {}, signal, key }) {
  const init = {
    method,
    headers: { Authorization: `Bearer ${key}`, Accept: "application/json", ...headers },
    signal,
    cache: "no-store",
    credentials: "omit",
  };
  if (form !== undefined) init.body = form;
  else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(new URL(path, document.baseURI), init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, { error: { message: "The server could not be reached." } });
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}
