"""Log lines never carry a URL's query or fragment: callback URLs hold tokens, presigned and
signed links hold signatures (nor a password in a URL, as database URLs have). Scheme, host and
path stay, which is what a reader needs."""

from __future__ import annotations

import logging
import re

# A URL, then its query and fragment: everything from "?" or "#" up to a space, a quote or an
# angle bracket (how URLs end in reprs, JSON and httpx's own lines).
_QUERY = re.compile(r"""([a-zA-Z][a-zA-Z0-9+.-]*://[^\s?#"'<>]*)[?#][^\s"'<>]*""")
# user:password@ in a URL's authority: the password goes.
_PASSWORD = re.compile(r"""([a-zA-Z][a-zA-Z0-9+.-]*://[^\s/?#@:"'<>]*:)[^\s/?#@"'<>]*@""")
# The loggers of the libraries that print whole request URLs (httpx: "HTTP Request: POST
# https://...?token=..."); our own lines go through the handler's filter as well.
_FORMATTER = logging.Formatter()
LIBRARY_LOGGERS = ("httpx", "httpcore", "uvicorn", "uvicorn.error", "botocore", "urllib3")


def redact(text: str) -> str:
    """``text`` with the query and fragment cut from every URL in it, and any password in
    a URL's user part masked (``postgresql://vidgate:***@db/...``)."""
    return _PASSWORD.sub(r"\1***@", _QUERY.sub(r"\1", text))


class QueryRedactor(logging.Filter):
    """Rewrites a record whose message holds a URL with a query, then lets it through."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is logging's to report, not ours
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            # Exceptions print URLs too (httpx's "... for url 'https://...?...'"): the
            # traceback is formatted here, once, and the formatter reuses the text.
            record.exc_text = _FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install(root: logging.Logger | None = None) -> QueryRedactor:
    """Put the redactor on every handler of the root logger (every record that is written
    passes one) and on the library loggers (so records are clean wherever they propagate)."""
    redactor = QueryRedactor()
    root = root or logging.getLogger()
    for handler in root.handlers:
        if not any(isinstance(f, QueryRedactor) for f in handler.filters):
            handler.addFilter(redactor)
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, QueryRedactor) for f in logger.filters):
            logger.addFilter(redactor)
    return redactor
