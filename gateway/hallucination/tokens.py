"""Words of a text as the grounding check reads them: tokens with their stems, and the word lists
that decide which of them carry content.

`tokenize(text)` gives each word its offsets, stem (`stems.py`), and whether it is a content word
(not a stop word, number word or part of a number's notation), capitalised as a name, or a negation.
`negation_scopes` finds what each negation ("not", "never", "un-") applies to, and `joined_stems`
what a compound written apart or hyphenated ("e-mail", "health care") reads as when joined.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.hallucination.lexicon import get_lexicon
from gateway.hallucination.notation import NOTATION_WORDS, NUMBER_WORDS, WORD
from gateway.hallucination.stems import stem


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


STOPWORDS = _words(
    """
    a an the and or but if then than so as of at by for from in into onto on off out over under up down
    to with within without about above below across after before during between among through toward
    towards upon via per is are was were be been being am do does did doing done have has had having
    will would shall should can could may might must it its it's this that these those there here
    what which who whom whose when where why how all any both each few more most other some such only
    own same too very just also not no nor never i me my we us our you your he him his she her they
    them their one ones s t don didn doesn isn wasn weren aren won wouldn couldn shouldn hasn haven
    hadn mustn ve ll re d m o y let lets get got gets getting make made makes well much many
    even still yet however therefore thus although though while because since until unless whether
    either neither again further once ever very really quite rather
    """
)

NEGATIONS = _words(
    """
    not no never none nobody nothing neither nor nowhere cannot without lack lacks lacked lacking
    fail fails failed failing unable refuse refused refuses deny denied denies
    """
)

# Quantifiers and hedges whose appearance changes a claim's strength ("almost" -> "precisely").
HEDGES = _words(
    """
    only all every entire whole always never exactly precisely just solely sole entirely completely
    fully most least majority minority almost nearly approximately roughly around about some several
    few many numerous significantly slightly sharply substantially dramatically record highest lowest
    largest smallest biggest best worst first last sole unique
    """
)

# Transcripts' fillers stand between any two words; a summary has something else there.
SPOKEN_FILLERS = _words("uh um er ah oh yeah yes okay ok actually really basically just like well right so")


@dataclass(slots=True)
class Token:
    start: int
    end: int
    stem: str
    low: str
    content: bool
    capital: bool  # capitalised and not the first word of its sentence (or an acronym anywhere)
    negation: bool


def joined_stems(toks: Sequence[Token], text: str) -> list[tuple[int, str]]:
    """(index, stem) of each pair of neighbouring words that is also written as one word: "e-mail"
    -> "email", "health care" -> "healthcare" (a WordNet word), so that a compound matches however
    it is spelt. Two words apart are joined only when the result is a word; a hyphen always joins."""
    out = []
    lexicon = None
    for i in range(len(toks) - 1):
        a, b = toks[i], toks[i + 1]
        gap = text[a.end : b.start]
        if gap == "-":
            out.append((i, stem(a.low + b.low)))
        elif gap == " " and a.content and b.content:
            lexicon = lexicon or get_lexicon()
            if lexicon.is_word(a.low + b.low):
                out.append((i, stem(a.low + b.low)))
    return out


def tokenize(text: str) -> list[Token]:
    out: list[Token] = []
    first = True
    for m in WORD.finditer(text):
        raw = m.group(0)
        low = raw.lower().replace("’", "'")
        neg = low.endswith("n't") or low in NEGATIONS
        if low.endswith("n't"):
            low = {"can't": "can", "won't": "will", "shan't": "shall"}.get(low, low[:-3])
        s = stem(low)
        ordinal_suffix = low in ("st", "nd", "rd", "th") and m.start() > 0 and text[m.start() - 1].isdigit()
        content = (
            s not in STOPWORDS and low not in STOPWORDS and low not in NUMBER_WORDS and low not in NOTATION_WORDS
        ) and len(low) > 1 and not ordinal_suffix
        cap = raw[0].isupper() and (not first or (len(raw) > 1 and raw.isupper())) and low not in STOPWORDS
        if raw == "May" and not first:  # the month, not the modal: "due on May 3" vs "March 3"
            content = cap = True
        out.append(Token(m.start(), m.end(), s, low, content and not neg, cap and content, neg))
        first = False
    return out


NEG_PREFIXES = ("un", "non", "dis", "dys", "in", "im", "ir", "il", "mis")


def negation_scopes(toks: Sequence[Token], width: int = 4, stems: int = 2) -> list[set[str]]:
    """For each negation, the first `stems` content stems among the next `width` words.

    A word with a negative prefix ("uninsured", "unable", "disagree") is its own scope, with the prefix
    removed, so that "uninsured" in the context supports "not insured" in the answer."""
    scopes: list[set[str]] = []
    for i, t in enumerate(toks):
        if t.negation:
            if t.low == "no" and i + 1 < len(toks) and toks[i + 1].low in ("matter", "doubt", "longer"):
                continue
            scope = [u.stem for u in toks[i + 1 : i + 1 + width] if u.content][:stems]
            if scope:
                scopes.append(set(scope))
        elif t.content and len(t.low) > 5:
            for prefix in NEG_PREFIXES:
                if t.low.startswith(prefix):
                    scopes.append({stem(t.low[len(prefix) :])})
                    break
    return scopes
