"""Split an answer into claims (roughly: sentences) with character offsets into the original text.

`split_claims(text)` returns `Claim(start, end, text)` rows, in order, where `text == answer[start:end]`.
Offsets are Python string indices (end exclusive), so the caller can report or highlight a claim
without ever storing its text.

Rules, kept deliberately simple and predictable:
- A line break ends a claim; blank lines and list markers ("- ", "* ", "1. ", "2) ", "a) ") are not
  part of any claim, and a line with no letter or digit (a rule "---", a lone bullet) is dropped.
- Inside a line, a claim ends after ".", "!", "?" or "…" (closing quotes and brackets included) that is
  followed by white space and then something that can start a sentence. A period does not end a
  claim after a known abbreviation ("Dr.", "e.g.", "Inc.", "Jan."), after a single capital letter (an
  initial: "J. K. Rowling"), or inside a number ("3.5", "v1.2").
- `glued=True` also splits "century.First", the way HaluEval's knowledge sentences are joined (a
  period between a lower-case word and a capitalised one, no space). Off for answers by default.
- Text with no sentence punctuation at all ("Delhi") is one claim.
- A very long sentence is further cut at "; " so that no claim runs past `max_chars` when possible.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


ABBREVIATIONS = _words(
    """
    mr mrs ms dr prof sr jr st mt ft vs etc al inc ltd co corp llc plc dept univ assn bros est approx
    appt apt no nos fig figs eq eqs vol vols ch chap sec art ed eds rev gen col lt sgt capt cmdr gov
    sen rep pres supt jan feb mar apr jun jul aug sep sept oct nov dec mon tue tues wed thu thur thurs
    fri sat sun e.g i.e cf viz a.m p.m u.s u.k u.n e.u d.c ph.d b.a m.a b.sc m.sc op pp ca c approx
    """
)

_LIST_MARKER = re.compile(r"[ \t]*(?:[-*•·‣▪–—]|\(?(?:\d{1,3}|[a-z]|[ivx]{1,4})[.)])[ \t]+")
# End punctuation, optional closing quotes/brackets, then white space.
_BOUNDARY = re.compile(r"([.!?…]+)([\"'”’)\]]*)(\s+)")
_GLUED = re.compile(r"(?<=[a-z]{2})[.!?](?=[A-Z][a-z])")
_ALNUM = re.compile(r"\w", re.UNICODE)
_WORD_BEFORE = re.compile(r"([\w.]+)$", re.UNICODE)


@dataclass(frozen=True, slots=True)
class Claim:
    start: int
    end: int
    text: str


def _is_abbreviation(line: str, dot: int) -> bool:
    """Whether the period at `line[dot]` belongs to an abbreviation or an initial."""
    match = _WORD_BEFORE.search(line, 0, dot)
    if not match:
        return False
    word = match.group(1).strip(".")
    if not word:
        return False
    if len(word) == 1 and word.isalpha() and word.isupper():
        return True  # an initial: "J. K. Rowling"
    return word.lower() in ABBREVIATIONS


def _can_start_sentence(ch: str) -> bool:
    return ch.isupper() or ch.isdigit() or ch in "\"'“‘([¿¡*-•" or not ch.isascii() and ch.isalpha()


def _sentence_spans(line: str, glued: bool) -> list[tuple[int, int]]:
    cuts: list[int] = []  # positions where a new claim may start
    for match in _BOUNDARY.finditer(line):
        after = match.end()
        if after >= len(line):
            continue
        punct = match.group(1)
        if punct == "." and _is_abbreviation(line, match.start(1)):
            continue
        if not _can_start_sentence(line[after]):
            continue
        cuts.append(after)
    if glued:
        cuts.extend(m.end() for m in _GLUED.finditer(line))
        cuts.sort()
    spans = []
    start = 0
    for cut in [*cuts, len(line)]:
        spans.append((start, cut))
        start = cut
    return spans


def _cut_long(text: str, start: int, end: int, max_chars: int) -> list[tuple[int, int]]:
    if end - start <= max_chars:
        return [(start, end)]
    out = []
    piece = start
    for match in re.finditer(r";\s+", text[start:end]):
        cut = start + match.end()
        if cut - piece >= 40:  # never leave a tiny fragment
            out.append((piece, start + match.start() + 1))
            piece = cut
    out.append((piece, end))
    return out


def split_claims(text: str, *, glued: bool = False, max_chars: int = 400) -> list[Claim]:
    """Claims of `text`, in order, with `text[start:end] == claim.text` and no surrounding space."""
    claims: list[Claim] = []
    pos = 0
    for raw_line in text.splitlines(keepends=True):
        line_start = pos
        pos += len(raw_line)
        line = raw_line.rstrip("\r\n")
        marker = _LIST_MARKER.match(line)
        offset = marker.end() if marker and len(line) > marker.end() else 0
        body = line[offset:]
        for a, b in _sentence_spans(body, glued):
            for s, e in _cut_long(body, a, b, max_chars):
                piece = body[s:e]
                lead = len(piece) - len(piece.lstrip())
                trail = len(piece.rstrip())
                if trail <= lead or not _ALNUM.search(piece):
                    continue
                start = line_start + offset + s + lead
                end = line_start + offset + s + trail
                claims.append(Claim(start, end, text[start:end]))
    return claims
