// One task, live: status and progress, its inputs, its video once done, its callback deliveries.

import { UNFINISHED } from "./api.js";
import { append, badge, el, replace, safeUrl, table } from "./dom.js";
import { busy, report, toast } from "./feedback.js";
import { credits, when } from "./format.js";

const TASK_WAIT_SECONDS = 20;
const TASK_POLL_ROUNDS = 600; // long-polls on one task page before it stops following
const CALLBACK_POLL_ROUNDS = 15;

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

export function renderTask(view, id) {
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
      await view.sleep(2000);
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
        if (spent < 500) await view.sleep(500 - spent);
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
