"""PERSON spans found by the words around a name rather than by the name itself.

The name lists (gazetteers.py) are US Census names; most names in real prompts to a European or
Asian workforce are not on them ("Tomomi Nishiyama", "Wisława Szczepańska"), and the small spaCy
model misses many of those too. What gives such a name away is its shape and its company:

- two capitalised words, neither an English word nor a known place, the second a known surname or
  shaped like one ("-ović", "-sdóttir", "-ska");
- a phrase that only ever introduces a person ("my name is", "my daughter", "calls me",
  "directed by", "Mrs."), in any case ("my name is borna jerković");
- a verb only people do after it at the start of a sentence ("Vasquez lives on ...", "eva kleist
  lives at ...");
- "A and B were ..." / "A, B and C" where every item is a known surname and no word around it
  makes the group a firm ("from Hawkins, Richardson and Santana" is a company).

Each rule vetoes English words and known places unless its cue is one that only a person takes.
"""

from __future__ import annotations

import re

from spacy.lang.en.stop_words import STOP_WORDS

from gateway.pii.gazetteers import english_words, first_names, last_names, major_places, places
from gateway.pii.introduced_names import _NOT_NAME_WORDS, _NOT_NAMES

_NOT_NAME = frozenset(_NOT_NAMES | _NOT_NAME_WORDS)
_CAP = r"[^\W\d_a-z][^\W\d_A-Z]+(?:['’\-][^\W\d_]+)?"
_LOW = r"[^\W\d_]+(?:['’\-][^\W\d_]+)?"

# Endings that surnames of many languages share and English words almost never have.
_SURNAME_ENDING = re.compile(
    r"(?:ović|ovič|ević|evič|ić|ič|sson|sen|sdóttir|dóttir|ová|ská|ski|ska|cka|cki|wicz|enko|escu|"
    r"poulos|opoulos|idis|akis|idze|shvili|yan|ian|oglu|oğlu|ovic|evic|ova|eva|ov|ev|in|kin|yev|"
    r"stein|berg|mann|ez|es|aki|oto|ura|ita|awa|ima|ada|ano|ini|etti|elli|ucci|eiro|inho|ainen|"
    r"anen|onen|nen|lä|la|ssen)$",
    re.IGNORECASE,
)

# Phrases after which the next one to three words are a person, in any case.
_BEFORE = re.compile(
    r"(?i:\b(?:(?:my|our|his|her|their|your)[ \t]+(?:kid|son|daughter|child|wife|husband|brother|"
    r"sister|mother|father|mom|mum|dad|stepson|stepdaughter|nephew|niece|cousin|uncle|aunt|"
    r"grandson|granddaughter|grandmother|grandfather|grandma|grandpa|fianc[ée]e?|girlfriend|"
    r"boyfriend|colleague|boss|manager|coworker|co-worker|friend|neighbou?r|tenant|landlord|"
    r"patient|client|doctor|lawyer)(?:[ \t]+(?:named|called))?"
    r"|(?:my|her|his|whose|the)[ \t]+(?:maiden[ \t]+)?name[ \t]+is|(?:people[ \t]+)?calls?[ \t]+me|called[ \t]+me"
    r"|named[ \t]+(?:him|her)|i[ \t]+am[ \t]+called|directed[ \t]+by|starring|co-starring"
    r"|(?:mr|mrs|ms|miss|mx|dr|prof)\.?)[ \t]+)"
)
# Verbs after a name at the start of a sentence or line that places, firms and things don't do.
_AFTER = re.compile(
    r"(?<=\S)(?:['’]s[ \t]+killers|[ \t]+(?:lives|lived|works|worked|is[ \t]+from|comes[ \t]+from"
    r"|is[ \t]+very[ \t]+reliable|had[ \t]+given|has[ \t]+given|began[ \t]+writing|was[ \t]+born"
    r"|grew[ \t]+up|is[ \t]+married|was[ \t]+married))\b"
)
# The words between a sentence or line start and the end of `head`.
_OPENER = re.compile(rf"(?:^|(?<=[.!?\n\"“>:]))[ \t]*({_LOW}(?:[ \t]+{_LOW}){{0,2}})$")
_WORD = re.compile(_LOW)


def _vetoed(word: str) -> bool:
    """An English word, function word or known place that no name list vouches for."""
    w = word.lower()
    if w in first_names():
        return False
    return w in STOP_WORDS or _english(w) or word in _NOT_NAME or w in major_places()


def _english(w: str) -> bool:
    """WordNet lists lemmas only: "records", "called" and "running" count through their stems."""
    words = english_words()
    if w in words:
        return True
    for suffix, back in (("s", ""), ("es", ""), ("ies", "y"), ("ed", ""), ("ed", "e"), ("ing", ""), ("ing", "e")):
        if w.endswith(suffix) and len(w) > len(suffix) + 2 and w[: -len(suffix)] + back in words:
            return True
    return False


