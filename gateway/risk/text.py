"""Text preparation shared by the risk detectors: one normalization and one chunking.

Patterns run on the normalized text so that the cheap tricks attackers use to dodge them (full-width
letters, zero-width joiners, curly quotes, runs of spaces) do not work. Chunking exists because the
sentence embedder reads at most 256 word pieces; a long prompt is embedded as several windows.
"""

from __future__ import annotations

import re
import unicodedata

from gateway.risk.decode import decoded_views

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)
_QUOTES = str.maketrans(
    {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2032": "'", "\u00b4": "'"}
)
_SPACE = re.compile(r"\s+")
_MARKUP = re.compile(
    r"\\(?=\S)|_+"
)  # markdown escapes and snake_case: "developer\\_mode" reads "developer mode"
_SENTENCE_END = re.compile(r"(?<=[.!?:;])\s+|\n\s*\n|\n(?=\s*[-*#>\d])")


def normalize(text: str) -> str:
    """Case-folded NFKC; zero-width characters and markdown escapes dropped; straight quotes; `_` as space.

    What Morse code, leetspeak or base64 in the text says is appended (see decode.py)."""
    text = unicodedata.normalize("NFKC", text).translate(_ZERO_WIDTH).translate(_QUOTES)
    views = decoded_views(text)
    if views:
        text = "\n".join([text, *views])
    text = _MARKUP.sub(lambda m: "" if m.group(0) == "\\" else " ", text)
    return _SPACE.sub(" ", text).strip().casefold()


def chunks(text: str, max_chars: int = 600) -> list[str]:
    """Split on sentence and paragraph ends, then pack sentences into windows of at most `max_chars`.

    A single sentence longer than the window is cut at word boundaries. Windows do not overlap:
    the embedder's cost is linear in the characters it reads, and overlap would double it.
    """
    text = text.strip()
    if not text:
        return []
    if len(text) <= max_chars:
        return [text]
    out: list[str] = []
    current = ""
    for piece in _SENTENCE_END.split(text):
        piece = piece.strip()
        if not piece:
            continue
        while len(piece) > max_chars:
            cut = piece.rfind(" ", 0, max_chars)
            cut = cut if cut > max_chars // 2 else max_chars
            head, piece = piece[:cut].strip(), piece[cut:].strip()
            if current:
                out.append(current)
                current = ""
            out.append(head)
        if current and len(current) + 1 + len(piece) > max_chars:
            out.append(current)
            current = piece
        else:
            current = f"{current} {piece}" if current else piece
    if current:
        out.append(current)
    return out


def spread(items: list[str], limit: int) -> list[str]:
    """At most `limit` items: the first half from the start, the rest evenly spread over what is left.

    Jailbreak wrappers put their instructions up front; an injection hidden in a pasted document can
    sit anywhere, so the tail is sampled rather than dropped. The regex patterns still read everything.
    """
    if len(items) <= limit:
        return items
    head = max(1, limit // 2)
    rest = items[head:]
    want = limit - head
    step = len(rest) / want
    return items[:head] + [rest[int(i * step)] for i in range(want)]
