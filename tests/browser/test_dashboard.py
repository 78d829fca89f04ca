"""The dashboard in headless Chromium against the real server: the whole path a user walks."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import av
import httpx
import pytest
from playwright.sync_api import Page, expect

from support import (
    E2E_KEY,
    ServerProcess,
    WorkerProcess,
    assert_error,
    image_bytes,
    loopback_receiver,
    structured_image,
    wait_until,
)

pytestmark = pytest.mark.slow

DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"
RENDER_TIMEOUT_MS = 240_000  # a busy 2-core machine; the preview engine takes seconds alone

# Resolves with the <video>'s duration once its metadata loaded (rejects on a media error).
VIDEO_DURATION = """() => new Promise((resolve, reject) => {
  const video = document.querySelector('#task-video');
  if (video.readyState >= 1) { resolve(video.duration); return; }
  video.addEventListener('loadedmetadata', () => resolve(video.duration));
  video.addEventListener('error', () => reject(new Error('media error ' + video.error.code)));
})"""

# Plays it (muted, as autoplay rules want) and resolves once frames have really advanced.
VIDEO_PLAYS = """() => new Promise((resolve, reject) => {
  const video = document.querySelector('#task-video');
  video.muted = true;
  video.addEventListener('timeupdate', () => {
    if (video.currentTime > 0.25) { video.pause(); resolve(video.currentTime); }
  });
  video.play().catch(reject);
})"""

# Seeks to a moment and resolves once that frame is shown.
VIDEO_SEEK = """(seconds) => new Promise((resolve) => {
  const video = document.querySelector('#task-video');
  video.addEventListener('seeked', () => resolve(video.currentTime), {once: true});
  video.currentTime = seconds;
})"""

# The natural widths of the task page's input thumbnails, once each has loaded (0: broken).
THUMBNAIL_WIDTHS = """() => Promise.all([...document.querySelectorAll('#task-images img')].map(
  (img) => img.complete ? img.naturalWidth : new Promise((resolve) => {
    img.addEventListener('load', () => resolve(img.naturalWidth));
    img.addEventListener('error', () => resolve(0));
  })))"""

NO_HORIZONTAL_SCROLL = """() => {
  const root = document.documentElement;
  return {scroll: root.scrollWidth, client: root.clientWidth, body: document.body.scrollWidth};
}"""


def sign_in(page: Page, key: str) -> None:
    page.fill("#api-key", key)
    page.click("#sign-in-form button[type=submit]")
    expect(page.locator("#topbar")).to_be_visible()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def completed_task(server: ServerProcess, prompt: str) -> dict[str, object]:
    """A task made through the API by the admin, waited on until it finished."""
    with httpx.Client(base_url=server.url, headers=bearer(E2E_KEY), timeout=60) as http:
        created = http.post(
            "/v1/videos/generations", json={"model": "veo3.1-fast", "prompt": prompt}
        )
        assert created.status_code == 200, created.text
        return finished(http, created.json())


def finished(http: httpx.Client, task: dict[str, object]) -> dict[str, object]:
    """The task, long-polled until it completed (at most 20 polls of 30 s)."""
    for _ in range(20):
        if task["status"] in ("completed", "failed"):
            break
        task = http.get(f"/v1/tasks/{task['id']}", params={"wait": 30}).json()
    assert task["status"] == "completed", task
    return task


def cut(prompt: str, limit: int = 60) -> str:
    """The prompt as the task list shows it: on one line, cut to ``limit`` characters."""
    line = " ".join(prompt.split())
    return line if len(line) <= limit else line[:limit].rstrip() + "…"


def test_a_user_signs_in_makes_a_video_watches_it_and_revokes_their_key(
    page: Page,
    server: ServerProcess,
    shot: Callable[..., Path],
    page_errors: list[str],
    tmp_path: Path,
) -> None:
    page.goto("/")
    expect(page.locator("#sign-in-form")).to_be_visible()
    sign_in(page, E2E_KEY)
    expect(page.locator("#admin-nav")).to_be_visible()

    # A new key, shown once with its warning and a copy button.
    page.click("nav a[data-page=keys]")
    page.fill("#key-name", "browser <b>test</b>")
    page.click("#key-form button[type=submit]")
    expect(page.locator("#new-key .warning")).to_contain_text("will not be shown again")
    expect(page.locator("#copy-key")).to_be_visible()
    new_key = page.input_value("#new-key-value")
    assert new_key.startswith("sk-")
    # The name is data: shown as text, never parsed as markup.
    row = page.locator("#keys-table tbody tr", has_text="browser <b>test</b>")
    expect(row).to_have_count(1)
    expect(page.locator("#keys-table b")).to_have_count(0)
    shot("keys")

    # Sign out, then in with the new key (of the same, admin, account): it lives in the tab's
    # sessionStorage only.
    page.click("#sign-out")
    expect(page.locator("#sign-in-form")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    sign_in(page, new_key)
    expect(page.locator("#who")).to_contain_text(new_key[:11])
    assert page.evaluate("sessionStorage.getItem('vidgate.apiKey')") == new_key
    assert page.evaluate("localStorage.length") == 0
    assert page.context.cookies() == []

    # A video from the form, with one uploaded image.
    picture = tmp_path / "first frame.png"
    picture.write_bytes(image_bytes(structured_image(640, 360, seed=7)))
    page.click("nav a[data-page=create]")
    expect(page.locator("#model option[value='veo3.1-fast']")).to_have_count(1)
    prompt = "A red fox running through fresh snow"
    page.fill("#prompt", prompt)
    expect(page.locator("#prompt-count")).to_have_text(f"{len(prompt)} / 1000 characters")
    page.select_option("#aspect-ratio", "16:9")
    page.set_input_files("#images", str(picture))
    preview = page.locator("#image-previews img")
    expect(preview).to_have_count(1)
    assert (
        page.evaluate(
            "() => new Promise(r => { const i = document.querySelector('#image-previews img');"
            " if (i.complete) r(i.naturalWidth); else i.onload = () => r(i.naturalWidth); })"
        )
        == 640
    )
    shot("create")
    page.click("#create-submit")
    page.wait_for_url(re.compile(r".*#/tasks/task-unified-[^/]+$"))
    task_id = page.url.rsplit("/", 1)[1]

    # The live view follows it to the end.
    expect(page.locator("#task-status")).to_have_text("completed", timeout=RENDER_TIMEOUT_MS)
    expect(page.locator("#task-progress")).to_have_text("100%")
    expect(page.locator("#task-progress-bar")).to_have_attribute("value", "100")
    expect(page.locator("#cancel-task")).to_be_hidden()
    expect(page.locator("#task-callbacks")).to_contain_text("No callback URL")
    expect(page.locator("#task-prompt")).to_have_text(prompt)
    assert page.evaluate(THUMBNAIL_WIDTHS) == [640]

    # The <video> reads its metadata and really plays (Chromium decodes the H.264).
    duration = page.evaluate(VIDEO_DURATION)
    assert 7.9 <= duration <= 8.1
    assert page.evaluate(VIDEO_PLAYS) > 0.25
    assert page.evaluate(VIDEO_SEEK, 4.0) == 4.0
    shot("task")
    if os.environ.get("VIDGATE_DOCS_SCREENSHOT"):  # refreshes docs/dashboard.png on request
        page.screenshot(path=str(DOCS_SCREENSHOT))

    # The download link is the same signed MP4: decode it.
    href = page.get_attribute("#download-link", "href")
    assert href == page.get_attribute("#task-video", "src")
    assert href is not None
    download = httpx.get(href, timeout=60)
    assert download.status_code == 200
    assert download.headers["content-type"] == "video/mp4"
    video_file = tmp_path / "downloaded.mp4"
    video_file.write_bytes(download.content)
    with av.open(str(video_file)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (1280, 720)
        assert sum(1 for _ in container.decode(stream)) == 192

    # The list shows it completed.
    page.click("nav a[data-page=tasks]")
    listed = page.locator(f"#tasks-table tr[data-task-id='{task_id}']")
    expect(listed).to_have_attribute("data-status", "completed")
    expect(listed).to_contain_text("100%")
    expect(listed.locator(".prompt-cut")).to_have_text(prompt)
    shot("tasks")

    # Revoking the key in use: the next request is refused and the page says so.
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("nav a[data-page=keys]")
    mine = page.locator("#keys-table tbody tr", has_text="this key")
    expect(mine).to_have_count(1)
    mine.locator("button", has_text="Revoke").click()
    expect(page.locator("#sign-in-form")).to_be_visible()
    expect(page.locator("#sign-in-notice")).to_contain_text("not valid, has expired or was revoked")
    expect(page.locator("#topbar")).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0
    shot("revoked")
    refused = httpx.get(f"{server.url}/v1/credits", headers=bearer(new_key), timeout=30)
    assert_error(refused, 401, "unauthorized")

    assert page_errors == []


def test_a_wrong_key_shows_the_servers_message_and_stores_nothing(
    page: Page, shot: Callable[..., Path], page_errors: list[str]
) -> None:
    page.goto("/")
    page.fill("#api-key", "sk-not-a-real-key")
    page.click("#sign-in-form button[type=submit]")
    expect(page.locator("#sign-in-error")).to_contain_text(
        "The API key is not valid, has expired or was revoked."
    )
    expect(page.locator("#topbar")).to_be_hidden()
    assert page.evaluate("sessionStorage.length + localStorage.length") == 0
    shot("wrong-key")
    assert page_errors == []


def test_an_admin_tops_up_an_account_and_sees_it_in_the_ledger(
    page: Page, server: ServerProcess, shot: Callable[..., Path], page_errors: list[str]
) -> None:
    with httpx.Client(base_url=server.url, headers=bearer(E2E_KEY), timeout=30) as http:
        created = http.post("/admin/accounts", json={"name": "carol", "credits": "5"})
        assert created.status_code == 200, created.text
        carol = created.json()

    page.goto("/")
    sign_in(page, E2E_KEY)
    page.click("nav a[data-page=admin]")
    row = page.locator(f"#accounts-table tr[data-account-id='{carol['id']}']")
    expect(row).to_contain_text("5.00")
    page.select_option("#topup-account", carol["id"])
    page.fill("#topup-credits", "12.50")
    page.fill("#topup-reason", "browser test")
    page.click("#topup-form button[type=submit]")
    expect(row).to_contain_text("17.50")
    shot("accounts")

    page.click("#sign-out")
    sign_in(page, carol["key"])
    expect(page.locator("#admin-nav")).to_be_hidden()
    page.click("nav a[data-page=credits]")
    expect(page.locator("#credits-remaining")).to_have_text("17.50")
    top_up = page.locator("#ledger-table tbody tr", has_text="browser test")
    expect(top_up).to_contain_text("+12.50")
    shot("credits")
    # A non-admin key cannot open the admin page by its address either.
    page.goto("/#/admin")
    expect(page.locator("h1")).to_have_text("Tasks")
    assert page_errors == []


def test_an_admin_makes_a_group_and_an_account_and_moves_the_account(
    page: Page, server: ServerProcess, shot: Callable[..., Path], page_errors: list[str]
) -> None:
    page.goto("/#/admin")
    sign_in(page, E2E_KEY)

    page.fill("#group-name", "studio")
    page.fill("#group-ratio", "0.5")
    page.fill("#group-active", "3")
    page.click("#group-form button[type=submit]")
    studio = page.locator("#groups-table tr[data-group='studio']")
    expect(studio).to_contain_text("0.5")
    expect(studio).to_contain_text("3")
    expect(studio).to_contain_text("server default")  # no per-minute limit of its own

    page.fill("#account-name", "dana")
    page.fill("#account-credits", "10")
    page.select_option("#account-group", "studio")
    page.click("#account-form button[type=submit]")
    expect(page.locator("#new-account-key .warning")).to_contain_text("will not be shown again")
    key = page.input_value("#new-account-key-value")
    assert key.startswith("sk-")
    row = page.locator("#accounts-table tbody tr", has_text="dana")
    expect(row).to_contain_text("studio")
    expect(row).to_contain_text("10.00")
    shot("made")

    page.select_option("#move-account", label="dana")
    page.select_option("#move-group", "default")
    page.click("#group-move-form button[type=submit]")
    expect(row).to_contain_text("default")
    shot("moved")

    with httpx.Client(base_url=server.url, timeout=30) as http:
        mine = http.get("/v1/credits", headers=bearer(key))
        assert mine.status_code == 200, mine.text  # the key shown once works
        assert mine.json()["data"]["user"]["remaining_credits"] == 10
        accounts = http.get("/admin/accounts", headers=bearer(E2E_KEY)).json()["data"]
        groups = http.get("/admin/groups", headers=bearer(E2E_KEY)).json()["data"]
    [dana] = [a for a in accounts if a["name"] == "dana"]
    assert (dana["user_group"], dana["is_admin"], dana["balance"]) == ("default", False, 10)
    [group] = [g for g in groups if g["name"] == "studio"]
    assert float(group["price_ratio"]) == 0.5
    assert (group["max_active_tasks"], group["rate_limit_per_minute"]) == (3, None)
    assert page_errors == []


def test_pending_tasks_update_live_and_cancel_from_their_page(
    page: Page,
    tmp_path: Path,
    shot: Callable[..., Path],
    page_errors: list[str],
) -> None:
    # No workers: tasks stay pending until something cancels them.
    with (
        ServerProcess(tmp_path / "data", {"VIDGATE_WORKERS": "0"}) as idle,
        httpx.Client(base_url=idle.url, headers=bearer(E2E_KEY), timeout=30) as http,
    ):
        ids = []
        for prompt in ("first, cancelled elsewhere", "second, cancelled here"):
            created = http.post(
                "/v1/videos/generations", json={"model": "veo3.1-fast", "prompt": prompt}
            )
            assert created.status_code == 200, created.text
            ids.append(created.json()["id"])
        elsewhere, here = ids

        page.goto(f"{idle.url}/#/tasks")
        sign_in(page, E2E_KEY)
        row = page.locator(f"#tasks-table tr[data-task-id='{elsewhere}']")
        expect(row).to_have_attribute("data-status", "pending")
        # The list follows unfinished rows: a cancel made through the API shows up.
        assert http.post(f"/v1/tasks/{elsewhere}/cancel").status_code == 200
        expect(row).to_have_attribute("data-status", "failed")

        page.goto(f"{idle.url}/#/tasks/{here}")
        expect(page.locator("#task-status")).to_have_text("pending")
        expect(page.locator(".facts")).to_contain_text("Queue position")
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#cancel-task")
        expect(page.locator("#task-status")).to_have_text("failed")
        expect(page.locator("#task-error-code")).to_have_text("request_cancelled")
        expect(page.locator("#task-error-message")).to_have_text(
            "The task was cancelled before it started."
        )
        expect(page.locator("#cancel-task")).to_be_hidden()
        expect(page.locator("#task-video")).to_have_count(0)
        shot("cancelled")
        assert http.get(f"/v1/tasks/{here}").json()["status"] == "failed"
    assert page_errors == []


def test_the_webhook_secret_is_shown_hidden_and_rotated(
    page: Page, server: ServerProcess, shot: Callable[..., Path], page_errors: list[str]
) -> None:
    with httpx.Client(base_url=server.url, headers=bearer(E2E_KEY), timeout=30) as http:
        before = http.get("/v1/webhook-secret").json()["secret"]
        page.goto("/#/webhooks")
        sign_in(page, E2E_KEY)
        secret = page.locator("#webhook-secret")
        expect(secret).to_have_value(before)
        expect(secret).to_have_attribute("type", "password")  # not on screen until asked
        page.click("#show-secret")
        expect(secret).to_have_attribute("type", "text")

        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#rotate-secret")
        expect(secret).not_to_have_value(before)
        expect(page.locator("#previous-secret")).to_contain_text("previous secret also signs until")
        shot("rotated")
        after = http.get("/v1/webhook-secret").json()
    assert after["secret"] == secret.input_value()
    assert after["secret"].startswith("whsec_")
    assert after["previous_secret_valid_until"] is not None
    assert page_errors == []


def test_a_delivered_callback_is_sent_again_from_the_task_page(
    page: Page, tmp_path: Path, shot: Callable[..., Path], page_errors: list[str]
) -> None:
    with (
        loopback_receiver(tmp_path) as (hooks, bundle),
        ServerProcess(
            tmp_path / "data",
            {
                "VIDGATE_WORKERS": "0",
                "VIDGATE_EGRESS_ALLOW": f"127.0.0.1:{hooks.port}",
                "VIDGATE_EGRESS_CA_BUNDLE": str(bundle),
            },
        ) as idle,
    ):
        with httpx.Client(base_url=idle.url, headers=bearer(E2E_KEY), timeout=30) as http:
            created = http.post(
                "/v1/videos/generations",
                json={
                    "model": "veo3.1-fast",
                    "prompt": "A paper boat in the rain",
                    "callback_url": f"https://127.0.0.1:{hooks.port}/hook",
                },
            )
            assert created.status_code == 200, created.text
            task_id = created.json()["id"]
            # A cancel finishes it, and a finished task is called back.
            assert http.post(f"/v1/tasks/{task_id}/cancel").status_code == 200
            wait_until(lambda: len(hooks.hooks) == 1, "the first callback", timeout=30)

        page.goto(f"{idle.url}/#/tasks/{task_id}")
        sign_in(page, E2E_KEY)
        attempts = page.locator("#callbacks-table tbody tr")
        expect(attempts).to_have_count(1)
        expect(page.locator("#task-callbacks")).to_contain_text("delivered")
        page.click("#redeliver-callback")
        wait_until(lambda: len(hooks.hooks) == 2, "the callback sent again", timeout=30)
        expect(attempts).to_have_count(2)
        expect(page.locator("#task-callbacks .badge")).to_have_text("delivered")
        shot("sent-again")
    first, again = hooks.hooks
    assert first.headers["webhook-id"] == again.headers["webhook-id"]
    assert first.body == again.body
    assert page_errors == []


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_page_fits_a_phone_screen(
    page: Page,
    server: ServerProcess,
    shot: Callable[..., Path],
    page_errors: list[str],
    scheme: str,
) -> None:
    task = completed_task(server, f"A lighthouse at dusk, {scheme}")
    page.set_viewport_size({"width": 390, "height": 844})
    page.emulate_media(color_scheme=scheme)
    page.goto("/")
    sign_in(page, E2E_KEY)
    for name, hash_, ready in (
        ("tasks", "#/tasks", f"#tasks-table tr[data-task-id='{task['id']}']"),
        ("create", "#/create", "#model option[value='veo3.1-fast']"),
        ("task", f"#/tasks/{task['id']}", "#task-video"),
        ("keys", "#/keys", "#keys-table"),
        ("credits", "#/credits", "#ledger-table tbody tr"),
        ("webhooks", "#/webhooks", "#rotate-secret"),
        ("accounts", "#/admin", "#accounts-table"),
    ):
        page.goto(f"/{hash_}")
        expect(page.locator(ready).first).to_be_attached()
        widths = page.evaluate(NO_HORIZONTAL_SCROLL)
        assert widths["scroll"] <= widths["client"] <= 390, (name, widths)
        assert widths["body"] <= widths["client"], (name, widths)
        shot(f"phone-{name}")
    assert page_errors == []


def test_tasks_are_told_apart_by_prompt_images_aspect_model_and_engine(
    page: Page, tmp_path: Path, shot: Callable[..., Path], page_errors: list[str]
) -> None:
    # A long prompt with a line break and a 160-character word (it must wrap, not scroll).
    prompt = (
        "A lighthouse keeper's cat watches the storm roll in over the harbour,\n"
        "then curls up by the lamp while the waves break below: " + "wave" * 40 + " the end"
    )
    with (
        ServerProcess(tmp_path / "data", {"VIDGATE_WORKERS": "0"}) as idle,
        httpx.Client(base_url=idle.url, headers=bearer(E2E_KEY), timeout=30) as http,
    ):
        urls = []
        for name, picture, mime in (
            ("first.png", image_bytes(structured_image(640, 360, seed=11)), "image/png"),
            ("last.jpg", image_bytes(structured_image(360, 640, seed=12), "JPEG"), "image/jpeg"),
        ):
            uploaded = http.post("/v1/files", files={"file": (name, picture, mime)})
            assert uploaded.status_code == 200, uploaded.text
            urls.append(uploaded.json()["url"])
        made = http.post(
            "/v1/videos/generations",
            json={
                "model": "veo3.1-fast",
                "prompt": prompt,
                "aspect_ratio": "9:16",
                "image_urls": urls,
            },
        )
        assert made.status_code == 200, made.text
        short = http.post(
            "/v1/videos/generations",
            json={"model": "veo3.1-fast-beta", "prompt": "A short one"},
        )
        assert short.status_code == 200, short.text
        long_id, short_id = made.json()["id"], short.json()["id"]

        page.goto(f"{idle.url}/#/tasks")
        sign_in(page, E2E_KEY)
        row = page.locator(f"#tasks-table tr[data-task-id='{long_id}']")
        expect(row.locator(".prompt-cut")).to_have_text(cut(prompt))
        expect(row.locator(".task-id")).to_have_text(long_id)
        for label, value in (("Model", "veo3.1-fast"), ("Aspect", "9:16"), ("Engine", "preview")):
            expect(row.locator(f"td[data-label='{label}']")).to_have_text(value)
        expect(row).not_to_contain_text("the end")  # cut: the tail is on the task page only
        other = page.locator(f"#tasks-table tr[data-task-id='{short_id}']")
        expect(other.locator(".prompt-cut")).to_have_text("A short one")
        expect(other.locator("td[data-label='Aspect']")).to_have_text("16:9")
        shot("list")

        row.locator("a.task-link").click()
        page.wait_for_url(f"**/#/tasks/{long_id}")
        # The whole prompt, its line break kept.
        expect(page.locator("#task-prompt")).to_contain_text("the end")
        assert page.locator("#task-prompt").evaluate("p => p.textContent") == prompt
        expect(page.locator(".facts")).to_contain_text("9:16")
        expect(page.locator("#task-images img")).to_have_count(2)
        assert page.locator("#task-images img").evaluate_all(
            "images => images.map(i => i.alt)"
        ) == ["First frame", "Last frame"]
        # Both thumbnails really loaded, through their signed links and the page's CSP.
        assert page.evaluate(THUMBNAIL_WIDTHS) == [640, 360]
        shot("inputs")

        page.set_viewport_size({"width": 390, "height": 844})
        for hash_ in (f"#/tasks/{long_id}", "#/tasks"):
            page.goto(f"{idle.url}/{hash_}")
            expect(page.locator("#task-prompt, #tasks-table tbody tr").first).to_be_visible()
            widths = page.evaluate(NO_HORIZONTAL_SCROLL)
            assert widths["scroll"] <= widths["client"] <= 390, (hash_, widths)
        shot("phone-list")
    assert page_errors == []


def test_the_ledger_shows_one_line_per_task_with_what_it_cost(
    page: Page, tmp_path: Path, shot: Callable[..., Path], page_errors: list[str]
) -> None:
    # No workers in the server: a task completes only when the worker below is started, after
    # twenty top-ups, so the task's capture is on the ledger's first page, its reserve on the
    # second.
    with (
        ServerProcess(tmp_path / "data", {"VIDGATE_WORKERS": "0"}) as idle,
        httpx.Client(base_url=idle.url, headers=bearer(E2E_KEY), timeout=60) as admin,
    ):
        made = admin.post("/admin/accounts", json={"name": "erin", "credits": "100"})
        assert made.status_code == 200, made.text
        erin = made.json()
        with httpx.Client(base_url=idle.url, headers=bearer(erin["key"]), timeout=60) as http:

            def create(prompt: str) -> dict[str, object]:
                created = http.post(
                    "/v1/videos/generations", json={"model": "veo3.1-fast", "prompt": prompt}
                )
                assert created.status_code == 200, created.text
                task: dict[str, object] = created.json()
                return task

            charged = create("completed: charged")
            for n in range(1, 21):
                topped = admin.post(
                    f"/admin/accounts/{erin['id']}/topup",
                    json={"credits": "1", "reason": f"top-up {n:02d}"},
                )
                assert topped.status_code == 200, topped.text
            worker = WorkerProcess(idle.data_dir, {})
            try:
                worker.start()
                finished(http, charged)
            finally:
                worker.stop()
            refunded = create("cancelled: refunded")
            assert http.post(f"/v1/tasks/{refunded['id']}/cancel").status_code == 200
            held = create("pending: held")
            entries = http.get("/v1/ledger", params={"limit": 100}).json()["data"]
        kinds = [entry["kind"] for entry in entries]
        # The API keeps every entry; what the page makes of them is the point below.
        assert kinds[:4] == ["reserve", "release", "reserve", "capture"]
        assert kinds[-2:] == ["reserve", "topup"]

        page.goto(f"{idle.url}/#/credits")
        sign_in(page, erin["key"])
        expect(page.locator("#credits-remaining")).to_have_text("68.60")  # 100 + 20 - 2 x 25.70

        def line(task: dict[str, object]) -> object:
            return page.locator(f"#ledger-table tr[data-task-id='{task['id']}']")

        def check_lines() -> None:
            for task, state, net in (
                (charged, "charged", "-25.70"),
                (refunded, "refunded", "0.00"),
                (held, "reserved", "-25.70"),
            ):
                row = line(task)
                expect(row).to_have_count(1)
                expect(row).to_have_attribute("data-state", state)
                expect(row.locator("td[data-label='Change']")).to_have_text(net)
                expect(row.locator("td[data-label='Entry']")).to_have_text(f"task {state}")
            for kind in ("reserve", "capture", "release"):
                expect(page.locator(f"#ledger-table tr[data-kind='{kind}']")).to_have_count(0)

        # The first page has the charged task's capture, not yet its reserve: one line already.
        expect(page.locator("#ledger-table tbody tr", has_text="top-up 05")).to_have_count(1)
        expect(page.locator("#ledger-table tbody tr", has_text="top-up 04")).to_have_count(0)
        check_lines()
        shot("ledger")
        page.click("#ledger-more")
        expect(page.locator("#ledger-table tbody tr", has_text="top-up 01")).to_have_count(1)
        expect(page.locator("#ledger-more")).to_be_hidden()
        check_lines()  # the reserve joined its line; no second one
        # 20 top-ups, the opening credits, and the three tasks: every line's change adds up to
        # the balance.
        expect(page.locator("#ledger-table tbody tr")).to_have_count(24)
        changes = page.locator("#ledger-table td[data-label='Change']").all_inner_texts()
        total = sum(float(text.replace(",", "").replace("+", "")) for text in changes)
        assert round(total, 2) == 68.60
        shot("ledger-all")
    assert page_errors == []
