// A key just made (on the keys page, or an account's first on the admin page), shown once.

import { el, replace } from "./dom.js";

/** A new key in ``box``, with its warning and a copy button: the only time it is shown. */
export function showKeyOnce(box, headline, secret, valueId, copyId) {
  const value = el("input", { id: valueId, readonly: true, value: secret, "aria-label": "The new key", spellcheck: "false" });
  const copy = el("button", { type: "button", id: copyId, text: "Copy" });
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(secret);
    } catch {
      value.select(); // no clipboard API (plain http): select it for the user to copy
      document.execCommand("copy");
    }
    copy.textContent = "Copied";
  });
  replace(
    box,
    el("p", { class: "warning", role: "alert", text: `${headline} Copy the key now: it will not be shown again.` }),
    el("div", { class: "copy-row" }, value, copy),
  );
  box.hidden = false;
}
