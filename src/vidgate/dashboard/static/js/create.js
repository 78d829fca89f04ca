// The new-video form: model, prompt, aspect ratio and images; uploads them, then creates the task.

import { append, el, replace } from "./dom.js";
import { report } from "./feedback.js";
import { credits } from "./format.js";

const DEFAULT_PROMPT_LIMIT = 1000;
const MAX_IMAGE_BYTES = 10 * 1024 * 1024;

function randomId() {
  // crypto.randomUUID needs a secure context; getRandomValues works on plain http too.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** `models()` resolves to the server's models (the form waits for them to offer a choice). */
export function renderCreate(view, models) {
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
  let offered = []; // the models in the select, once they came

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

  const spec = () => offered.find((m) => m.id === model.value) || null;
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
      offered = list;
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
