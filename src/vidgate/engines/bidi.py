"""Bidirectional text: embedding levels per cluster, runs in visual order (simplified UAX #9)."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

__all__ = ["bidi_levels", "visual_order"]


def bidi_levels(parts: Sequence[str]) -> list[int]:
    """Embedding levels per cluster, a simplified Unicode bidi algorithm (UAX #9, no explicit
    embeddings): the paragraph's direction from its first strong letter, digits taking the
    direction before them, neutrals their neighbours' when both agree, else the paragraph's.
    Inside one run HarfBuzz and FriBiDi order and shape the characters; this orders the runs."""
    kinds = [_bidi_type(part) for part in parts]
    rtl_paragraph = next((kind == "R" for kind in kinds if kind in "LR"), False)
    paragraph = "R" if rtl_paragraph else "L"
    resolved: list[str] = []
    last = paragraph
    for kind in kinds:
        if kind == "D":
            kind = last
        if kind in "LR":
            last = kind
        resolved.append(kind)
    # after[i]: the first strong direction after cluster i (the paragraph's past the end)
    following = paragraph
    after: list[str] = [following] * len(resolved)
    for index in range(len(resolved) - 1, -1, -1):
        after[index] = following
        if resolved[index] in "LR":
            following = resolved[index]
    before = paragraph
    levels: list[int] = []
    for index, kind in enumerate(resolved):
        if kind == "N":
            kind = before if before == after[index] else paragraph
        else:
            before = kind
        if rtl_paragraph:
            levels.append(1 if kind == "R" else 2)
        else:
            levels.append(1 if kind == "R" else 0)
    return levels


def visual_order(levels: Sequence[int]) -> list[int]:
    """The indices of runs left to right (rule L2: reverse each level's stretches, top down)."""
    order = list(range(len(levels)))
    if not levels:
        return order
    odd = [level for level in levels if level % 2]
    lowest = min(odd) if odd else max(levels) + 1
    for level in range(max(levels), lowest - 1, -1):
        index = 0
        while index < len(order):
            if levels[order[index]] >= level:
                end = index
                while end < len(order) and levels[order[end]] >= level:
                    end += 1
                order[index:end] = order[index:end][::-1]
                index = end
            else:
                index += 1
    return order


def _bidi_type(cluster: str) -> str:
    """L or R for a strong letter, D for a digit, N for anything else."""
    kind = unicodedata.bidirectional(cluster[0])
    if kind == "L":
        return "L"
    if kind in ("R", "AL"):
        return "R"
    if kind in ("EN", "AN"):
        return "D"
    return "N"
