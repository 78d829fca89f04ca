"""Signed result URLs and API key material."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from vidgate.auth.keys import bearer_token, hash_key, make_key
from vidgate.errors import Forbidden
from vidgate.media.signing import UrlSigner

SIGNER = UrlSigner(b"k" * 32, "https://videos.example.com/")


def parts(url: str) -> tuple[str, str, str]:
    split = urlsplit(url)
    query = parse_qs(split.query)
    return split.path.removeprefix("/files/"), query["expires"][0], query["signature"][0]


def test_a_signed_url_verifies_until_it_expires() -> None:
    url = SIGNER.sign("results/t.mp4", expires=1000)
    assert url.startswith("https://videos.example.com/files/results/t.mp4?")
    key, expires, signature = parts(url)
    SIGNER.verify(key, expires, signature, now=999)
    with pytest.raises(Forbidden, match="expired"):
        SIGNER.verify(key, expires, signature, now=1000)


def test_changing_any_part_breaks_the_signature() -> None:
    key, expires, signature = parts(SIGNER.sign("results/t.mp4", expires=1000))
    for args in (
        ("results/u.mp4", expires, signature),
        (key, "2000", signature),
        (key, expires, signature[:-1] + ("0" if signature[-1] != "0" else "1")),
        (key, expires, None),
        (key, None, signature),
        (key, "-5", signature),
    ):
        with pytest.raises(Forbidden):
            SIGNER.verify(*args, now=0)


def test_another_secret_does_not_verify() -> None:
    key, expires, signature = parts(
        UrlSigner(b"x" * 32, "http://a").sign("results/t.mp4", expires=9)
    )
    with pytest.raises(Forbidden):
        SIGNER.verify(key, expires, signature, now=0)


def test_keys_are_long_random_and_stored_as_hashes() -> None:
    first, second = make_key(), make_key()
    assert first.secret.startswith("sk-")
    assert len(first.secret) >= 43
    assert first.secret != second.secret
    assert first.hash == hash_key(first.secret) != first.secret
    assert first.secret not in first.hash
    assert first.prefix == first.secret[:11]


def test_bearer_parsing() -> None:
    assert bearer_token("Bearer sk-abc") == "sk-abc"
    assert bearer_token("bearer   sk-abc ") == "sk-abc"
    assert bearer_token("Basic sk-abc") is None
    assert bearer_token("Bearer ") is None
    assert bearer_token(None) is None
