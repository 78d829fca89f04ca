// The account's API keys: create one (shown once), list them, revoke one.

import { append, el, replace, table } from "./dom.js";
import { busy, report, toast } from "./feedback.js";
import { when } from "./format.js";
import { showKeyOnce } from "./new-key.js";

/** `signedInWith` is the session's key: its row is marked, and revoking it signs out. */
export function renderKeys(view, signedInWith) {
  const error = el("p", { class: "error", role: "alert", hidden: true });
  const name = el("input", { id: "key-name", name: "name", maxlength: "200", placeholder: "default", autocomplete: "off" });
  const days = el("input", { id: "key-expires", name: "expires", type: "number", min: "1", max: "3650", inputmode: "numeric" });
  const create = el("button", { type: "submit", text: "Create key" });
  const created = el("div", { id: "new-key", class: "card new-key", hidden: true });
  const list = el("div", { class: "card flush" });
  const form = el(
    "form",
    { id: "key-form", class: "card" },
    el("h2", { text: "Create a key" }),
    el(
      "div",
      { class: "row" },
      el("div", { class: "field" }, el("label", { for: "key-name", text: "Name" }), name),
      el("div", { class: "field" }, el("label", { for: "key-expires", text: "Expires after (days, optional)" }), days),
    ),
    el("div", { class: "actions" }, create),
  );
  append(view.main, el("h1", { text: "API keys" }), error, form, created, el("h2", { text: "Keys of this account" }), list);

  function showCreated(key) {
    showKeyOnce(created, `Key "${key.name}" created.`, key.key, "new-key-value", "copy-key");
  }

  async function load() {
    let keys;
    try {
      keys = (await view.call("v1/keys")).data;
    } catch (failure) {
      report(failure, error);
      return;
    }
    if (!view.live()) return;
    const rows = table("keys-table", ["Name", "Prefix", "Created", "Last used", "Expires", ""], "API keys");
    for (const key of keys) {
      const mine = signedInWith.startsWith(key.prefix) && key.revoked === null;
      let action;
      if (key.revoked !== null) action = el("span", { class: "muted", text: `revoked ${when(key.revoked)}` });
      else {
        action = el("button", { type: "button", class: "danger small", text: "Revoke", "aria-label": `Revoke key ${key.name}`, dataset: { keyId: key.id } });
        action.addEventListener("click", () => revoke(key, mine, action));
      }
      const row = rows.row(
        el("span", {}, key.name, mine ? el("span", { class: "badge completed", text: "this key" }) : null),
        el("code", { text: `${key.prefix}…` }),
        when(key.created),
        when(key.last_used),
        key.expires === null ? "never" : when(key.expires),
        action,
      );
      row.dataset.keyId = key.id;
      rows.body.append(row);
    }
    replace(list, rows.node);
  }

  async function revoke(key, mine, button) {
    const warning = mine ? " This is the key you are signed in with: you will be signed out." : "";
    if (!window.confirm(`Revoke key "${key.name}" (${key.prefix}…)? Requests with it are refused from now on.${warning}`)) return;
    button.disabled = true;
    try {
      await view.call(`v1/keys/${encodeURIComponent(key.id)}/revoke`, { method: "POST" });
      toast(`Key "${key.name}" revoked.`);
    } catch (failure) {
      report(failure, error);
    }
    if (view.live()) await load();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const body = { name: name.value.trim() || "default" };
    if (days.value) body.expires_at = Math.floor(Date.now() / 1000) + Number(days.value) * 86400;
    await busy(create, error, async () => {
      const key = await view.call("v1/keys", { method: "POST", body });
      if (!view.live()) return;
      showCreated(key);
      name.value = "";
      days.value = "";
      await load();
    });
  });
  load();
}
