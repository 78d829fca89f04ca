// Hash routing: the address after `#/` names the page; without a key, the sign-in page.

import { renderAdmin } from "./admin.js";
import { renderCreate } from "./create.js";
import { renderCredits } from "./credits.js";
import { renderKeys } from "./keys.js";
import { renderSignIn } from "./signin.js";
import { renderTask } from "./task.js";
import { renderTasks } from "./tasks.js";
import { openView } from "./view.js";
import { renderWebhooks } from "./webhooks.js";

/** The page of `#/name` or `#/name/id`, and its id (null: none, or a malformed one). */
function parse(hash) {
  const match = /^#\/([a-z]+)(?:\/([^/?#]+))?/.exec(hash);
  const page = match ? match[1] : "tasks";
  let id = null;
  try {
    id = match && match[2] ? decodeURIComponent(match[2]) : null;
  } catch {
    id = null; // a malformed address: show the list
  }
  return { page, id };
}

/** Shows the page the address names, in a fresh view. */
export function route(session) {
  const open = (title, page) => openView(session, title, page);
  if (session.key === null) {
    renderSignIn(open("Sign in", null), session, () => route(session));
    return;
  }
  const { page, id } = parse(location.hash);
  const showTasks = () => renderTasks(open("Tasks", "tasks"), showTasks);
  if (page === "tasks" && id) renderTask(open("Task", "tasks"), id);
  else if (page === "create") renderCreate(open("New video", "create"), () => session.models());
  else if (page === "keys") renderKeys(open("API keys", "keys"), session.key);
  else if (page === "credits") renderCredits(open("Credits", "credits"));
  else if (page === "webhooks") renderWebhooks(open("Webhooks", "webhooks"));
  else if (page === "admin" && session.admin) renderAdmin(open("Accounts", "admin"));
  else showTasks();
}
