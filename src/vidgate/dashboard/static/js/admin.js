// The admin page: accounts and their balances, top-ups, new accounts, user groups.

import { append, el, replace, table } from "./dom.js";
import { busy, report, toast } from "./feedback.js";
import { credits, when } from "./format.js";
import { showKeyOnce } from "./new-key.js";

export function renderAdmin(view) {
  const error = el("p", { class: "error", role: "alert", hidden: true });
  const list = el("div", { class: "card flush" });
  const groupList = el("div", { class: "card flush" });
  let accounts = [];
  let groups = [];

  // Selects of accounts and of groups, refilled (keeping their choice) on every load.
  const accountSelects = [];
  const groupSelects = [];
  const accountSelect = (id) => {
    const node = el("select", { id, name: "account", required: true });
    accountSelects.push(node);
    return node;
  };
  const groupSelect = (id) => {
    const node = el("select", { id, name: "user_group", required: true });
    groupSelects.push(node);
    return node;
  };
  const field = (id, label, input, grow = false) =>
    el("div", { class: grow ? "field grow" : "field" }, el("label", { for: id, text: label }), input);

  /** A form whose submit runs ``send`` (a failure shows in the form), then reloads the lists. */
  function adminForm(id, title, fields, buttonText, send) {
    const submit = el("button", { type: "submit", text: buttonText });
    const failure = el("p", { class: "error", role: "alert", hidden: true });
    const form = el(
      "form",
      { id, class: "card" },
      el("h2", { text: title }),
      el("div", { class: "row" }, fields),
      failure,
      el("div", { class: "actions" }, submit),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      failure.hidden = true;
      await busy(submit, failure, async () => {
        await send();
        if (view.live()) await load();
      });
    });
    return form;
  }

  // Top up.
  const topupAccount = accountSelect("topup-account");
  const amount = el("input", { id: "topup-credits", name: "credits", type: "number", min: "0.01", step: "0.01", required: true, inputmode: "decimal" });
  const reason = el("input", { id: "topup-reason", name: "reason", maxlength: "500", placeholder: "November" });
  const topup = adminForm(
    "topup-form",
    "Top up an account",
    [field("topup-account", "Account", topupAccount), field("topup-credits", "Credits", amount), field("topup-reason", "Reason (optional)", reason, true)],
    "Add credits",
    async () => {
      const body = { credits: amount.value };
      if (reason.value.trim()) body.reason = reason.value.trim();
      const updated = await view.call(`admin/accounts/${encodeURIComponent(topupAccount.value)}/topup`, { method: "POST", body });
      toast(`${updated.name} now has ${credits(updated.balance)} credits.`);
      amount.value = "";
      reason.value = "";
    },
  );

  // New account, with its first key shown once.
  const newName = el("input", { id: "account-name", name: "name", maxlength: "200", required: true, autocomplete: "off" });
  const opening = el("input", { id: "account-credits", name: "credits", type: "number", min: "0", step: "0.01", value: "0", inputmode: "decimal" });
  const newGroup = groupSelect("account-group");
  const isAdmin = el("input", { id: "account-admin", name: "is_admin", type: "checkbox" });
  const createdKey = el("div", { id: "new-account-key", class: "card new-key", hidden: true });
  const create = adminForm(
    "account-form",
    "Create an account",
    [
      field("account-name", "Name", newName, true),
      field("account-credits", "Opening credits", opening),
      field("account-group", "Group", newGroup),
      el("div", { class: "field" }, el("label", { class: "check", for: "account-admin" }, isAdmin, "Admin")),
    ],
    "Create account",
    async () => {
      const body = { name: newName.value.trim(), credits: opening.value || "0", user_group: newGroup.value, is_admin: isAdmin.checked };
      const made = await view.call("admin/accounts", { method: "POST", body });
      showKeyOnce(createdKey, `Account "${made.name}" created.`, made.key, "new-account-key-value", "copy-account-key");
      newName.value = "";
      opening.value = "0";
      isAdmin.checked = false;
    },
  );

  // Move an account to another group.
  const moveAccount = accountSelect("move-account");
  const moveGroup = groupSelect("move-group");
  const move = adminForm(
    "group-move-form",
    "Change an account's group",
    [field("move-account", "Account", moveAccount), field("move-group", "Group", moveGroup)],
    "Change group",
    async () => {
      const moved = await view.call(`admin/accounts/${encodeURIComponent(moveAccount.value)}/group`, { method: "PUT", body: { user_group: moveGroup.value } });
      toast(`${moved.name} is now in group ${moved.user_group}.`);
    },
  );

  // Create or change a group's price and limits (blank limits: none).
  const groupName = el("input", { id: "group-name", name: "name", maxlength: "64", required: true, autocomplete: "off", placeholder: "studio" });
  const ratio = el("input", { id: "group-ratio", name: "price_ratio", type: "number", min: "0", max: "1000", step: "0.01", value: "1", required: true, inputmode: "decimal" });
  const perMinute = el("input", { id: "group-rate", name: "rate_limit_per_minute", type: "number", min: "0", step: "1", inputmode: "numeric", placeholder: "server default" });
  const maxActive = el("input", { id: "group-active", name: "max_active_tasks", type: "number", min: "0", step: "1", inputmode: "numeric", placeholder: "server default" });
  const setGroup = adminForm(
    "group-form",
    "Create or change a group",
    [
      field("group-name", "Name", groupName),
      field("group-ratio", "Price ratio", ratio),
      field("group-rate", "Requests per minute", perMinute),
      field("group-active", "Unfinished tasks at once", maxActive),
    ],
    "Save group",
    async () => {
      const limit = (input) => (input.value === "" ? null : Number(input.value));
      const body = { price_ratio: ratio.value, rate_limit_per_minute: limit(perMinute), max_active_tasks: limit(maxActive) };
      const saved = await view.call(`admin/groups/${encodeURIComponent(groupName.value.trim())}`, { method: "PUT", body });
      toast(`Group ${saved.name} saved.`);
    },
  );

  append(
    view.main,
    el("h1", { text: "Accounts" }),
    error,
    list,
    topup,
    create,
    createdKey,
    move,
    el("h2", { text: "User groups" }),
    groupList,
    setGroup,
  );

  function refill(selects, options) {
    for (const select of selects) {
      const keep = select.value;
      replace(select, options.map(([value, text]) => el("option", { value, text })));
      if (keep && options.some(([value]) => value === keep)) select.value = keep;
    }
  }

  async function load() {
    try {
      [accounts, groups] = await Promise.all([
        view.call("admin/accounts").then((page) => page.data),
        view.call("admin/groups").then((page) => page.data),
      ]);
    } catch (failure) {
      report(failure, error);
      return;
    }
    if (!view.live()) return;
    const rows = table("accounts-table", ["Name", "Group", "Role", "Balance", "Created"], "Accounts");
    for (const a of accounts) {
      const row = rows.row(a.name, a.user_group, a.is_admin ? "admin" : "user", credits(a.balance), when(a.created));
      row.dataset.accountId = a.id;
      rows.body.append(row);
    }
    replace(list, rows.node);
    const limit = (value) => (value === null || value === undefined ? "server default" : String(value));
    const groupRows = table("groups-table", ["Name", "Price ratio", "Requests per minute", "Unfinished tasks at once"], "User groups");
    for (const g of groups) {
      const row = groupRows.row(g.name, String(g.price_ratio), limit(g.rate_limit_per_minute), limit(g.max_active_tasks));
      row.dataset.group = g.name;
      groupRows.body.append(row);
    }
    replace(groupList, groupRows.node);
    refill(accountSelects, accounts.map((a) => [a.id, a.name]));
    const names = new Set(["default", ...groups.map((g) => g.name)]);
    refill(groupSelects, [...names].map((name) => [name, name]));
  }

  load();
}
