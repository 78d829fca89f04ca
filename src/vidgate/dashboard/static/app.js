// The vidgate dashboard: a client of the public HTTP API, nothing more.
//
// The API key lives in this tab's sessionStorage only (never a cookie, never localStorage) and
// goes out as `Authorization: Bearer <key>` on fetch calls to this origin. Everything the
// server returns reaches the page through textContent or DOM properties, never as HTML.
"use strict";

(() => {
  const KEY_STORAGE = "vidgate.apiKey";
  const UNFINISHED = new Set(["pending", "processing"]);
  const DEFAULT_PROMPT_LIMIT = 1000;
  const MAX_IMAGE_BYTES = 10 * 1024 * 1024;
  const LIST_POLL_MS = 2000;
  const LIST_POLL_ROUNDS = 900; // 30 minutes of live updates on the list, then a refresh button
  const TASK_WAIT_SECONDS = 20;
  const TASK_POLL_ROUNDS = 600; // long-polls on one task page before it stops following
  const CALLBACK_POLL_ROUNDS = 15;
  const LIST_PROMPT_CHARS = 60; // a prompt in the task list is cut to this many characters

  const state = {
    key: null,
    admin: false,
    notice: null,
    models: null,
    taskFilter: "",
    view: 0,
    controller: null,
  };

  // --- the DOM, safely --------------------------------------------------------------------

  const $ = (selector, root = document) => root.querySelector(selector);

  /** An element: props set as attributes/properties/listeners, children as nodes or text. */
  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props)) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = String(value);
      else if (name === "dataset") Object.assign(node.dataset, value);
      else if (name.startsWith("on") && typeof value === "function") {
        node.addEventListener(name.slice(2), value);
      } else if (name === "value" || name === "checked" || name === "disabled") node[name] = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    append(node, ...children);
    return node;
  }

  function append(node, ...children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function replace(node, ...children) {
    node.replaceChildren();
    return append(node, ...children);
  }

  /** Only http(s) links, resolved against the page: a result URL never becomes javascript:. */
  function safeUrl(value) {
    try {
      const url = new URL(String(value), document.baseURI);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch {
      return null;
    }
  }

  const when = (seconds) =>
    seconds === null || seconds === undefined ? "—" : new Date(seconds * 1000).toLocaleString();

  const credits = (value) =>
    value === null || value === undefined
      ? "—"
      : Number(value).toLocaleString(undefined, {
          minimumFractionDigits: 2,
          maximumFractionDigits: 2,
        });

  const signed = (value) => (Number(value) > 0 ? "+" : "") + credits(value);

  function randomId() {
    // crypto.randomUUID needs a secure context; getRandomValues works on plain http too.
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  let toastTimer = null;
  function toast(message) {
    const node = $("#toast");
    node.textContent = message;
    node.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => {
      node.hidden = true;
    }, 5000);
  }

  function badge(status) {
    return el("span", { class: `badge ${status}`, text: status });
  }

  /** A table that turns into labelled cards on a phone (each cell carries its column name). */
  function table(id, columns, caption) {
    const body = el("tbody");
    const node = el(
      "table",
      { id, class: "cards" },
      caption ? el("caption", { class: "sr-only", text: caption }) : null,
      el("thead", {}, el("tr", {}, columns.map((c) => el("th", { scope: "col", text: c })))),
      body,
    );
    const row = (...cells) =>
      el(
        "tr",
        {},
        cells.map((cell, i) => el("td", { "data-label": columns[i] }, cell)),
      );
    return { node, body, row };
  }

  // --- the API ----------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, body) {
      const error = (body && body.error) || {};
      super(error.message || `The server answered HTTP ${status}.`);
      this.status = status;
      this.code = error.code || null;
      this.param = error.param || null;
    }
  }

  class SignedOut extends Error {}

  /** One call to the API with the session's key (or `key`); errors are ApiError. */
  async function api(path, { method = "GET", body, form, headers = {}, signal, key } = {}) {
    const usingSession = key === undefined;
    const secret = usingSession ? state.key : key;
    const init = {
      method,
      headers: { Authorization: `Bearer ${secret}`, Accept: "application/json", ...headers },
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
    if (!response.ok) {
      const error = new ApiError(response.status, data);
      if (response.status === 401 && usingSession && state.key === secret) {
        signOut(`Signed out: ${error.message}`);
        throw new SignedOut(error.message);
      }
      throw error;
    }
    return data;
  }

  /** Show an error in `node` (or as a toast), unless the view is gone or we signed out. */
  function report(error, node) {
    if (error instanceof SignedOut || error.name === "AbortError") return;
    if (node) {
      node.textContent = error.message;
      node.hidden = false;
    } else toast(error.message);
  }

  // Runs action() with the button disabled; a failure is shown in node.
  async function busy(button, node, action) {
    button.disabled = true;
    try {
      await action();
    } catch (failure) {
      report(failure, node);
    } finally {
      button.disabled = false;
    }
  }

  async function models() {
    if (state.models === null) state.models = (await api("v1/models")).data;
    return state.models;
  }

  // --- session and routing ----------------------------------------------------------------

  function signOut(notice) {
    sessionStorage.removeItem(KEY_STORAGE);
    Object.assign(state, { key: null, admin: false, models: null, notice });
    renderSignIn();
  }

  async function detectAdmin() {
    try {
      await api("admin/accounts");
      state.admin = true;
    } catch (error) {
      if (error instanceof SignedOut) throw error;
      state.admin = false; // 403 for everyone else
    }
  }

  /** A fresh view: the previous one's requests are aborted and its loops see they are stale. */
  function newView(title, page) {
    if (state.controller) state.controller.abort();
    state.controller = new AbortController();
    state.view += 1;
    const view = state.view;
    const signal = state.controller.signal;
    document.title = title ? `${title} · vidgate` : "vidgate";
    const signedIn = state.key !== null;
    $("#topbar").hidden = !signedIn;
    $("#admin-nav").hidden = !state.admin;
    for (const link of document.querySelectorAll("nav a[data-page]")) {
      if (link.dataset.page === page) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    if (signedIn) {
      $("#who").textContent = `${state.key.slice(0, 11)}…${state.admin ? " · admin" : ""}`;
    }
    const main = replace($("#main"));
    return {
      main,
      signal,
      live: () => view === state.view && !signal.aborted,
      call: (path, options = {}) => api(path, { signal, ...options }),
    };
  }

  function route() {
    if (state.key === null) {
      renderSignIn();
      return;
    }
    const match = /^#\/([a-z]+)(?:\/([^/?#]+))?/.exec(location.hash);
    const page = match ? match[1] : "tasks";
    let id = null;
    try {
      id = match && match[2] ? decodeURIComponent(match[2]) : null;
    } catch {
      id = null; // a malformed address: show the list
    }
    if (page === "tasks" && id) renderTask(id);
    else if (page === "create") renderCreate();
    else if (page === "keys") renderKeys();
    else if (page === "credits") renderCredits();
    else if (page === "webhooks") renderWebhooks();
    else if (page === "admin" && state.admin) renderAdmin();
    else renderTasks();
  }

  // --- sign in ----------------------------------------------------------------------------

  function renderSignIn() {
    const view = newView("Sign in", null);
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
      state.notice ? el("p", { id: "sign-in-notice", class: "notice", role: "alert", text: state.notice }) : null,
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
        await api("v1/credits", { key });
      } catch (failure) {
        report(failure, error);
        button.disabled = false;
        return;
      }
      sessionStorage.setItem(KEY_STORAGE, key);
      Object.assign(state, { key, notice: null, models: null });
      try {
        await detectAdmin();
      } catch {
        return;
      }
      route();
    });
    append(
      view.main,
      el("div", { class: "signin-brand" }, el("span", { class: "brand" }, el("span", { class: "logo", "aria-hidden": "true" }), "vidgate")),
      form,
    );
    input.focus();
  }

  // --- tasks ------------------------------------------------------------------------------

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

  function renderTasks() {
    const view = newView("Tasks", "tasks");
    const filter = el(
      "select",
      { id: "status-filter", name: "status" },
      ["", "pending", "processing", "completed", "failed"].map((status) =>
        el("option", { value: status, text: status || "All", selected: status === state.taskFilter }),
      ),
    );
    filter.value = state.taskFilter;
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
      if (state.taskFilter) params.set("status", state.taskFilter);
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
        await sleep(LIST_POLL_MS, view.signal);
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
        el("a", { href: "#/tasks", text: "Refresh", onclick: () => route() }),
      );
      paused.hidden = false;
    }

    filter.addEventListener("change", () => {
      state.taskFilter = filter.value;
      renderTasks();
    });
    more.addEventListener("click", load);
    load().then(() => follow());
  }

  function sleep(ms, signal) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      signal.addEventListener("abort", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** The names of a task's input images, by their role in the video. */
  function imageRoles(count) {
    if (count === 1) return ["First frame"];
    if (count === 2) return ["First frame", "Last frame"];
    return Array.from({ length: count }, (_, i) => `Image ${i + 1}`);
  }

  /** What a task was made from: its whole prompt and its input images as thumbnails. */
  function taskInputs(task) {
    const images = (task.input_images || []).map(safeUrl).filter((url) => url !== null);
    const roles = imageRoles(images.length);
    return [
      el("h2", { text: "Prompt" }),
      el("p", { id: "task-prompt", class: "prompt", text: task.prompt || "—" }),
      images.length
        ? [
            el("h2", { text: "Input images" }),
            el(
              "ul",
              { id: "task-images", class: "previews" },
              images.map((url, i) =>
                el(
                  "li",
                  {},
                  el("img", { src: url, alt: roles[i] }),
                  el("span", { class: "name", text: roles[i] }),
                ),
              ),
            ),
          ]
        : el("p", { class: "muted", text: "No input images: made from the prompt alone." }),
    ];
  }

  function renderTask(id) {
    const view = newView("Task", "tasks");
    const path = `v1/tasks/${encodeURIComponent(id)}`;
    const error = el("p", { class: "error", role: "alert", hidden: true });
    const status = el("span", { id: "task-status" });
    const bar = el("progress", { id: "task-progress-bar", max: "100", value: "0", "aria-labelledby": "progress-label" });
    const pct = el("span", { id: "task-progress", class: "pct", text: "" });
    const facts = el("dl", { class: "facts" });
    const failure = el("div", { id: "task-error", class: "failure", role: "alert", hidden: true });
    const cancel = el("button", { type: "button", id: "cancel-task", class: "danger", text: "Cancel task", hidden: true });
    const result = el("div", { id: "task-result", class: "result", hidden: true });
    const callbacks = el("div", { id: "task-callbacks" });
    const inputs = el("section", { id: "task-inputs", class: "card inputs-card", hidden: true });
    const layout = el("div", { class: "task-layout" });
    let current = null;
    let shownInputs = null; // what the inputs card shows: redrawn only when it changes

    append(
      view.main,
      el("p", {}, el("a", { href: "#/tasks", text: "← All tasks" })),
      el("h1", { class: "task-title" }, "Task ", el("code", { text: id })),
      error,
      layout,
    );
    append(
      layout,
      el(
        "section",
        { class: "card task-card" },
        el(
          "div",
          { class: "status-line" },
          status,
          el("span", { class: "progress wide" }, el("span", { id: "progress-label", class: "sr-only", text: "Progress" }), bar, pct),
          cancel,
        ),
        failure,
        facts,
      ),
      inputs,
      result,
      el("section", { class: "card callbacks-card" }, el("h2", { text: "Callback deliveries" }), callbacks),
    );

    function fact(term, value) {
      return [el("dt", { text: term }), el("dd", {}, value)];
    }

    function show(task) {
      const previous = current;
      current = task;
      replace(status, badge(task.status));
      bar.value = task.progress;
      pct.textContent = `${task.progress}%`;
      cancel.hidden = !(task.task_info && task.task_info.can_cancel);
      // Every poll answers the inputs again: the thumbnails are not reloaded unless they changed.
      const drawn = JSON.stringify([task.prompt, task.input_images]);
      if (drawn !== shownInputs) {
        shownInputs = drawn;
        replace(inputs, taskInputs(task));
        inputs.hidden = false;
      }
      replace(
        facts,
        fact("Model", task.model),
        fact("Engine", task.engine || "—"),
        fact("Aspect ratio", task.aspect_ratio || "—"),
        fact("Created", when(task.created)),
        task.queue_position ? fact("Queue position", String(task.queue_position)) : null,
        UNFINISHED.has(task.status) && task.task_info
          ? fact("Estimated time", `${task.task_info.estimated_time} s`)
          : null,
        fact("Credits", credits(task.usage && task.usage.credits_reserved)),
      );
      if (task.status === "failed" && task.error) {
        replace(
          failure,
          el("strong", { text: "Failed: " }),
          el("code", { id: "task-error-code", text: task.error.code }),
          " ",
          el("span", { id: "task-error-message", text: task.error.message }),
        );
        failure.hidden = false;
      } else failure.hidden = true;
      const url = task.status === "completed" && task.results ? safeUrl(task.results[0]) : null;
      if (url && (!previous || previous.status !== "completed")) {
        replace(
          result,
          el("h2", { text: "Video" }),
          el("video", {
            id: "task-video",
            src: url,
            controls: true,
            preload: "metadata",
            playsinline: true,
          }),
          el(
            "div",
            { class: "actions" },
            el("a", {
              id: "download-link",
              class: "button",
              href: url,
              download: `${task.id}.mp4`,
              text: "Download MP4",
            }),
            el("span", { class: "muted", text: "The link stays valid for at least a day." }),
          ),
        );
        result.hidden = false;
        layout.classList.add("has-video");
      }
    }

    async function loadCallbacks() {
      for (let round = 0; round < CALLBACK_POLL_ROUNDS; round += 1) {
        let delivery;
        try {
          delivery = await view.call(`${path}/callbacks`);
        } catch (failure) {
          report(failure, error);
          return;
        }
        if (!view.live()) return;
        showCallbacks(delivery);
        if (delivery.status !== "pending") return;
        await sleep(2000, view.signal);
        if (!view.live()) return;
      }
    }

    function showCallbacks(delivery) {
      if (delivery.status === "none" && !delivery.url) {
        replace(callbacks, el("p", { class: "muted", text: "No callback URL was given for this task, or it has not finished yet." }));
        return;
      }
      const list = table("callbacks-table", ["#", "Started", "Duration", "HTTP status", "Result"], "Callback attempts");
      for (const attempt of delivery.attempts) {
        list.body.append(
          list.row(
            String(attempt.number),
            when(attempt.started),
            `${attempt.duration_ms} ms`,
            attempt.status_code === null ? "—" : String(attempt.status_code),
            attempt.succeeded ? "delivered" : attempt.error || "failed",
          ),
        );
      }
      // A finished delivery (delivered or given up) can be sent again: the same webhook-id.
      let again = null;
      if (delivery.status === "delivered" || delivery.status === "failed") {
        again = el("button", { type: "button", id: "redeliver-callback", class: "ghost small", text: "Send again" });
        again.addEventListener("click", () => redeliver(again));
      }
      replace(
        callbacks,
        el("p", {}, "To ", el("code", { class: "break", text: delivery.url || "—" }), " · ", badge(delivery.status)),
        delivery.attempts.length ? list.node : el("p", { class: "muted", text: "No attempts yet." }),
        again ? el("div", { class: "actions" }, again) : null,
      );
    }

    async function redeliver(button) {
      await busy(button, error, async () => {
        showCallbacks(await view.call(`${path}/callbacks/redeliver`, { method: "POST" }));
        toast("The callback is being sent again.");
        await loadCallbacks();
      });
    }

    async function follow() {
      try {
        show(await view.call(path));
        for (let round = 0; round < TASK_POLL_ROUNDS && UNFINISHED.has(current.status); round += 1) {
          const started = Date.now();
          const task = await view.call(`${path}?wait=${TASK_WAIT_SECONDS}`);
          if (!view.live()) return;
          show(task);
          // An answer that came back at once still waits a moment: never a tight loop.
          const spent = Date.now() - started;
          if (spent < 500) await sleep(500 - spent, view.signal);
          if (!view.live()) return;
        }
      } catch (failure) {
        report(failure, error);
        return;
      }
      if (!view.live()) return;
      loadCallbacks();
    }

    cancel.addEventListener("click", async () => {
      if (!window.confirm("Cancel this task? Its credits come back.")) return;
      await busy(cancel, error, async () => {
        show(await view.call(`${path}/cancel`, { method: "POST" }));
      });
    });
    follow();
  }

  // --- create -----------------------------------------------------------------------------

  function renderCreate() {
    const view = newView("New video", "create");
    const error = el("p", { id: "create-error", class: "error", role: "alert", hidden: true });
    const progress = el("p", { id: "create-progress", class: "muted", role: "status" });
    const model = el("select", { id: "model", name: "model", required: true });
    const aspect = el("select", { id: "aspect-ratio", name: "aspect_ratio" });
    const prompt = el("textarea", {
      id: "prompt",
      name: "prompt",
      rows: "5",
      required: true,
      "aria-describedby": "prompt-count",
      placeholder: "A cat playing piano in a sunlit room",
    });
    const count = el("p", { id: "prompt-count", class: "counter muted" });
    const files = el("input", {
      id: "images",
      name: "images",
      type: "file",
      accept: "image/png,image/jpeg,image/webp",
      multiple: true,
      "aria-describedby": "images-help",
    });
    const imagesHelp = el("p", { id: "images-help", class: "muted" });
    const previews = el("ul", { id: "image-previews", class: "previews" });
    const submit = el("button", { type: "submit", id: "create-submit", text: "Generate video" });
    const imagesField = el("div", { class: "field" }, el("label", { for: "images", text: "Images" }), files, imagesHelp, previews);
    const chosen = []; // {file, preview, url}

    const form = el(
      "form",
      { id: "create-form", class: "card" },
      el("div", { class: "field" }, el("label", { for: "model", text: "Model" }), model),
      el("div", { class: "field" }, el("label", { for: "prompt", text: "Prompt" }), prompt, count),
      el("div", { class: "field" }, el("label", { for: "aspect-ratio", text: "Aspect ratio" }), aspect),
      imagesField,
      error,
      el("div", { class: "actions" }, submit, progress),
    );
    append(view.main, el("h1", { text: "New video" }), form);

    const spec = () => (state.models || []).find((m) => m.id === model.value) || null;
    const limit = () => (spec() && spec().max_prompt_chars) || DEFAULT_PROMPT_LIMIT;
    const maxImages = () => (spec() ? spec().max_images : 2);

    function updateCount() {
      const used = [...prompt.value].length;
      count.textContent = `${used} / ${limit()} characters`;
      count.classList.toggle("over", used > limit());
    }

    function updateModel() {
      const ratios = spec() ? spec().aspect_ratios : ["16:9", "9:16"];
      const keep = aspect.value;
      replace(aspect, [...ratios, "auto"].map((r) => el("option", { value: r, text: r })));
      if ([...ratios, "auto"].includes(keep)) aspect.value = keep;
      imagesField.hidden = maxImages() === 0;
      imagesHelp.textContent = `Up to ${maxImages()}: JPEG, PNG or WebP, at most 10 MB each. With one, the video starts on it; with two, it ends on the second.`;
      while (chosen.length > maxImages()) removeImage(chosen[chosen.length - 1]);
      updateCount();
    }

    function showPreviews() {
      replace(
        previews,
        chosen.map((item, index) => {
          const remove = el("button", { type: "button", class: "ghost small", text: "Remove", "aria-label": `Remove image ${index + 1}` });
          remove.addEventListener("click", () => removeImage(item));
          return el(
            "li",
            {},
            el("img", { src: item.preview, alt: `Image ${index + 1}: ${item.file.name}` }),
            el("span", { class: "name", text: item.file.name }),
            remove,
          );
        }),
      );
      files.disabled = chosen.length >= maxImages();
    }

    function removeImage(item) {
      const at = chosen.indexOf(item);
      if (at >= 0) chosen.splice(at, 1);
      URL.revokeObjectURL(item.preview);
      showPreviews();
    }

    view.signal.addEventListener("abort", () => chosen.forEach((item) => URL.revokeObjectURL(item.preview)));

    files.addEventListener("change", () => {
      error.hidden = true;
      for (const file of files.files) {
        if (chosen.length >= maxImages()) {
          report(new Error(`At most ${maxImages()} images.`), error);
          break;
        }
        if (file.size > MAX_IMAGE_BYTES) {
          report(new Error(`${file.name} is over 10 MB.`), error);
          continue;
        }
        chosen.push({ file, preview: URL.createObjectURL(file), url: null });
      }
      files.value = "";
      showPreviews();
    });
    prompt.addEventListener("input", updateCount);
    model.addEventListener("change", updateModel);

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.hidden = true;
      if ([...prompt.value].length > limit()) {
        report(new Error(`The prompt is over ${limit()} characters.`), error);
        return;
      }
      submit.disabled = true;
      try {
        for (const [index, item] of chosen.entries()) {
          if (item.url) continue; // uploaded on an earlier try
          progress.textContent = `Uploading image ${index + 1} of ${chosen.length}…`;
          const data = new FormData();
          data.append("file", item.file, item.file.name);
          item.url = (await view.call("v1/files", { method: "POST", form: data })).url;
        }
        progress.textContent = "Creating the task…";
        const body = { model: model.value, prompt: prompt.value, aspect_ratio: aspect.value };
        if (chosen.length) body.image_urls = chosen.map((item) => item.url);
        const task = await view.call("v1/videos/generations", {
          method: "POST",
          body,
          headers: { "Idempotency-Key": `dashboard-${randomId()}` },
        });
        if (!view.live()) return;
        location.hash = `#/tasks/${encodeURIComponent(task.id)}`;
      } catch (failure) {
        report(failure, error);
        progress.textContent = "";
      } finally {
        submit.disabled = false;
      }
    });

    updateModel();
    models()
      .then((list) => {
        if (!view.live()) return;
        replace(
          model,
          list.map((m) =>
            el("option", { value: m.id, text: `${m.id} · ${credits(m.price)} credits` }),
          ),
        );
        updateModel();
      })
      .catch((failure) => report(failure, error));
  }

  // --- keys -------------------------------------------------------------------------------

  function renderKeys() {
    const view = newView("API keys", "keys");
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
        const mine = state.key.startsWith(key.prefix) && key.revoked === null;
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

  /** A new key in ``box``, with its warning and a copy button: the only time it is shown. */
  function showKeyOnce(box, headline, secret, valueId, copyId) {
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

  // --- credits ----------------------------------------------------------------------------

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

  function renderCredits() {
    const view = newView("Credits", "credits");
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

  // --- webhooks ---------------------------------------------------------------------------

  function renderWebhooks() {
    const view = newView("Webhooks", "webhooks");
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

  // --- admin ------------------------------------------------------------------------------

  function renderAdmin() {
    const view = newView("Accounts", "admin");
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

  // --- start ------------------------------------------------------------------------------

  async function start() {
    $("#sign-out").addEventListener("click", () => signOut("You signed out."));
    window.addEventListener("hashchange", route);
    state.key = sessionStorage.getItem(KEY_STORAGE);
    if (state.key !== null) {
      try {
        await detectAdmin();
      } catch {
        return; // the stored key no longer works: the sign-in page is showing
      }
    }
    route();
  }

  start();
})();
