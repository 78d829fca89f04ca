"""Opaque page cursors: a kind and a position, url-safe, refused clearly when tampered with."""

from __future__ import annotations

import base64
import binascii

from vidgate.errors import InvalidRequest


def encode_cursor(kind: str, *parts: str) -> str:
    raw = ":".join((kind, *parts)).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str, parts: int) -> list[str]:
    """The ``parts`` fields of a cursor of ``kind``; 400 (param ``cursor``) for anything else."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        found, *fields = text.split(":", parts)
        if found != kind or len(fields) != parts or not all(fields):
            raise ValueError(cursor)
        return fields
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidRequest("cursor is not one this server gave out.", param="cursor") from None
