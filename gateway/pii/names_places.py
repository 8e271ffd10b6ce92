"""PERSON and LOCATION from name and place lists (see gazetteers.py), and the reconciliation of
those with spaCy's guesses.

The small spaCy model misses most names that are not English ("Szabina J Gelencsér"), names with
no context ("Scott is very reliable"), town names, and it confuses the two ("Rebecca" as a place,
"HORTEN" as a person). What this module adds, each piece on its own evidence:

- `GazetteerNameRecognizer`: a capitalised known first name, with the capitalised words and
  initials that follow it on the line ("Julieta S Almeida"); "Firstname X. Lastname" shapes even
  for unknown names; the items of a list most of whose items are first names ("Efimiya, Mary,
  Ariana and Jodi"); and in text written without capitals at all, a known first name with its
  known last name ("lena andersson").
- `PlaceRecognizer`: a country, region or state anywhere; a known town after a word that places
  it ("in", "to", "from", "near"); any capitalised name after a phrase that can only introduce a
  place ("flew to", "arrived at", "a business trip").
- `reconcile`: where spaCy called a known first name a place, or a known town with no first name
  in it a person, the label is turned; where one of our cue-based results overlaps a spaCy result
  of the other type, ours wins (its evidence is the words around it, spaCy's is the word shape).

The module stays whole although it runs past 400 lines: the three pieces are one rule-based engine
that shares its word tables (about a third of the lines) and its word helpers, and a learned tagger
is meant to replace it as a whole rather than piece by piece.
"""

from __future__ import annotations

import re

from presidio_analyzer import EntityRecognizer, RecognizerResult
from spacy.lang.en.stop_words import STOP_WORDS

from gateway.pii.gazetteers import countries, english_words, first_names, last_names, major_places, places
from gateway.pii.introduced_names import _NOT_NAME_WORDS, _NOT_NAMES
from gateway.pii.name_cues import cue_names
from gateway.pii.recognizers import _result

_WORD = re.compile(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*")


def has_capitals(text: str) -> bool:
    """Whether any letter is upper-case ("ø" and "ć" are not; a class like [^a-z] thinks so)."""
    return text != text.lower()


# Words after which a capitalised word is part of a place or an organisation, not a person.
_PLACE_PREFIX = frozenset(
    [
        "port",
        "saint",
        "st",
        "san",
        "santa",
        "santo",
        "são",
        "sao",
        "lake",
        "mount",
        "mt",
        "fort",
        "new",
        "north",
        "south",
        "east",
        "west",
        "upper",
        "lower",
        "great",
        "little",
        "old",
        "cape",
        "isla",
        "ile",
        "île",
        "villa",
        "ciudad",
        "porto",
        "bad",
        "sankt",
        "los",
        "las",
        "el",
        "la",
        "le",
        "les",
        "des",
        "del",
        "di",
        "da",
        "do",
        "dos",
        "das",
        "den",
        "der",
    ]
)
# Words that end a name when they follow it ("Anna Smith Inc", "Mary Street").
_NAME_STOP = frozenset(
    [
        "inc",
        "ltd",
        "llc",
        "gmbh",
        "corp",
        "co",
        "company",
        "group",
        "bank",
        "university",
        "street",
        "st",
        "road",
        "rd",
        "avenue",
        "ave",
        "lane",
        "drive",
        "boulevard",
        "court",
        "terrace",
        "way",
        "place",
        "square",
        "park",
        "river",
        "lake",
        "island",
        "city",
        "county",
        "state",
        "republic",
        "orchestra",
        "foundation",
        "institute",
        "hospital",
        "school",
        "college",
        "airport",
        "station",
        "center",
        "centre",
        "hotel",
        "club",
        "team",
        "project",
        "partners",
        "associates",
        "systems",
        "technologies",
        "solutions",
        "services",
        "labs",
        "media",
        "version",
    ]
)
_NAME_STOP_CASED = frozenset(_NOT_NAMES | _NOT_NAME_WORDS)
# Country names that are also common first names: a place only with a locative word before them.
_NAME_LIKE_COUNTRIES = frozenset({"jordan", "chad", "georgia", "kenya", "india", "china", "israel", "america"})

# "in Oslo", "from Riga", "near Tartu": a known town after one of these is a place.
_LOCATIVE = re.compile(
    r"(?i:\b(?:in|to|from|at|near|of|visit(?:ing|ed)?|via|around|outside|toward|towards|through|"
    r"across|city|town|village)[ \t]+)$"
)
# Phrases that can only introduce a place: whatever capitalised name follows is one.
_STRONG_LOCATIVE = re.compile(
    r"(?i:\b(?:flew|fly|flying|flown|drove|travel(?:l?ed|l?ing)?|moved|moving|relocated|emigrated|"
    r"arrived|arriving|landed|born|based|located|headquartered|situated|stationed|lives|living|"
    r"live|stay(?:ed|ing)?|trip|holiday|vacation|journey)[ \t]+(?:here[ \t]+)?(?:to|in|at|from|into)"
    r"|home[ \t]+(?:city|town)|I[ \t]+am[ \t]+in|I'm[ \t]+in|originally[ \t]+from|native[ \t]+of"
    r"|the[ \t]+(?:city|town|village|municipality)[ \t]+of)[ \t]+$"
)
_CONNECTORS = frozenset(
    [
        "de",
        "del",
        "della",
        "di",
        "da",
        "do",
        "dos",
        "das",
        "du",
        "la",
        "le",
        "les",
        "el",
        "nad",
        "pod",
        "am",
        "an",
        "der",
        "upon",
        "sur",
        "u",
        "y",
        "i",
    ]
)
_MAX_PLACE_WORDS = 4


def _is_cap(w: str) -> bool:
    return w[0].isupper()


def _is_title(w: str) -> bool:
    return w[0].isupper() and not (len(w) > 1 and w.isupper())


def _words(text: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), m.group(0)) for m in _WORD.finditer(text)]


