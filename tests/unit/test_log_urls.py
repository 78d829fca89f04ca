"""Log records lose every URL's query and fragment, whoever logs them and however."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest

from vidgate.log_redaction import QueryRedactor, install, redact


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    """Records as a handler on a fresh logger tree sees them, with the redactor installed the
    way ``vidgate serve`` installs it."""
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            self.format(record)  # as a real handler would: tracebacks are formatted too
            seen.append(record)

    root = logging.getLogger("test-log-urls-root")
    handler = Keep()
    root.addHandler(handler)
    install(root)
    try:
        yield seen
    finally:
        root.removeHandler(handler)


def test_httpx_request_line_loses_its_query() -> None:
    # httpx's own line: logger.info('HTTP Request: %s %s "%s %d %s"', method, url, ...)
    record = logging.LogRecord(
        "httpx",
        logging.INFO,
        __file__,
        1,
        'HTTP Request: %s %s "%s %d %s"',
        ("POST", httpx.URL("https://hooks.example/hook?token=SECRET#frag"), "HTTP/1.1", 200, "OK"),
        None,
    )
    assert QueryRedactor().filter(record)
    assert record.getMessage() == 'HTTP Request: POST https://hooks.example/hook "HTTP/1.1 200 OK"'


def test_our_own_line_with_a_presigned_url_loses_its_signature(
    records: list[logging.LogRecord],
) -> None:
    log = logging.getLogger("test-log-urls-root.vidgate.engines")
    log.propagate = True
    log.warning(
        "task %s: fetching %s failed", "task-1", "https://b.s3.example/k.mp4?X-Amz-Signature=abc"
    )
    [record] = records
    assert record.getMessage() == "task task-1: fetching https://b.s3.example/k.mp4 failed"


def test_a_traceback_that_prints_a_url_loses_its_query(records: list[logging.LogRecord]) -> None:
    log = logging.getLogger("test-log-urls-root.vidgate")
    try:
        raise RuntimeError("Client error '404' for url 'https://x.example/a?sig=SECRET'")
    except RuntimeError:
        log.exception("callback crashed")
    [record] = records
    assert record.exc_text is not None
    assert "SECRET" not in record.exc_text
    assert "'https://x.example/a'" in record.exc_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "GET http://h:8080/files/results/x.mp4?expires=1&signature=s",
            "GET http://h:8080/files/results/x.mp4",
        ),
        (
            '"https://a.example/p?q=1", "https://b.example/?x"',
            '"https://a.example/p", "https://b.example/"',
        ),
        ("<URL 'wss://a.example/s?t=1'>", "<URL 'wss://a.example/s'>"),
        ("no url here? none", "no url here? none"),
        ("https://a.example/path/only", "https://a.example/path/only"),
        (
            "on postgresql+asyncpg://vidgate:S3CRET@db:5432/vidgate",
            "on postgresql+asyncpg://vidgate:***@db:5432/vidgate",
        ),
        ("http://user@host/x", "http://user@host/x"),
    ],
)
def test_redact_keeps_scheme_host_and_path(text: str, expected: str) -> None:
    assert redact(text) == expected
