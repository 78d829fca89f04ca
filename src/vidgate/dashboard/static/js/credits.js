// The balance and the ledger, newest first, with each task folded into one line.

import { $, append, el, table } from "./dom.js";
import { busy, report } from "./feedback.js";
import { credits, signed, when } from "./format.js";

/**
 * A task's ledger entries (its reserve, then its capture or release; any of them, when the
 * rest is on a page not loaded yet) as one line: what the task cost in the end.
 *
 * A create reserves the price (the balance goes down); completing captures it (the balance
 * does not move again: a "capture 0.00"); failing or cancelling releases it (the price comes
 * back). So the net is the price when captured or still held, and nothing when released.
 */
function taskLedgerLine(entries) {
  const newest = entries.reduce((a, b) => (b.id > a.id ? b : a));
  const price = Number(entries[0].credits);
  const settled = entries.find((e) => e.kind === "capture" || e.kind === "release");
  const state = settled ? (settled.kind === "capture" ? "charged" : "refunded") : "reserved";
  const amount = credits(price);
  const why = {
    charged: `Reserved ${amount} when created; kept when it completed`,
    refunded: `Reserved ${amount} when created; given back when it failed or was cancelled`,
    reserved: `${amount} held until it finishes`,
  }[state];
  return {
    when: newest.created,
    label: `task ${state}`,
    state,
    net: state === "refunded" ? 0 : -price,
    balanceAfter: newest.balance_after,
    why,
  };
}

export function renderCredits(view) {
  const error = el("p", { class: "error", role: "alert", hidden: true });
  const stat = (id, label) =>
    el("div", { class: "stat card" }, el("span", { class: "muted", text: label }), el("strong", { id, text: "…" }));
  const ledger = table("ledger-table", ["When", "Entry", "Change", "Balance after", "Task", "Reason"], "Ledger");
  const more = el("button", { type: "button", id: "ledger-more", class: "ghost", text: "Load more", hidden: true });
  const tasks = new Map(); // task id -> {row, entries}: one ledger line per task
  let cursor = null;
  append(
    view.main,
    el("h1", { text: "Credits" }),
    error,
    el(
      "div",
      { class: "stats" },
      stat("credits-remaining", "Remaining"),
      stat("credits-reserved", "Reserved by running tasks"),
      stat("credits-used", "Used"),
    ),
    el("h2", { text: "Ledger" }),
    el("p", {
      id: "ledger-note",
      class: "muted",
      text:
        "Each task is one line with what it cost in the end: its price is reserved when it is " +
        "created, kept when it completes, and given back in full when it fails or is cancelled.",
    }),
    el("div", { class: "card flush" }, ledger.node),
    el("div", { class: "actions" }, more),
  );

  async function loadBalance() {
    try {
      const user = (await view.call("v1/credits")).data.user;
      if (!view.live()) return;
      $("#credits-remaining").textContent = credits(user.remaining_credits);
      $("#credits-reserved").textContent = credits(user.reserved_credits);
      $("#credits-used").textContent = credits(user.used_credits);
    } catch (failure) {
      report(failure, error);
    }
  }

  async function loadMore() {
    const params = new URLSearchParams({ limit: "20" });
    if (cursor) params.set("cursor", cursor);
    await busy(more, error, async () => {
      const page = await view.call(`v1/ledger?${params}`);
      if (!view.live()) return;
      for (const entry of page.data) {
        if (entry.task_id) showTaskEntry(entry);
        else ledger.body.append(entryRow(entry));
      }
      cursor = page.next_cursor;
      more.hidden = !page.has_more;
    });
  }

  const change = (amount) =>
    el("span", { class: Number(amount) < 0 ? "minus" : Number(amount) > 0 ? "plus" : null, text: signed(amount) });

  function entryRow(entry) {
    const node = ledger.row(
      when(entry.created),
      entry.kind,
      change(entry.amount),
      credits(entry.balance_after),
      "—",
      entry.reason || "",
    );
    node.dataset.kind = entry.kind;
    return node;
  }

  // A task's entries may arrive on different pages: its line is drawn again, where its
  // newest entry put it, as each one comes.
  function showTaskEntry(entry) {
    const known = tasks.get(entry.task_id) || { row: null, entries: [] };
    known.entries.push(entry);
    const line = taskLedgerLine(known.entries);
    const node = ledger.row(
      when(line.when),
      line.label,
      change(line.net),
      credits(line.balanceAfter),
      el("a", { class: "mono", href: `#/tasks/${encodeURIComponent(entry.task_id)}`, text: entry.task_id }),
      line.why,
    );
    Object.assign(node.dataset, { taskId: entry.task_id, kind: "task", state: line.state });
    if (known.row) known.row.replaceWith(node);
    else ledger.body.append(node);
    known.row = node;
    tasks.set(entry.task_id, known);
  }

  more.addEventListener("click", loadMore);
  loadBalance();
  loadMore();
}
