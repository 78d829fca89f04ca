// The task list: newest first, a status filter, "Load more", unfinished rows kept up to date.

import { SignedOut, UNFINISHED } from "./api.js";
import { append, badge, el, replace, table } from "./dom.js";
import { busy, report } from "./feedback.js";
import { when } from "./format.js";

const LIST_POLL_MS = 2000;
const LIST_POLL_ROUNDS = 900; // 30 minutes of live updates on the list, then a refresh button
const LIST_PROMPT_CHARS = 60; // a prompt in the task list is cut to this many characters

// The status chosen in the filter: kept while the tab is open, as the user moves between pages.
let statusFilter = "";

function progressCell(task) {
  return el(
    "span",
    { class: "progress" },
    el("progress", { max: "100", value: String(task.progress), "aria-label": "Progress" }),
    el("span", { class: "pct", text: `${task.progress}%` }),
  );
}

/**
 * The text cut to `limit` characters (a character as the reader sees one: an emoji or a
 * letter with its accents is never split), on one line, with "…" when something was cut.
 */
function cutText(text, limit) {
  const line = String(text || "").replace(/\s+/g, " ").trim();
  const characters =
    typeof Intl === "object" && Intl.Segmenter
      ? Array.from(new Intl.Segmenter(undefined, { granularity: "grapheme" }).segment(line), (s) => s.segment)
      : Array.from(line);
  return characters.length <= limit ? line : `${characters.slice(0, limit).join("").trimEnd()}…`;
}

/** A task in the list: its cut prompt (what tells tasks apart) over its id, both a link. */
function taskLinkCell(task) {
  return el(
    "a",
    { class: "task-link", href: `#/tasks/${encodeURIComponent(task.id)}`, title: task.prompt || null },
    el("span", { class: "prompt-cut", text: task.prompt ? cutText(task.prompt, LIST_PROMPT_CHARS) : "—" }),
    el("span", { class: "mono task-id", text: task.id }),
  );
}

/** `reload` shows this page again from the start (a new filter, or after live updates stop). */
export function renderTasks(view, reload) {
  const filter = el(
    "select",
    { id: "status-filter", name: "status" },
    ["", "pending", "processing", "completed", "failed"].map((status) =>
      el("option", { value: status, text: status || "All", selected: status === statusFilter }),
    ),
  );
  filter.value = statusFilter;
  const error = el("p", { class: "error", role: "alert", hidden: true });
  const list = table(
    "tasks-table",
    ["Task", "Model", "Aspect", "Engine", "Status", "Progress", "Created"],
    "Tasks",
  );
  const more = el("button", { type: "button", class: "ghost", text: "Load more", hidden: true });
  const empty = el("p", { class: "muted", hidden: true, text: "No tasks yet." });
  const paused = el("p", { class: "muted", hidden: true });
  const rows = new Map(); // task id -> {row, task}
  let cursor = null;

  append(
    view.main,
    el(
      "div",
      { class: "heading" },
      el("h1", { text: "Tasks" }),
      el("a", { class: "button", href: "#/create", text: "New video" }),
    ),
    el(
      "div",
      { class: "toolbar" },
      el("label", { for: "status-filter", text: "Status" }),
      filter,
    ),
    error,
    el("div", { class: "card flush" }, list.node, empty),
    el("div", { class: "actions" }, more),
    paused,
  );

  function row(task) {
    const node = list.row(
      taskLinkCell(task),
      task.model,
      task.aspect_ratio || "—",
      task.engine || "—",
      badge(task.status),
      progressCell(task),
      when(task.created),
    );
    node.dataset.taskId = task.id;
    node.dataset.status = task.status;
    return node;
  }

  function show(tasks) {
    for (const task of tasks) {
      const node = row(task);
      const known = rows.get(task.id);
      if (known) known.row.replaceWith(node);
      else list.body.append(node);
      rows.set(task.id, { row: node, task });
    }
    empty.hidden = rows.size > 0;
  }

  async function load() {
    const params = new URLSearchParams({ limit: "20" });
    if (statusFilter) params.set("status", statusFilter);
    if (cursor) params.set("cursor", cursor);
    await busy(more, error, async () => {
      const page = await view.call(`v1/tasks?${params}`);
      if (!view.live()) return;
      show(page.data);
      cursor = page.next_cursor;
      more.hidden = !page.has_more;
    });
  }

  // Unfinished rows are fetched again every couple of seconds while this page is open.
  async function follow() {
    for (let round = 0; round < LIST_POLL_ROUNDS; round += 1) {
      await view.sleep(LIST_POLL_MS);
      if (!view.live()) return;
      if (document.hidden) continue;
      const open = [...rows.values()].filter((r) => UNFINISHED.has(r.task.status)).slice(0, 5);
      if (open.length === 0) continue;
      try {
        const fresh = await Promise.all(
          open.map((r) => view.call(`v1/tasks/${encodeURIComponent(r.task.id)}`)),
        );
        if (!view.live()) return;
        show(fresh);
      } catch (failure) {
        if (failure instanceof SignedOut || failure.name === "AbortError") return;
        report(failure, error);
      }
    }
    if (!view.live()) return;
    replace(
      paused,
      "Live updates paused. ",
      el("a", { href: "#/tasks", text: "Refresh", onclick: () => reload() }),
    );
    paused.hidden = false;
  }

  filter.addEventListener("change", () => {
    statusFilter = filter.value;
    reload();
  });
  more.addEventListener("click", load);
  load().then(() => follow());
}
