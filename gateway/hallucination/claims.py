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

`answer_claims(text)` is what the checks score: the claims of an assistant's answer without the
markup and the conversational framing that models wrap around it; otherwise each such word or
number would count as unsupported by the context, and a faithful answer would be flagged for its
manners or for citing its sources.
- `mask_markup` blanks out (replaces by spaces, so offsets still index the answer) what asserts
  nothing: citation markers ("[1]", "[^2]", "[doc 3]", "(Source 1)", "(see document 2)",
  "【4†source】"), footnote definitions and a trailing "Sources:"/"References:" list, markdown
  emphasis and header marks, table pipes and separator rows, a table's header row, and section
  labels ("### Answer", "**Summary:**", "Note:").
- `strip_framing` drops a claim that is only framing ("Sure!", "I hope this helps.", "Let me know
  if you have other questions.") or an abstention ("The documents do not specify a late fee.", "I
  don't know."), and cuts a framing lead-in ("Based on the provided context, ", "According to the
  document, ", "In summary, ") off the front of its claim. An honest "the context does not say" is
  not a hallucination; scored as a claim it would be the least supported sentence of all. A reply
  to a yes/no question ("No, the fee is 420 dollars.") is cut off the same way: "No" there negates
  the user's guess, not the claim.
- `mask_foils` blanks a correction's foil at the end of a clause ("…, not 500.", "…, not MySQL."):
  the user's guess, denied, is no invented number or name.
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
    if word.lower() == "al":  # "et al.", but not the airline "El Al." ending a sentence
        return line[max(0, match.start(1) - 3) : match.start(1)].lower() == "et "
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


_TRIM = " \t.,;:!?…-–—\"'“”‘’()"
_FRAMING_ONLY = re.compile(
    r"(?:sure|certainly|of course|absolutely|okay|ok|great question|good question|no problem"
    r"|(?:i'?m |i am )?(?:happy|glad) to help|here you go|here it is"
    r"|here(?: is|'s| are) (?:the |a |an |your |my )?(?:answer|summary|information|details|overview|breakdown)"
    r"(?: you (?:requested|asked for))?"
    r"|(?:i )?hope (?:this|that) helps|let me know if .*|please let me know .*|feel free to .*"
    r"|if you have any (?:other |more |further )?questions.*|is there anything else .*)",
    re.IGNORECASE,
)
# "No, the fee is 420 dollars.": the reply to a yes/no question is no negation of what follows. A bare
# "Yes." or "No." stays a claim when it is the whole answer: it asserts something, so it is scored.
_REPLY_WORDS = "yes|no|yeah|nope"
_REPLY = re.compile(_REPLY_WORDS, re.IGNORECASE)
_FRAMING_LEAD = re.compile(
    r"(?:(?:sure|certainly|of course|absolutely|okay|ok)[,!:]\s+"
    rf"|(?:{_REPLY_WORDS})(?:[,!:]|\.(?=\s+[A-Z]))\s+"
    r"|(?:based on|according to|from|per|as per|as (?:stated|mentioned|described|noted|shown) in|going by)"
    r" (?:the |this |your |my )?(?:provided |given |above |supplied |attached |available |following |shared )?"
    r"(?:context|documents?|text|passages?|information|sources?|records?|excerpts?|materials?|notes?)[,:]\s*"
    r"|(?:in summary|to summarize|to summarise|in short|in conclusion|to sum up)[,:]\s*"
    r"|(?:the )?(?:provided |given |above )?(?:context|document|text|passage) (?:says|states|mentions|indicates|shows)"
    r"(?: that)?[,:]?\s+)",
    re.IGNORECASE,
)


_SOURCE = (
    r"(?:the |this |these |your |my )?(?:provided |given |above |supplied |attached |available |shared )?"
    r"(?:context|documents?|text|passages?|sources?|excerpts?|information provided)"
)
_NEG = r"(?:does not|doesn't|do not|don't|did not|didn't|is not|isn't|are not|aren't|was not|wasn't)"
_ABSTENTIONS = (
    re.compile(
        r"\bI (?:do not|don't|cannot|can't|could not|couldn't|am unable to|was unable to|am not able to)"
        r" (?:know|find|determine|tell|say|answer|locate|see|confirm|verify)\b",
        re.IGNORECASE,
    ),
    re.compile(
        rf"\b{_SOURCE}\b[^.;]{{0,40}}\b{_NEG}\b[^.;]{{0,20}}\b(?:mention|specify|say|state|contain|include|"
        r"provide|cover|indicate|address|discuss|give|list|describe|show|reference|detail)",
        re.IGNORECASE,
    ),
    re.compile(
        rf"\b(?:no|not any|nothing)\b[^.;]{{0,40}}\b(?:in|from|within|by) {_SOURCE}\b"
        rf"|\b(?:not|never) (?:mentioned|specified|stated|provided|available|included|given|listed|found|"
        rf"covered|addressed|indicated|disclosed|discussed)\b[^.;]{{0,30}}\b(?:in|by|from|within) {_SOURCE}\b",
        re.IGNORECASE,
    ),
)


def is_abstention(text: str) -> bool:
    """Whether a claim only says that the context does not answer ("The documents do not specify a
    late fee.", "I don't know."). It says nothing about the world to check; a number in it does.
    "The terms were not disclosed." is a claim (news reports say so), not an abstention."""
    return not any(ch.isdigit() for ch in text) and any(p.search(text) for p in _ABSTENTIONS)


def strip_framing(claims: list[Claim]) -> list[Claim]:
    """Drop claims that are only conversational framing or an abstention; cut framing lead-ins off
    the others."""
    out: list[Claim] = []
    for claim in claims:
        if _FRAMING_ONLY.fullmatch(claim.text.strip(_TRIM)) or is_abstention(claim.text):
            continue
        if len(claims) > 1 and _REPLY.fullmatch(claim.text.strip(_TRIM)):  # "No! The fee is 420 dollars."
            continue
        lead = _FRAMING_LEAD.match(claim.text)
        if lead and _ALNUM.search(claim.text, lead.end()):
            cut = lead.end()
            out.append(Claim(claim.start + cut, claim.end, claim.text[cut:]))
        else:
            out.append(claim)
    return out


_CITE_WORD = r"(?:sources?|doc(?:ument)?s?|ref(?:erence)?s?|passages?|context|citations?|chunks?|excerpts?)"
_NUMS = r"#?\d+(?:\s*(?:[,;\-–]|and|&)\s*#?\d+)*"
_MASKS = (
    re.compile(r"【[^】\n]{0,80}】"),  # OpenAI file-search citations
    re.compile(rf"\[\^?{_NUMS}\]"),  # [1] [1, 2] [1-3] [^1]
    re.compile(rf"\[{_CITE_WORD}[\s_:-]*{_NUMS}\]", re.IGNORECASE),  # [doc 3] [source: 2]
    re.compile(rf"\((?:see |cf\.? |per )?{_CITE_WORD}[\s_:-]*{_NUMS}\)", re.IGNORECASE),  # (Source 1)
    re.compile(r"^[ \t]*\[\^?[\w-]{1,12}\]:.*$", re.MULTILINE),  # footnote definitions
    re.compile(r"^[ \t]*\|?[ \t]*:?-{3,}:?[ \t]*(?:\|[ \t]*:?-{3,}:?[ \t]*)*\|?[ \t]*$", re.MULTILINE),  # |---|
    re.compile(r"\*\*|__|~~|`+"),  # emphasis and code marks
    re.compile(r"^[ \t]{0,3}#{1,6}(?=[ \t])", re.MULTILINE),  # header marks
)
# *single* emphasis: a pair of stars hugging text ("2*3" and a "* " bullet are left alone).
_EMPHASIS = re.compile(r"(?<![\w*])\*(?=[^\s*])[^*\n]*?(?<=[^\s*])\*(?![\w*])")
_LABEL = (
    r"(?:answer|summary|short answer|final answer|response|result|results|note|notes|conclusion|"
    r"key points?|key facts|key takeaways|highlights|tl;?\s?dr|overview|details|explanation|reasoning|"
    r"in short|bottom line)"
)
# A line that is only a section label ("### Answer", "**Summary:**"), or a label leading a line.
_LABEL_LINE = re.compile(rf"^[ \t]*{_LABEL}[ \t]*:?[ \t]*$", re.IGNORECASE | re.MULTILINE)
_LABEL_LEAD = re.compile(rf"^[ \t]*{_LABEL}[ \t]*:", re.IGNORECASE | re.MULTILINE)
_SOURCES = re.compile(
    r"^[ \t]*(?:sources?|references?|citations?|bibliography)[ \t]*:?[ \t]*$", re.IGNORECASE | re.MULTILINE
)
_TABLE_ROW = re.compile(r"^[ \t]*\|.*\|[ \t]*$")


def _blank(text: str, spans: list[tuple[int, int]]) -> str:
    chars = list(text)
    for a, b in spans:
        for i in range(a, b):
            if chars[i] not in "\r\n":
                chars[i] = " "
    return "".join(chars)


def mask_markup(text: str) -> str:
    """`text` with non-assertive markup replaced by spaces (same length, same line breaks)."""
    spans = [m.span() for pattern in _MASKS for m in pattern.finditer(text)]
    for m in _EMPHASIS.finditer(text):
        spans += [(m.start(), m.start() + 1), (m.end() - 1, m.end())]
    masked = _blank(text, spans)
    # Tables: the header row (the row above a |---| separator, now blank) names columns, not facts.
    lines = masked.splitlines(keepends=True)
    originals = text.splitlines(keepends=True)
    spans, pos = [], 0
    for i, line in enumerate(lines):
        if (
            _TABLE_ROW.match(line.rstrip("\r\n"))
            and i + 1 < len(lines)
            and not lines[i + 1].strip()
            and set(originals[i + 1].strip()) <= set("|-: ")
            and "-" in originals[i + 1]
        ):
            spans.append((pos, pos + len(line)))
        pos += len(line)
    masked = _blank(masked, spans)
    sources = _SOURCES.search(masked)  # a "Sources:" line and everything after it
    if sources:
        masked = _blank(masked, [(sources.start(), len(masked))])
    masked = _blank(masked, [m.span() for m in _LABEL_LINE.finditer(masked)])
    masked = _blank(masked, [m.span() for m in _LABEL_LEAD.finditer(masked)])
    return masked.replace("|", " ")


# A correction's foil at the end of a clause: "the fee is 420 dollars, not 500", "it uses PostgreSQL, not
# MySQL" (often the user's own guess). What is denied there is no claim; the number or name would
# otherwise count as invented. Only numbers and capitalised names, and only clause-final, so "not 500
# dollars" and "adults, not children" stay as they are.
_FOIL = re.compile(
    r",?[ \t]+(?:not|rather than|instead of)[ \t]+"
    r"(?:[$€£¥]?\d+(?:[.,]\d+)*(?:[ \t]?(?:%|percent|million|billion))?|[A-Z][\w-]*(?:[ \t]+[A-Z][\w-]*)*)"
    r"(?=[ \t]*(?:[.;!?)]|$))",
    re.MULTILINE,
)


def mask_foils(text: str) -> str:
    """`text` with clause-final foils ("…, not 500.") replaced by spaces (same length)."""
    return _blank(text, [m.span() for m in _FOIL.finditer(text)])


def answer_claims(text: str, *, max_chars: int = 400) -> list[Claim]:
    """The claims of an assistant's answer that say something about the context (see the module doc).

    Offsets index `text`; each claim's `text` is that span with markup and foils blanked out, as scored."""
    return strip_framing(split_claims(mask_foils(mask_markup(text)), max_chars=max_chars))