def _blank(gap: str) -> bool:
    return gap != "" and gap.strip(" \t") == ""


class GazetteerNameRecognizer(EntityRecognizer):
    def __init__(self) -> None:
        super().__init__(supported_entities=["PERSON"], name="GazetteerNameRecognizer")

    def load(self) -> None:
        first_names()
        last_names()
        major_places()
        english_words()

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list[RecognizerResult]:
        words = _words(text)
        if not has_capitals(text):
            spans = _uncased_names(text, words) + cue_names(text)
        else:
            spans = _cased_names(text, words) + _name_lists(text, words) + _cued_names(text) + cue_names(text)
        return [_result(self, "PERSON", s, e, sc) for s, e, sc in spans]


def _cased_names(text: str, words: list[tuple[int, int, str]]) -> list[tuple[int, int, float]]:
    first = first_names()
    out = []
    i, n = 0, len(words)
    while i < n:
        s, e, w = words[i]
        prev = words[i - 1] if i else None
        after_place_word = (
            prev is not None and _is_cap(prev[2]) and _blank(text[prev[1] : s]) and prev[2].lower() in _PLACE_PREFIX
        )
        if not _is_title(w) or w in _NAME_STOP_CASED or after_place_word:
            i += 1
            continue
        known = w.lower() in first and w.lower() not in STOP_WORDS  # "Else", "Will"
        # "Faina D. Yefremova", "Ravil G Yefimov": the middle initial shapes a name, known or not.
        initial_shape = (
            i + 2 < n
            and len(w) >= 3
            and len(words[i + 1][2]) == 1
            and words[i + 1][2].isupper()
            and text[e : words[i + 1][0]] == " "
            and text[words[i + 1][1] : words[i + 2][0]] in (" ", ". ")
            and _is_title(words[i + 2][2])
            and len(words[i + 2][2]) >= 2
            and words[i + 2][2].lower() not in _NAME_STOP
        )
        if not known and not initial_shape:
            i += 1
            continue
        end, j = e, i + 1
        while j < n and j - i <= 3:
            ns, ne, nw = words[j]
            gap = text[end:ns]
            initial = len(nw) == 1 and nw.isupper()
            if gap != " " and not (gap == ". " and len(words[j - 1][2]) == 1):
                break
            if not _is_title(nw) or nw.lower() in _NAME_STOP or nw in _NAME_STOP_CASED:
                break
            end = ne + (1 if initial and text[ne : ne + 1] == "." else 0)
            j += 1
        if end > e and text[end - 1] != "." and len(words[j - 1][2]) == 1:
            end = words[j - 2][1] if j - 2 > i else e  # a trailing capital letter is not part of the name
        single = end == e
        if single and w.lower() in major_places():
            i += 1
            continue  # "Florence", "Austin": spaCy and the words around it decide
        out.append((s, end, 0.6 if initial_shape else 0.5 if single else 0.55))
        i = max(j, i + 1)
    return out


