"""A shadow copy of a text for detection, with offsets back to the original.

Invisible and look-alike characters hide personal data from patterns that a reader (or a model)
sees straight through: a zero-width space or soft hyphen inside an e-mail, card digits separated
by non-breaking spaces, full-width or Arabic-Indic digits, Cyrillic letters that look Latin,
combining marks on a name. Detection runs on the shadow, where each character is folded:

- NFKC (full-width forms, ligatures, superscripts, `＠`),
- format characters (Cf: zero-width space/joiner, soft hyphen, BOM, bidi controls) and combining
  marks (Mn, Me) dropped,
- common Cyrillic and Greek look-alikes mapped to the Latin letter they imitate,
- every decimal digit to its ASCII digit, every space separator to " ", every dash to "-".

Each shadow character keeps the original span it came from; a dropped character joins the span of
the character before it, so an entity found on the shadow maps back to an original span that
covers the hidden characters inside it (and the marks on its last letter) and all of it is treated.

Plain ASCII text is its own shadow and costs one `isascii()`; other text that folds to itself
costs one `str.translate`.
"""

from __future__ import annotations

import unicodedata

# (start, end) in the original for each shadow character; None when the shadow is the text itself.
Offsets = list[tuple[int, int]] | None

# Look-alikes of Latin letters (Unicode's confusables, the ones seen in practice), by script.
_CONFUSABLES = dict(
    zip(
        # Cyrillic lower, Cyrillic upper, Greek upper, Greek lower
        "аеорсухіјѕԁԛԝһӏ" "АВЕКМНОРСТХІЈЅУԜ" "ΑΒΕΖΗΙΚΜΝΟΡΤΥΧ" "οαινρυκ",
        "aeopcyxijsdqwhl" "ABEKMHOPCTXIJSYW" "ABEZHIKMNOPTYX" "oaivpuk",
        strict=True,
    )
)
_DROP = frozenset({"Cf", "Mn", "Me"})


def _fold_char(ch: str) -> str:
    """What one character becomes in the shadow ("" when it is dropped)."""
    if unicodedata.category(ch) in _DROP:
        return ""
    out = []
    for c in unicodedata.normalize("NFKC", ch):
        category = unicodedata.category(c)
        if category in _DROP:
            continue
        digit = unicodedata.decimal(c, None)
        if digit is not None:
            c = str(digit)
        elif category == "Zs":
            c = " "
        elif category in ("Zl", "Zp"):
            c = "\n"
        elif category == "Pd" or c == "\u2212":  # dashes and the minus sign
            c = "-"
        else:
            c = _CONFUSABLES.get(c, c)
        out.append(c)
    return "".join(out)


class _Table(dict[int, str]):
    """`str.translate` table filled on first sight of each character (bounded: one entry per
    distinct character ever seen, and at most _MAX of them)."""

    _MAX = 1 << 16

    def __missing__(self, key: int) -> str:
        value = _fold_char(chr(key))
        if len(self) < self._MAX:
            self[key] = value
        return value


_TABLE = _Table()


def fold(text: str) -> str:
    """The shadow text alone (for comparing values)."""
    return text if text.isascii() else text.translate(_TABLE)


def shadow(text: str) -> tuple[str, Offsets]:
    """The folded text and, when it differs from `text`, the original span of each character."""
    if text.isascii():
        return text, None
    folded = text.translate(_TABLE)
    if folded == text:
        return text, None
    starts: list[int] = []
    ends: list[int] = []
    for i, ch in enumerate(text):
        f = _TABLE[ord(ch)]
        if not f:
            if ends:
                ends[-1] = i + 1  # hidden characters go with the visible one before them
            continue
        for _ in f:  # an expansion ("ﬁ" -> "fi"): each piece stands for the whole character
            starts.append(i)
            ends.append(i + 1)
    return folded, list(zip(starts, ends, strict=True))


def split_identifier(text: str) -> tuple[str, Offsets]:
    """An identifier read as words: `_`, `-` and `.` become spaces and camelCase gets one, so that
    "Margaret_Thornbury" or "MargaretThornbury" is seen as the name it is."""
    out: list[str] = []
    spans: list[tuple[int, int]] = []
    for i, ch in enumerate(text):
        if ch in "_-.":
            out.append(" ")
        else:
            if ch.isupper() and i and text[i - 1].islower():
                out.append(" ")
                spans.append((i, i + 1))
            out.append(ch)
        spans.append((i, i + 1))
    words = "".join(out)
    return (text, None) if words == text else (words, spans)


def original_span(offsets: Offsets, start: int, end: int) -> tuple[int, int]:
    """The original [start, end) behind shadow [start, end)."""
    if offsets is None or end <= start:
        return start, end
    return offsets[start][0], offsets[end - 1][1]
