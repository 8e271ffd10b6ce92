"""Whole names: a name found in part is covered whole, and wherever else it occurs in the request.

A pseudonymized given name next to a surname that went out as written, or "Dr." left in front of a
placeholder, tells the backend more than it should. What is structural here, and so kept as rules
beside the learned tagger (tagger.py):

- `whole_names`: a title before a name ("Ms.", "Dr.", "Judge") and a suffix after it ("Jr.",
  "MD", "PhD") join the name's span; a title followed by a capitalised word nobody found is a name
  ("Mr. Okafor"), since a title introduces one.
- `propagate`: once a name is found anywhere in a request, every other occurrence of it, or of its
  parts, in any of the request's texts is a name too ("ruth abernathy ... Abernathy said"). A part
  that is also an English word ("Rose", "Will", "Young") is matched only with its capital; other
  parts in any case.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from functools import lru_cache

import spacy.util
from spacy.lookups import Lookups

from gateway.pii.entities import Entity
from gateway.pii.ner import SPACY_MODEL
from gateway.pii.overlaps import resolve_overlaps

log = logging.getLogger("bulkhead.pii")

PERSON = "PERSON"
_TITLES = (
    "mr|mrs|ms|mx|miss|dr|prof|professor|sir|dame|lord|lady|rev|reverend|fr|father|hon|judge|justice|"
    "capt|captain|col|gen|sgt|lt|det|detective|insp|inspector|officer|mme|mlle|herr|frau|sra|srta"
)
_TITLE_BEFORE = re.compile(rf"(?i:\b(?:{_TITLES}))\.?[ \t]+$")
_SUFFIX_AFTER = re.compile(
    r"^,?[ \t]*(?:Jr|Sr|II|III|IV|MD|M\.D|PhD|Ph\.D|DDS|DMD|DVM|Esq|RN|CPA|MBA|QC|KC|OBE|MBE|CBE|FRCS)\b\.?"
)
# A title, then one or two capitalised words (any script): "Dr. Okafor", "Ms Ines Varga".
_CAP_WORD = r"[^\W\d_a-z][^\W\d_]*(?:['’\-][^\W\d_]+)?"
# Initials before it, glued or spaced, as court records write names ("Mr. S.Parthasarathy").
_INITIALS = r"(?:[^\W\d_a-z]\.[ \t]?){0,3}"
_TITLED = re.compile(rf"\b(?i:{_TITLES})\.?[ \t]+({_INITIALS}{_CAP_WORD}(?:[ \t]+{_CAP_WORD})?)")
TITLED_SCORE = 0.6  # a title followed by a capitalised word
# Between two parts of one name (`_join_parts`): a nickname's quotes or brackets, or a quoted
# nickname itself, or nothing but a space: the tagger may read a title and the name after it as two names ("U.S.
# President" "Donald Trump"), which are one person.
_NAME_GAP = re.compile(r"[ \t]*(?:[\"“”'‘’(][^\W\d_]*[\"“”'‘’)]|[\"“”'‘’()])?[ \t]*")
_PART = re.compile(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*")
# Words of a name that identify nobody alone.
_NOT_PARTS = frozenset(
    {"the", "of", "van", "von", "der", "den", "de", "da", "di", "du", "del", "della", "la", "le", "al", "el",
     "bin", "ibn", "ben", "mac", "st", "saint", "and", "jr", "sr", "ii", "iii", "iv", "md", "phd", "esq"}
) | frozenset(_TITLES.split("|"))


def whole_names(text: str, entities: list[Entity]) -> list[Entity]:
    """PERSON spans widened over their titles and suffixes and joined over a quoted or bracketed
    nickname or a plain space between them ('Maria "Mia" Gonzalez', "U.S. President" "Donald
    Trump"), plus titled names nobody found. Overlapping
    results are not merged here (the analyzer does that after its thresholds)."""
    out = []
    for e in _join_parts(text, sorted(entities, key=lambda e: (e.start, e.end))):
        if e.type != PERSON:
            out.append(e)
            continue
        start, end = e.start, e.end
        before = _TITLE_BEFORE.search(text, max(0, start - 16), start)
        if before is not None:
            start = before.start()
        after = _SUFFIX_AFTER.match(text[end : end + 12])
        if after is not None:
            end += after.end()
        out.append(Entity(PERSON, start, end, e.score))
    taken = [(e.start, e.end) for e in out]
    for m in _TITLED.finditer(text):
        a, b = m.span(1)
        if any(s < b and a < t for s, t in taken):
            continue  # part of what was found (the widening above took its title)
        if m.group(1).lower() in english_words():
            continue  # "Dr. Appointment", "Mr. Right"
        out.append(Entity(PERSON, m.start(), b, TITLED_SCORE))
    return out


def _join_parts(text: str, entities: list[Entity]) -> list[Entity]:
    out: list[Entity] = []
    for e in entities:
        prev = out[-1] if out else None
        if (
            prev is not None and prev.type == PERSON and e.type == PERSON and prev.end <= e.start
            and _NAME_GAP.fullmatch(text, prev.end, e.start)
        ):
            out[-1] = Entity(PERSON, prev.start, e.end, max(prev.score, e.score))
            continue
        out.append(e)
    return out


def propagate(texts: Sequence[str], entities: list[list[Entity]]) -> list[list[Entity]]:
    """Every occurrence, in any text, of a name found in one of them (or of its parts)."""
    names: dict[str, float] = {}
    for i, ents in enumerate(entities):
        for e in ents:
            if e.type == PERSON:
                name = texts[i][e.start : e.end]
                names[name] = max(names.get(name, 0.0), e.score)
    if not names:
        return entities
    # What to look for -> the score of the name it came from: an occurrence is as sure as its name.
    anycase: dict[str, float] = {}
    cased: dict[str, float] = {}
    english = english_words()
    for name, score in names.items():
        parts = [p for p in _PART.findall(name) if len(p) >= 2 and p.lower() not in _NOT_PARTS]
        if len(parts) > 1:
            _keep_max(anycase, " ".join(parts).lower(), score)
        for p in parts:
            if len(p) < 3 and not p.isupper():
                continue  # an initial or a two-letter word: too common to chase
            if p.lower() in english:  # "Rose", "ROSE", never "rose"
                _keep_max(cased, p[:1].upper() + p[1:].lower(), score)
                _keep_max(cased, p.upper(), score)
            else:
                _keep_max(anycase, p.lower(), score)
    pattern = _alternation(set(anycase), set(cased))
    if pattern is None:
        return entities
    out = []
    for text, ents in zip(texts, entities, strict=True):
        found = [
            Entity(PERSON, m.start(), m.end(), cased.get(m.group(), anycase.get(_squeeze(m.group()), 0.0)))
            for m in pattern.finditer(text)
            if not any(e.start <= m.start() and m.end() <= e.end for e in ents)
        ]
        out.append(resolve_overlaps([*ents, *found]) if found else ents)
    return out


def _keep_max(table: dict[str, float], key: str, score: float) -> None:
    table[key] = max(table.get(key, 0.0), score)


def _squeeze(match: str) -> str:
    return " ".join(match.lower().split())


def _alternation(anycase: set[str], cased: set[str]) -> re.Pattern[str] | None:
    alts = []
    if anycase:
        # A full name may be written with any spacing or line break between its parts.
        words = sorted(anycase, key=len, reverse=True)
        alts.append("(?i:" + "|".join(r"[ \t\n]+".join(map(re.escape, w.split())) for w in words) + ")")
    if cased:
        alts.append("|".join(map(re.escape, sorted(cased, key=len, reverse=True))))
    if not alts:
        return None
    return re.compile(r"(?<![^\W_])(?:" + "|".join(alts) + r")(?![^\W_])")


@lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """English nouns, verbs, adjectives and adverbs (WordNet's, from the lemmatizer tables that the
    installed spaCy model ships). Empty (every part matched in any case) if the model lacks them."""
    try:
        root = spacy.util.get_package_path(SPACY_MODEL)
        index = Lookups().from_disk(next(root.glob("*/lemmatizer/lookups"))).get_table("lemma_index")
        return frozenset(w for pos in ("noun", "verb", "adj", "adv") for w in index.get(pos, []))
    except Exception as exc:  # a missing table weakens a guard; it must not stop analysis
        log.warning("no English word list from %s (%s)", SPACY_MODEL, type(exc).__name__)
        return frozenset()