# One or two capitalised words before a verb that people (not places or companies) do, at the start
# of a sentence or line: "Asya spent a year at ...", "Zak shouted at Scott", "Ley began writing".
# Not "said"/"wrote": companies and papers say and write as often as people do.
_PERSON_VERB = re.compile(
    r"(?:^|(?<=[.!?\n\"“>])[ \t]*)((?:[^\W\d_a-z][^\W\d_A-Z]+(?:['’\-][^\W\d_]+)?)"
    r"(?:[ \t]+[^\W\d_a-z][^\W\d_A-Z]+(?:['’\-][^\W\d_]+)?)?)[ \t]+"
    r"(?:shouted|whispered|yelled|replied|smiled|laughed|cried|sighed|nodded|spent|began|"
    r"had[ \t]+given|has[ \t]+given|was[ \t]+born|grew[ \t]+up)\b",
    re.MULTILINE,
)
# "Nicole: Remember me" - a speaker's name opening a line of dialogue.
_SPEAKER = re.compile(r"^[ \t>]*([^\W\d_a-z][^\W\d_A-Z]+):[ \t]*(?=[\"“A-Z])", re.MULTILINE)
# "Shovda, can I please ..." - a name addressed at the start of a question or request.
_VOCATIVE = re.compile(
    r"(?:^|(?<=[.!?\n])[ \t]*)([^\W\d_a-z][^\W\d_A-Z]+),[ \t]+(?:can|could|would|will|please|do|did)\b",
    re.MULTILINE,
)


def _word_not_name(word: str) -> bool:
    """An English word ("Table", "Explanation", "Else") that no first-name list vouches for."""
    w = word.lower()
    if w in first_names():
        return False
    return word in _NAME_STOP_CASED or w in STOP_WORDS or w in english_words() or w in _SPEAKER_LABELS


def _cued_names(text: str) -> list[tuple[int, int, float]]:
    out = []
    known_places = places()
    for m in _PERSON_VERB.finditer(text):
        value = m.group(1)
        if _word_not_name(value.split()[0]) or value.lower() in known_places:
            continue
        out.append((m.start(1), m.end(1), 0.5))
    speakers = [m for m in _SPEAKER.finditer(text) if not _word_not_name(m.group(1))]
    if len(speakers) >= 2:  # one "Ubul:" line may be a label; two named speakers are a dialogue
        out.extend((m.start(1), m.end(1), 0.5) for m in speakers)
    for m in _VOCATIVE.finditer(text):
        if not _word_not_name(m.group(1)):
            out.append((m.start(1), m.end(1), 0.5))
    return out


_SPEAKER_LABELS = frozenset(
    [
        "user",
        "bot",
        "assistant",
        "system",
        "human",
        "ai",
        "agent",
        "customer",
        "note",
        "answer",
        "question",
        "q",
        "a",
        "re",
        "subject",
        "from",
        "to",
        "cc",
        "date",
        "time",
        "address",
        "phone",
        "email",
        "name",
        "title",
        "summary",
        "warning",
        "error",
        "info",
        "tip",
        "example",
        "input",
        "output",
        "update",
        "status",
        "result",
        "step",
    ]
)

