"""The font fallback chain: which installed font draws each grapheme cluster of a prompt."""

from __future__ import annotations

import io
import logging
import os
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Final

from fontTools.ttLib import TTCollection, TTFont, TTLibError  # type: ignore[import-untyped]
from PIL import ImageFont, features

logger = logging.getLogger(__name__)

# Where fonts live: Debian's and other Linux distributions', the user's, and macOS's.
FONT_DIRS: Final = (
    Path("/usr/share/fonts"),
    Path("/usr/local/share/fonts"),
    Path.home() / ".fonts",
    Path.home() / ".local/share/fonts",
    Path("/Library/Fonts"),
    Path("/System/Library/Fonts"),
)
# Tried first, in this order, by file name: one font per script family the issue names (Latin,
# Greek and Cyrillic; Arabic; Hebrew; Devanagari; CJK; monochrome emoji), in the names Debian,
# Fedora, Google Fonts and Homebrew use. Every other regular font found comes after them.
PREFERRED: Final = (
    ("NotoSans-Regular.ttf", "NotoSans-Regular.otf", "DejaVuSans.ttf"),
    ("NotoSansArabic-Regular.ttf", "NotoNaskhArabic-Regular.ttf", "NotoSansArabic-Regular.otf"),
    ("NotoSansHebrew-Regular.ttf", "NotoSansHebrew-Regular.otf"),
    ("NotoSansDevanagari-Regular.ttf", "NotoSansDevanagari-Regular.otf"),
    (
        "NotoSansCJK-Regular.ttc",
        "NotoSansCJKsc-Regular.otf",
        "NotoSansSC-Regular.otf",
        "NotoSansSC-Regular.ttf",
        "PingFang.ttc",
    ),
    ("Symbola_hint.ttf", "Symbola.ttf", "NotoEmoji-Regular.ttf"),
)
_SUFFIXES: Final = (".ttf", ".otf", ".ttc")
# Styles that only repeat a regular font's coverage; colour emoji fonts are bitmaps at one size,
# which FreeType cannot scale to the sizes the layout asks for.
_SKIPPED_WORDS: Final = (
    "bold",
    "italic",
    "oblique",
    "light",
    "thin",
    "black",
    "medium",
    "semibold",
    "extrabold",
    "condensed",
    "colo",
)
# The CJK collection's face to use: its cmap is the same in every face, the glyph shapes differ
# by region; Simplified Chinese serves the most readers.
_CJK_FACE: Final = "SC"


def _ignorable(code: int) -> bool:
    """Characters a font need not have: joiners, variation selectors and tags change how their
    neighbours are drawn, and HarfBuzz hides them when the font lacks them."""
    return (
        code in (0x200C, 0x200D, 0x2060, 0xFEFF)
        or 0xFE00 <= code <= 0xFE0F
        or 0xE0100 <= code <= 0xE01EF
        or 0xE0000 <= code <= 0xE007F
    )


_UNNAMED: Final = {"Co": "private-use", "Cn": "unassigned", "Cs": "surrogate", "Cc": "control"}


def _skin_tone(char: str) -> bool:
    return 0x1F3FB <= ord(char) <= 0x1F3FF


def script_of(char: str) -> str:
    """A rough script name (the first word of the character's Unicode name), for the log."""
    name = unicodedata.name(char, "")
    if name:
        return name.split(" ", 1)[0]
    category = unicodedata.category(char)
    return _UNNAMED.get(category, category)


@dataclass(frozen=True)
class Face:
    """One font file (and face, in a collection) and the code points it has glyphs for."""

    name: str
    path: Path | None  # None: Pillow's own default font
    index: int
    codes: frozenset[int] = field(repr=False)


