"""Grapheme clusters: the user-perceived characters layout never splits (simplified UAX #29)."""

from __future__ import annotations

import unicodedata
from typing import Final

__all__ = ["MAX_CLUSTER", "clusters"]

# No real grapheme cluster is longer: an emoji ZWJ family is 7 code points, a letter with its
# marks a handful. A longer one is a string of marks or joiners meant to make one glyph wider
# than the frame or taller than the panel, and is cut into clusters of this length.
MAX_CLUSTER: Final = 32
_ZWJ: Final = "\u200d"
_VIRAMA: Final = 9  # the canonical combining class of Indic viramas (conjuncts join across them)


def clusters(text: str) -> list[str]:
    """User-perceived characters (a simplified UAX #29): a base and its marks, joiners and
    variation selectors, an emoji ZWJ sequence, a flag's pair, an Indic conjunct."""
    out: list[str] = []
    length = len(text)
    start = 0
    while start < length:
        end = start + 1
        crlf = text[start] == "\r" and text[end : end + 1] == "\n"
        if crlf or (_regional(text[start]) and end < length and _regional(text[end])):
            end += 1  # a pair that stays together
        while end < length and end - start < MAX_CLUSTER:
            char = text[end]
            if _extends(char):
                end += 1
            elif char == _ZWJ:
                end += 1
                if end < length and not text[end].isspace() and end - start < MAX_CLUSTER:
                    end += 1
            elif _joins_conjunct(text[end - 1], char):
                end += 1
            else:
                break
        out.append(text[start:end])
        start = end
    return out


def _extends(char: str) -> bool:
    code = ord(char)
    return (
        unicodedata.category(char) in ("Mn", "Me", "Mc")
        or 0x1F3FB <= code <= 0x1F3FF  # skin tones
        or 0xE0020 <= code <= 0xE007F  # tag sequences (subdivision flags)
        or code == 0x200C
    )


def _regional(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF


def _joins_conjunct(previous: str, char: str) -> bool:
    """A letter after a virama: the two halves of one Indic conjunct."""
    return unicodedata.combining(previous) == _VIRAMA and unicodedata.category(char).startswith("L")
