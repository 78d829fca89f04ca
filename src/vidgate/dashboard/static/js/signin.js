// The sign-in page: a key is checked against the API before the session keeps it.

import { request } from "./api.js";
import { append, el } from "./dom.js";
import { report } from "./feedback.js";

/** `onSignedIn` shows the page the address asks for, once the key is kept. */
export function renderSignIn(view, session, onSignedIn) {
  const input = el("input", {
    id: "api-key",
    name: "api-key",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    placeholder: "sk-…",
  });
  const error = el("p", { id: "sign-in-error", class: "error", role: "alert", hidden: true });
  const button = el("button", { type: "submit", text: "Sign in" });
  const form = el(
    "form",
    { id: "sign-in-form", class: "card narrow" },
    el("h1", { text: "Sign in" }),
    el("p", {
      class: "muted",
      text: "Use an API key. It is kept in this browser tab only and forgotten when the tab closes.",
    }),
    session.notice ? el("p", { id: "sign-in-notice", class: "notice", role: "alert", text: session.notice }) : null,
    el("label", { for: "api-key", text: "API key" }),
    input,
    error,
    el("div", { class: "actions" }, button),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) return;
    button.disabled = true;
    error.hidden = true;
    try {
      await request("v1/credits", { key });
    } catch (failure) {
      report(failure, error);
      button.disabled = false;
      return;
    }
    try {
      await session.signIn(key);
    } catch {
      return; // refused meanwhile: the sign-in page is showing again
    }
    onSignedIn();
  });
  append(
    view.main,
    el("div", { class: "signin-brand" }, el("span", { class: "brand" }, el("span", { class: "logo", "aria-hidden": "true" }), "vidgate")),
    form,
  );
  input.focus();
}