_LIST = re.compile(
    r"(?<![\w\-])((?:[^\W\d_a-z][^\W\d_]+,[ \t]+){1,8}[^\W\d_a-z][^\W\d_]+,?[ \t]+(?:and|&)[ \t]+"
    r"[^\W\d_a-z][^\W\d_]+)(?![\w\-])"
)


def _name_lists(text: str, words: list[tuple[int, int, str]]) -> list[tuple[int, int, float]]:
    """Every item of "A, B, C and D" when most of the items are known first names."""
    out = []
    first = first_names()
    for m in _LIST.finditer(text):
        items = list(_WORD.finditer(m.group(1)))
        items = [it for it in items if it.group(0) not in ("and",)]
        # Most items must be first names: "Jones, Mitchell and Williams" is a firm as often as people.
        if sum(it.group(0).lower() in first for it in items) * 2 < len(items):
            continue
        base = m.start(1)
        for it in items:
            if it.group(0) not in _NAME_STOP_CASED:
                out.append((base + it.start(), base + it.end(), 0.5))
    return out


def _uncased_names(text: str, words: list[tuple[int, int, str]]) -> list[tuple[int, int, float]]:
    """Text typed without capitals ("my name is lena andersson"): a known first name not an
    English function word, and the known last name (or initial) after it."""
    first, last = first_names(), last_names()
    out = []
    i, n = 0, len(words)
    while i < n:
        s, e, w = words[i]
        if w not in first or w in STOP_WORDS:
            i += 1
            continue
        end, j = e, i + 1
        if j < n and len(words[j][2]) == 1 and text[e : words[j][0]] == " ":
            # "eric g. samoylova": an initial, then any word not a function word
            if j + 1 < n and words[j + 1][2] not in STOP_WORDS and text[words[j][1] : words[j + 1][0]] in (" ", ". "):
                end, j = words[j + 1][1], j + 2
        elif j < n and text[e : words[j][0]] == " " and words[j][2] in last and words[j][2] not in STOP_WORDS:
            end, j = words[j][1], j + 1
        out.append((s, end, 0.5 if end > e else 0.45))
        i = j
    return out


class PlaceRecognizer(EntityRecognizer):
    def __init__(self) -> None:
        super().__init__(supported_entities=["LOCATION"], name="PlaceRecognizer")

    def load(self) -> None:
        places()

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list[RecognizerResult]:
        return [_result(self, "LOCATION", s, e, sc) for s, e, sc in _places(text, _words(text))]


def _place_runs(text: str, words: list[tuple[int, int, str]]) -> list[list[tuple[int, int, str]]]:
    """Runs of capitalised words on one line, lower-case connectors allowed inside ("Chiclana de la
    Frontera", "Ostrov nad Ohrí"). In text with no capitals at all, every word starts a run."""
    cased = has_capitals(text)
    runs: list[list[tuple[int, int, str]]] = []
    cur: list[tuple[int, int, str]] = []
    for k, (s, e, w) in enumerate(words):
        joined = bool(cur) and _blank(text[cur[-1][1] : s])
        # a lower-case word is kept only as a connector between capitalised words
        ok = not cased or _is_cap(w) or (joined and w in _CONNECTORS and _connects(text, words, k))
        if ok and (joined or not cur):
            cur.append((s, e, w))
        elif ok:
            runs.append(cur)
            cur = [(s, e, w)]
        else:
            if cur:
                runs.append(cur)
            cur = []
    if cur:
        runs.append(cur)
    return runs


def _connects(text: str, words: list[tuple[int, int, str]], k: int) -> bool:
    """Whether connector words from k on ("de la") lead, on the same line, to a capitalised word."""
    for n in range(k + 1, min(k + 3, len(words))):
        if not _blank(text[words[n - 1][1] : words[n][0]]):
            return False
        if _is_cap(words[n][2]):
            return True
        if words[n][2] not in _CONNECTORS:
            return False
    return False