def _surname_like(word: str) -> bool:
    w = word.lower()
    return (w in last_names() or _SURNAME_ENDING.search(w) is not None) and not _english(w)


_PAIR = re.compile(rf"(?<![\w\-])({_CAP})[ \t]+((?:(?:ten|van|de|der|den|von|da|di|le|la)[ \t]+)?{_CAP})(?![\w\-])")


def _cap_pairs(text: str) -> list[tuple[int, int, float]]:
    """The pair "Tomomi Nishiyama", "Willemine ten Pas": unknown given name + surname-shaped word."""
    out = []
    pattern = _PAIR
    known_places = places()
    pos = 0
    while (m := pattern.search(text, pos)) is not None:
        first, last = m.group(1), m.group(2).split()[-1]
        pos = m.start(2)
        if _vetoed(first) or _vetoed(last) or first.lower() in known_places or last.lower() in known_places:
            continue
        if first.isupper() or last.isupper() or not _surname_like(last):
            continue
        out.append((m.start(1), m.end(2), 0.5))
        pos = m.end(2)
    return out


def _cued(text: str) -> list[tuple[int, int, float]]:
    out = []
    for cue in _BEFORE.finditer(text):
        m = _WORD.match(text, cue.end())
        if m is None:
            continue
        first = m.group(0)
        if first.lower() in STOP_WORDS or first in _NOT_NAME or len(first) < 2:
            continue
        if first.isupper():  # "DR. AI WITH ...": shouting, not a name
            continue
        # Typed in lower case ("my name is dorota wiśniewska"), even where the rest of the text is
        # not: then the words must not be English, and only a listed name or a surname shape (not
        # "flew") continues it.
        lower = not first[0].isupper()
        if lower and _english(first):
            continue
        words = [m]
        for nxt in _WORD.finditer(text, m.end()):
            gap = text[words[-1].end() : nxt.start()]
            if len(words) == 3 or gap not in (" ", ". ") or (gap == ". " and len(words[-1].group(0)) > 1):
                break
            w = nxt.group(0)
            if w.lower() in STOP_WORDS or (not lower and not w[0].isupper()):
                break
            if lower and not (len(w) == 1 or _surname_like(w) or w in first_names()):
                break
            words.append(nxt)
        out.append((words[0].start(), words[-1].end(), 0.55))
    return out


def _sentence_subjects(text: str) -> list[tuple[int, int, float]]:
    """One to three words opening a sentence or line, then a verb from `_AFTER`."""
    out = []
    for m in _AFTER.finditer(text):
        head = text[max(0, m.start() - 60) : m.start()]
        opener = list(_OPENER.finditer(head))
        if not opener:
            continue
        words = list(_WORD.finditer(opener[-1].group(1)))
        if any(_vetoed(w.group(0)) and w.group(0).lower() not in last_names() for w in words):
            continue
        base = m.start() - len(head) + opener[-1].start(1)
        out.append((base + words[0].start(), base + words[-1].end(), 0.5))
    return out


_FIRM_BEFORE = re.compile(r"(?i:\b(?:from|at|of|for|with|joined|to|by|in)[ \t]+)$")
_FIRM_AFTER = re.compile(r",?[ \t]*(?:&|(?i:inc|llc|ltd|llp|plc|group|partners|associates|law|and[ \t]+co)\b)")
_SURNAME_GROUP = re.compile(rf"(?<![\w\-])((?:{_CAP},[ \t]+){{0,6}}{_CAP},?[ \t]+(?:and|&)[ \t]+{_CAP})(?![\w\-])")


_GROUP_VERB = re.compile(r"[ \t]+(?:were|are|have|had|met|founded|wrote)\b")


def _surname_groups(text: str) -> list[tuple[int, int, float]]:
    """The items of "Kónya, Becker and Vasquez", "Usamov and Bowers were": people named by surname alone."""
    out = []
    for m in _SURNAME_GROUP.finditer(text):
        if _FIRM_BEFORE.search(text[max(0, m.start() - 12) : m.start()]) or _FIRM_AFTER.match(text, m.end()):
            continue
        items = [w for w in _WORD.finditer(m.group(1)) if w.group(0) not in ("and",)]
        if any(_vetoed(w.group(0)) and w.group(0).lower() not in last_names() for w in items):
            continue
        if sum(_surname_like(w.group(0)) or w.group(0).lower() in first_names() for w in items) < len(items) - 1:
            continue
        if len(items) == 2 and _GROUP_VERB.match(text, m.end()) is None:
            continue
        out.extend((m.start(1) + w.start(), m.start(1) + w.end(), 0.5) for w in items)
    return out


def cue_names(text: str) -> list[tuple[int, int, float]]:
    return _cap_pairs(text) + _cued(text) + _sentence_subjects(text) + _surname_groups(text)
