// A page on screen: opening one aborts the previous one's requests, and its loops see it is gone.

import { $, replace } from "./dom.js";

let shown = null; // the AbortController of the view on screen

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** A fresh view titled `title`, with `page` marked in the navigation (null: none). */
export function openView(session, title, page) {
  if (shown) shown.abort();
  const controller = new AbortController();
  shown = controller;
  const signal = controller.signal;
  document.title = title ? `${title} · vidgate` : "vidgate";
  const signedIn = session.key !== null;
  $("#topbar").hidden = !signedIn;
  $("#admin-nav").hidden = !session.admin;
  for (const link of document.querySelectorAll("nav a[data-page]")) {
    if (link.dataset.page === page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (signedIn) {
    $("#who").textContent = `${session.key.slice(0, 11)}…${session.admin ? " · admin" : ""}`;
  }
  const main = replace($("#main"));
  return {
    main,
    signal,
    live: () => shown === controller && !signal.aborted,
    call: (path, options = {}) => session.call(path, { signal, ...options }),
    // Resolves after `ms`, or at once when the view is left.
    sleep: (ms) => sleep(ms, signal),
  };
}
