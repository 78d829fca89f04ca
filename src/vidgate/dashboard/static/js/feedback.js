// What the user is told: a toast, an error shown where it belongs, a button busy meanwhile.

import { $ } from "./dom.js";
import { SignedOut } from "./api.js";

let toastTimer = null;

export function toast(message) {
  const node = $("#toast");
  node.textContent = message;
  node.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    node.hidden = true;
  }, 5000);
}

/** Show an error in `node` (or as a toast), unless the view is gone or we signed out. */
export function report(error, node) {
  if (error instanceof SignedOut || error.name === "AbortError") return;
  if (node) {
    node.textContent = error.message;
    node.hidden = false;
  } else toast(error.message);
}

// Runs action() with the button disabled; a failure is shown in node.
export async function busy(button, node, action) {
  button.disabled = true;
  try {
    await action();
  } catch (failure) {
    report(failure, node);
  } finally {
    button.disabled = false;
  }
}
