// The vidgate dashboard: a client of the public HTTP API, nothing more.
//
// The API key lives in this tab's sessionStorage only (never a cookie, never localStorage) and
// goes out as `Authorization: Bearer <key>` on fetch calls to this origin. Everything the
// server returns reaches the page through textContent or DOM properties, never as HTML.

import { $ } from "./dom.js";
import { route } from "./router.js";
import { Session } from "./session.js";

const session = new Session(() => route(session));

async function start() {
  $("#sign-out").addEventListener("click", () => session.signOut("You signed out."));
  window.addEventListener("hashchange", () => route(session));
  if (session.key !== null) {
    try {
      await session.detectAdmin();
    } catch {
      return; // the stored key no longer works: the sign-in page is showing
    }
  }
  route(session);
}

start();
