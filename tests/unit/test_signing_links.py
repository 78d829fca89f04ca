"""Signed links with hostile parts: every one is a 403, never a crash."""

from __future__ import annotations

import pytest

from vidgate.errors import Forbidden
from vidgate.media.signing import UrlSigner

SIGNER = UrlSigner(b"k" * 32, "https://videos.example.com/")
KEY = "results/t.mp4"
GOOD = SIGNER.sign(KEY, expires=1000).partition("signature=")[2]


@pytest.mark.parametrize(
    "expires",
    [
        "²",  # str.isdigit() says yes, int() says no
        "١٠٠٠",  # Arabic-Indic digits: int() reads them as 1000, a unix time is ASCII
        "9" * 5000,  # past int()'s 4300-digit limit
        "9" * 16,  # a few digits more than any unix time we sign
    ],
)
def test_an_expiry_that_is_not_a_unix_time_is_refused(expires: str) -> None:
    with pytest.raises(Forbidden, match="expiry is not a unix time"):
        SIGNER.verify(KEY, expires, GOOD, now=0)


@pytest.mark.parametrize("signature", ["é" * 64, "\ud800", GOOD[:-1] + "é"])
def test_a_signature_with_non_ascii_characters_is_refused(signature: str) -> None:
    # hmac.compare_digest raises TypeError on non-ASCII strings.
    with pytest.raises(Forbidden, match="signature is not valid"):
        SIGNER.verify(KEY, "1000", signature, now=0)


def test_a_key_with_a_lone_surrogate_is_refused() -> None:
    with pytest.raises(Forbidden, match="signature is not valid"):
        SIGNER.verify("results/\ud800.mp4", "1000", GOOD, now=0)


def test_a_good_link_still_verifies() -> None:
    SIGNER.verify(KEY, "1000", GOOD, now=999)
    with pytest.raises(Forbidden, match="expired"):
        SIGNER.verify(KEY, "1000", GOOD, now=1000)