def _places(text: str, words: list[tuple[int, int, str]]) -> list[tuple[int, int, float]]:
    known_places, known_countries, first = places(), countries(), first_names()
    cased = has_capitals(text)
    out = []
    for run in _place_runs(text, words):
        i = 0
        while i < len(run):
            found = None
            for j in range(min(len(run), i + _MAX_PLACE_WORDS), i, -1):
                if run[j - 1][2] in _CONNECTORS:
                    continue
                phrase = text[run[i][0] : run[j - 1][1]].lower()
                before = text[max(0, run[i][0] - 40) : run[i][0]]
                strong = _STRONG_LOCATIVE.search(before) is not None
                locative = strong or _LOCATIVE.search(before) is not None
                name_like = j - i == 1 and (phrase in first or phrase in _NAME_LIKE_COUNTRIES)
                if phrase in known_countries and (locative or not name_like) and (cased or j - i > 1 or locative):
                    found = (j, 0.6)
                elif phrase in known_places and locative and (strong or not name_like):
                    found = (j, 0.55)
                elif strong and cased and i == 0 and j == len(run) and not name_like:
                    found = (j, 0.5)
                if found:
                    break
            if found:
                j, score = found
                out.append((run[i][0], run[j - 1][1], score))
                i = j
            else:
                i += 1
    return out


# --- reconciliation with spaCy ------------------------------------------------------------------

_SPACY = "SpacyRecognizer"
_OURS = {"GazetteerNameRecognizer", "PlaceRecognizer", "IntroducedNameRecognizer"}


def _source(r: RecognizerResult) -> str:
    return (r.recognition_metadata or {}).get(RecognizerResult.RECOGNIZER_NAME_KEY, "")


_TITLE_BEFORE = re.compile(r"(?i:\b(?:mr|mrs|ms|miss|mx|dr|prof|sir|madam|dame|lord|lady)\.?)[ \t]+$")


def _relabel(r: RecognizerResult, entity: str) -> RecognizerResult:
    return RecognizerResult(entity, r.start, r.end, r.score, r.analysis_explanation, r.recognition_metadata)


def reconcile(text: str, results: list[RecognizerResult]) -> list[RecognizerResult]:
    """Turn spaCy's PERSON/LOCATION label where the lists or our cue-based results contradict it."""
    if not any(r.entity_type in ("PERSON", "LOCATION") for r in results):
        return results
    ours = [r for r in results if _source(r) in _OURS and r.entity_type in ("PERSON", "LOCATION")]
    first, last, known_places, majors = first_names(), last_names(), places(), major_places()
    out = []
    for r in results:
        if _source(r) != _SPACY or r.entity_type not in ("PERSON", "LOCATION"):
            out.append(r)
            continue
        other = "LOCATION" if r.entity_type == "PERSON" else "PERSON"
        value = text[r.start : r.end]
        if any(
            o.entity_type == other and o.score >= 0.5 and o.start <= r.start and r.end <= o.end for o in ours
        ) and not (r.entity_type == "LOCATION" and value.lower() in countries()):
            continue  # our evidence (cue words, lists) outranks the model's guess from word shape
        words = [w.lower() for w in _WORD.findall(value)]
        if not words:
            out.append(r)
            continue
        titled = _TITLE_BEFORE.search(text[max(0, r.start - 12) : r.start]) is not None
        phrase = value.lower()
        if r.entity_type == "LOCATION":
            names_only = all(w in first or w in last for w in words) and not any(
                w in _NAME_STOP or w.title() in _NAME_STOP_CASED for w in words
            )
            lone_surname = len(words) == 1 and phrase not in known_places and not _word_not_name(value)
            if titled or (phrase not in majors and names_only and (words[0] in first or lone_surname)):
                r = _relabel(r, "PERSON")
        elif not titled and phrase in known_places and not any(w in first or w in last for w in words):
            r = _relabel(r, "LOCATION")
        out.append(r)
    return out
