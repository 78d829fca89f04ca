// The DOM, safely: elements are built from data with textContent and properties, never HTML.

export const $ = (selector, root = document) => root.querySelector(selector);

/** An element: props set as attributes/properties/listeners, children as nodes or text. */
export function el(tag, props = {}, ...children) {
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

export function append(node, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export function replace(node, ...children) {
  node.replaceChildren();
  return append(node, ...children);
}

/** Only http(s) links, resolved against the page: a result URL never becomes javascript:. */
export function safeUrl(value) {
  try {
    const url = new URL(String(value), document.baseURI);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

export function badge(status) {
  return el("span", { class: `badge ${status}`, text: status });
}

/** A table that turns into labelled cards on a phone (each cell carries its column name). */
export function table(id, columns, caption) {
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