class FontChain:
    """Fonts in order of preference; a cluster is drawn with the first that has all its glyphs.

    Each font's cmap is read once (``chain_for`` keeps one chain per process), and the last face
    is always Pillow's default font, which draws what no installed font has (as boxes).
    """

    def __init__(self, faces: Sequence[Face]) -> None:
        self.faces = [*faces, _pillow_face()]
        self.default = len(self.faces) - 1
        self.raqm = features.check("raqm") is True
        self._first: dict[int, int] = {}
        for number in range(len(self.faces) - 1, -1, -1):  # earlier faces overwrite later ones
            self._first.update(dict.fromkeys(self.faces[number].codes, number))
        self._fonts: dict[tuple[int, int, bool], ImageFont.FreeTypeFont] = {}
        self._missing: set[str] = set()
        self._lock = threading.Lock()

    def face_for(self, cluster: str, previous: int | None = None) -> int:
        """The face that draws ``cluster``: ``previous`` if it has the glyphs and the cluster is
        no letter or symbol (spaces, punctuation, digits stay with their neighbours), else the
        first face that has all of them, else the first that has its first character."""
        codes = [ord(char) for char in cluster if not _ignorable(ord(char))]
        if not codes:
            return previous if previous is not None else 0
        if (
            previous is not None
            and unicodedata.category(cluster[0])[0] not in "LS"
            and all(code in self.faces[previous].codes for code in codes)
        ):
            return previous
        first = self._first.get(codes[0])
        if first is None:
            self._report_missing(chr(codes[0]))
            return self.default
        if len(codes) > 1:
            for number in range(first, len(self.faces)):
                if all(code in self.faces[number].codes for code in codes):
                    return number
        return first

    def drawable(self, cluster: str, face: int) -> str:
        """The cluster without skin-tone modifiers after its emoji: the chain's emoji fonts are
        monochrome, and draw a modifier as a hatched square beside the emoji, not as a tone."""
        if len(cluster) < 2 or not any(_skin_tone(char) for char in cluster[1:]):
            return cluster
        return cluster[0] + "".join(char for char in cluster[1:] if not _skin_tone(char))

    def font(self, face: int, size: int, basic: bool = False) -> ImageFont.FreeTypeFont:
        """The face at ``size``, laid out with raqm when Pillow has it; ``basic``: without
        shaping, for estimates (a tenth of the cost of a raqm call on a CJK font)."""
        key = (face, size, basic or not self.raqm)
        font = self._fonts.get(key)
        if font is None:
            with self._lock:
                font = self._fonts.get(key) or self._load(face, size, key[2])
                self._fonts[key] = font
        return font

    def _load(self, face: int, size: int, basic: bool) -> ImageFont.FreeTypeFont:
        entry = self.faces[face]
        layout = ImageFont.Layout.BASIC if basic else ImageFont.Layout.RAQM
        if entry.path is not None:
            try:
                return ImageFont.truetype(
                    str(entry.path), size, index=entry.index, layout_engine=layout
                )
            except OSError as error:  # e.g. a bitmap-only font FreeType cannot scale
                logger.warning("font %s cannot be used at %d px: %s", entry.path, size, error)
        # Pillow's own font, with the same layout as the others.
        return ImageFont.truetype(io.BytesIO(_pillow_bytes()), size, layout_engine=layout)

    def _report_missing(self, char: str) -> None:
        script = script_of(char)
        with self._lock:
            if script in self._missing:
                return
            self._missing.add(script)
        logger.warning(
            "no installed font has glyphs for %s text (U+%04X); it is drawn with Pillow's "
            "default font, as boxes (install Noto fonts: see `make fonts`)",
            script,
            ord(char),
        )


def _read_face(path: Path, index: int = 0) -> tuple[str, frozenset[int]] | None:
    try:
        with TTFont(path, fontNumber=index, lazy=True) as font:
            cmap = font.getBestCmap() or {}
            name = (font["name"].getDebugName(4) if "name" in font else None) or path.stem
            return name, frozenset(cmap)
    except (OSError, TTLibError, AssertionError, KeyError, ValueError, IndexError) as error:
        logger.info("font %s skipped: %s", path, error)
        return None


def _collection_index(path: Path) -> int:
    """In a CJK collection, the face for ``_CJK_FACE``; 0 otherwise or when unnamed."""
    try:
        with TTCollection(path, lazy=True) as collection:
            for index, font in enumerate(collection.fonts):
                family = font["name"].getDebugName(1) or ""
                if family.endswith(f" {_CJK_FACE}") and "Mono" not in family:
                    return index
    except (OSError, TTLibError, AssertionError, KeyError, ValueError):
        pass
    return 0


@lru_cache(maxsize=1)
def _pillow_bytes() -> bytes:
    """Pillow's default font file (Aileron), which ``load_default`` holds in memory."""
    data: bytes = getattr(ImageFont.load_default(size=12), "font_bytes", b"")
    return data


def _pillow_face() -> Face:
    codes: frozenset[int] = frozenset()
    try:
        with TTFont(io.BytesIO(_pillow_bytes()), lazy=True) as parsed:
            codes = frozenset(parsed.getBestCmap() or {})
    except (OSError, TTLibError, AssertionError, KeyError, ValueError):
        pass
    return Face("Pillow default", None, 0, codes or frozenset(range(0x20, 0x7F)))


def find_font_files(directories: Iterable[Path]) -> list[Path]:
    """Every regular font file under ``directories``, the preferred ones first."""
    found: dict[str, Path] = {}
    for directory in directories:
        if not directory.is_dir():
            continue
        for root, _, files in os.walk(directory, onerror=lambda error: None):
            for file in sorted(files):
                lower = file.lower()
                if lower.endswith(_SUFFIXES) and file not in found:
                    found[file] = Path(root) / file
    ordered: list[Path] = []
    for names in PREFERRED:
        chosen = next((found[name] for name in names if name in found), None)
        if chosen is not None:
            ordered.append(chosen)
    chosen_names = {path.name for path in ordered}
    # Sans faces before the rest (serif, looped, display) when several cover the same script.
    for name in sorted(found, key=lambda name: ("Sans" not in name, name)):
        stem = name.rsplit(".", 1)[0].lower()
        if name in chosen_names or any(word in stem for word in _SKIPPED_WORDS):
            continue
        ordered.append(found[name])
    return ordered


def build_chain(directories: Iterable[Path] = FONT_DIRS) -> FontChain:
    faces: list[Face] = []
    for path in find_font_files(directories):
        index = _collection_index(path) if path.suffix.lower() == ".ttc" else 0
        read = _read_face(path, index)
        if read is not None and read[1]:
            faces.append(Face(read[0], path, index, read[1]))
    logger.info("preview fonts: %d faces, first %s", len(faces), [f.name for f in faces[:6]])
    return FontChain(faces)


@lru_cache(maxsize=1)
def default_chain() -> FontChain:
    """The process's chain over the standard font directories, built (cmaps read) once."""
    return build_chain()


def pillow_only_chain() -> FontChain:
    """Pillow's default font alone: what the engine drew before the chain (boxes beyond Latin)."""
    return FontChain([])
