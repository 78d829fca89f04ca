// The account's webhook signing secret: shown on request, copied, rotated.

import { append, el } from "./dom.js";
import { busy, report, toast } from "./feedback.js";
import { when } from "./format.js";

export function renderWebhooks(view) {
  const error = el("p", { class: "error", role: "alert", hidden: true });
  const secret = el("input", {
    id: "webhook-secret",
    type: "password",
    readonly: true,
    value: "",
    "aria-label": "Signing secret",
    spellcheck: "false",
    autocomplete: "off",
  });
  const reveal = el("button", { type: "button", id: "show-secret", class: "ghost small", text: "Show" });
  const copy = el("button", { type: "button", id: "copy-secret", class: "small", text: "Copy" });
  const grace = el("p", { id: "previous-secret", class: "muted", hidden: true });
  const rotate = el("button", { type: "button", id: "rotate-secret", class: "danger", text: "Rotate secret" });
  append(
    view.main,
    el("h1", { text: "Webhooks" }),
    error,
    el(
      "section",
      { class: "card" },
      el("h2", { text: "Signing secret" }),
      el(
        "p",
        { class: "muted" },
        "Every callback carries the headers ",
        el("code", { text: "webhook-id" }),
        ", ",
        el("code", { text: "webhook-timestamp" }),
        " and ",
        el("code", { text: "webhook-signature" }),
        " (Standard Webhooks). Verify them with this secret before trusting a callback.",
      ),
      el("div", { class: "copy-row" }, secret, reveal, copy),
      grace,
    ),
    el(
      "section",
      { class: "card" },
      el("h2", { text: "Rotate" }),
      el(
        "p",
        { class: "muted" },
        "A new secret signs every callback from now on. The current one keeps signing beside it for a day, so receivers can switch without missing one.",
      ),
      el("div", { class: "actions" }, rotate),
    ),
  );

  function show(found) {
    secret.value = found.secret;
    if (found.previous_secret_valid_until) {
      grace.textContent = `The previous secret also signs until ${when(found.previous_secret_valid_until)}.`;
      grace.hidden = false;
    } else grace.hidden = true;
  }

  reveal.addEventListener("click", () => {
    const hidden = secret.type === "password";
    secret.type = hidden ? "text" : "password";
    reveal.textContent = hidden ? "Hide" : "Show";
  });
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(secret.value);
    } catch {
      secret.type = "text"; // no clipboard API (plain http): select it for the user to copy
      reveal.textContent = "Hide";
      secret.select();
      document.execCommand("copy");
    }
    copy.textContent = "Copied";
  });
  rotate.addEventListener("click", async () => {
    if (!window.confirm("Rotate the signing secret? The current one keeps signing for a day.")) return;
    error.hidden = true;
    await busy(rotate, error, async () => {
      const rotated = await view.call("v1/webhook-secret/rotate", { method: "POST" });
      if (!view.live()) return;
      show(rotated);
      toast("New signing secret made.");
    });
  });

  view
    .call("v1/webhook-secret")
    .then((found) => {
      if (view.live()) show(found);
    })
    .catch((failure) => report(failure, error));
}
