"""Street addresses (ADDRESS): Presidio has no recognizer for them, and spaCy finds at best the city
inside one.

`StreetAddressRecognizer` matches a street line in the usual Anglo-American and continental
shapes ("1234 Main St", "Via Roma 131", "Koskikatu 25", "P.O. Box 242", "Apt. 329"), then absorbs
what typically follows it: a unit, "City, ST 12345", a postal code, and up to three short lines
below it that are still the address (city, region, country). Overlapping matches are merged into
one span with the best score.
"""

from __future__ import annotations

import re

from presidio_analyzer import EntityRecognizer, RecognizerResult

from gateway.pii.names import english_words
from gateway.pii.recognizers import _result

_W = r"[^\W\d_][\w'’.\-]*"  # a word that starts with a letter (any script)
_SUFFIX = (
    r"(?:Street|St|Str|Road|Rd|Avenue|Ave|Av|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|"
    r"Square|Sq|Terrace|Ter|Crescent|Cres|Highway|Hwy|Parkway|Pkwy|Circle|Cir|Trail|Trl|Turnpike|Tpke|"
    r"Plaza|Alley|Row|Close|Gardens|Grove|Hill|Heights|Mews|Walk|Point|Points|Lodge|Fort|Park|Ridge|"
    r"Run|Pike|Path|Loop|Crossing|Expressway|Freeway|Junction|Landing|Manor|Meadows?|Mill|Port|Rest|"
    r"Shores?|Springs?|Summit|View|Villas?|Wharf|Center|Centre|Bypass|Causeway|Estates?|Green|Harbor|"
    r"Harbour|Island|Knolls?|Lake|Orchard|Pass|Pines|Plains?|Prairie|Ranch|Route|Spur|Stream|"
    r"Track|Trace|Vista|Wells?|Broadway)\.?"
)
_CONTINENTAL_PREFIX = (
    r"(?:(?:Rue|Rua|Via|Viale|Vicolo|Corso|Piazza|Piazzale|Largo|Strada|Avenida|Calle|"
    r"Carrer|Camino|Paseo|Plaza|Pra[cç]a|Travessa|Chemin|Boulevard|All[ée]e|Place|Quai|Route|"
    r"ulica|aleja|Plac|Platz|Stra(?:ss|ß)e|Weg|Gasse|Ring|Odos|Odós|Leoforos)\.?|(?:ul|al|Av|Avda)\.)"
)
# Street types written joined to the name ("Koskikatu", "Hauptstraße") or as a word after it
# ("Berliner Straße").
_JOINED = (
    r"(?:stra(?:ss|ß)e|str\.|gasse|weg|platz|allee|damm|ufer|katu|tie|kuja|polku|v[aä]gen|gatan|gr[aä]nd|"
    r"gade|vej|veien|vegen|gata|laan|straat|plein|gracht|aukio|torget|torv|vei)"
)
# Street types that are only ever a word of their own ("Andrássy út", "Brīvības iela", "Luite
# tee"): as endings they would read "about", "Chapter", "committee" and "during" as streets.
_SEPARATE = (
    r"(?:utca|u\.|[uú]t|[uú]tja|t[eé]r|k[oö]z|tee|m[aä]gi|iela|gatv[eė]|ulica|ulice|n[aá]m[eě]st[ií]|"
    r"tr[zž]|ring)"
)
_UNIT = r"(?:Apt|Apartment|Suite|Ste|Unit|Flat|Floor|Fl|Room|Rm|Bldg|Building)\.?\s*#?\s*\d+[A-Za-z]?"
# "4/5", "12-3", "4/5/6"; not "7642/2015" (a case number)
_NUM = r"\d{1,6}[A-Za-z]?(?:[\-/](?!(?:19|20)\d\d\b)\d{1,4}){0,2}"

# 09457 Vana-Viru 25 / 6614 Luite tee 87 (house number, street words, number): common in Europe.
# Neither number is a year: "Case 1242 of 2008", "15 September 1972", "AIR 1974 Supreme Court 2154"
# are a case number, a date and a law report.
_NUMBER_WORDS_NUMBER = re.compile(
    rf"\b(?!(?:19|20)\d\d\b)\d{{2,6}}\s+(?:{_W}\s+){{0,4}}{_W}\s+(?!(?:19|20)\d\d\b)\d{{1,4}}[A-Za-z]?\b"
    r"(?!\s*(?:%|percent|years|am|pm))"
)
# Koskikatu 25 / Villacher Strasse 89 / Erzsébet tér 19: the street type and its number; the name
# words before it are taken in `_name_before`.
_JOINED_STREET = re.compile(rf"\b(?P<street>[^\W\d_]{{3,}}{_JOINED}|{_JOINED}|{_SEPARATE})\s+{_NUM}\.?(?!\w)",
                            re.IGNORECASE)
# 31 Rue Al Imam Al Bakri / 26 boulevard Carnot (number first, then a continental prefix)
_NUMBER_FIRST = re.compile(rf"\b{_NUM}\s+{_CONTINENTAL_PREFIX}\s+(?P<tail>(?:{_W}\s*){{1,5}})", re.IGNORECASE)
# 1234 Main St / 90 Whitchurch Road / 515 385 Gemsbok St
_TYPE_LAST = re.compile(rf"\b{_NUM}(?:\s+\d{{1,5}})?\s+(?:{_W}\s+){{0,4}}{_SUFFIX}(?![\w])", re.IGNORECASE)
# Rue Al Imam Al Bakri 31 / Via Roma 131 / Rua do Arenque 1634 / ul. Słowicza 10
_TYPE_FIRST = re.compile(rf"\b{_CONTINENTAL_PREFIX}\s+(?:{_W}\s+){{0,5}}{_W}\s+{_NUM}\b", re.IGNORECASE)
_ADDRESS_PATTERNS = [
    (_TYPE_LAST, 0.6),
    (_TYPE_FIRST, 0.55),
    (_NUMBER_FIRST, 0.55),
    (_JOINED_STREET, 0.55),
    (_NUMBER_WORDS_NUMBER, 0.45),
    # P.O. Box 242 / PSC 5420, Box 2708 APO AA 33879 / Unit 5477 Box 8244 DPO AP 15730 /
    # USNV Botolen FPO AE 12382
    (re.compile(r"\bP\.?\s?O\.?\s*Box\s+\d+", re.IGNORECASE), 0.7),
    (
        re.compile(
            r"\b(?:(?:PSC|Unit)\s+\d+,?\s+Box\s+\d+|(?:USNS|USNV|USS|USCGC)\s+[\w ]{1,30}?)\s*\n?\s*"
            r"[AFD]PO\s+A[AEP]\s+\d{5}\b",
            re.IGNORECASE,
        ),
        0.85,
    ),
    # Apt. 329 / Suite 501
    (re.compile(rf"\b{_UNIT}\b", re.IGNORECASE), 0.45),
]
# Candidates whose words must read as a street's name (`_street`); the others carry their own
# evidence (a unit number, a P.O. box, a military address).
_NAMED = frozenset({_TYPE_LAST, _TYPE_FIRST, _NUMBER_FIRST, _JOINED_STREET, _NUMBER_WORDS_NUMBER})

# After an address line, keep absorbing what typically follows it: a unit, "City, ST 12345",
# a postal code. Each piece must start right after the previous one (same or next line).
_CONTINUATION = re.compile(
    rf"(?:[ \t]*[,\n][ \t>?]*|[ \t]+)(?:{_UNIT}|[A-Z][\w'’.\-]*(?:[ \t]+[A-Z][\w'’.\-]*){{0,3}},?[ \t]+"
    r"[A-Z]{2}[ \t]+\d{4,6}(?:-\d{4})?|\d{4,6}(?:-\d{3,4})?(?!\w))"
)


# A line under an address line that is still the address: city, region, country, postcode. Short,
# no colon (that would be "Phone: ..."), no "@".
_BLOCK_LINE = re.compile(r"[ \t]*\n(?:[ \t]*\n)?[ \t>?]*(?P<line>[^\W_][^\n:@]{0,48}?)[ \t]*(?=\n|$)")
# Place names are capitalised words; a dot ends the sentence, not the place ("Springfield. Email").
_PLACE_WORD = r"[^\W\d_a-z][\w'’\-]*(?:[ \t]+\([^\W\d_][\w'’\- ]{0,20}\))?"
_TRAILING_PLACE = re.compile(
    rf"(?:,[ \t]*{_PLACE_WORD}(?:[ \t]+(?:{_PLACE_WORD}|[a-z]{{2,3}}(?=[ \t]+[^\W\d_a-z]))){{0,3}})"
    r"{1,3}(?:[ \t]+\d{4,6}(?:-\d{3,4})?)?"
)


_REST_OF_LINE_PLACE = re.compile(
    rf"(?:[ \t]+{_PLACE_WORD}){{1,4}}(?:[ \t]+\d{{4,6}})?(?=[ \t]*(?:\n|$|[.?!,;]))"
)


def _absorb_block(text: str, end: int) -> int:
    """Extend an address over trailing ", City, Country 12345" (or the rest of the line when it is
    only capitalised words) and up to three short lines below it."""
    if (
        (m := _TRAILING_PLACE.match(text, end)) is not None
        or (m := _REST_OF_LINE_PLACE.match(text, end)) is not None
        and all(w[0].isupper() or w.isdigit() for w in m.group(0).split())
    ):
        end = m.end()
    for _ in range(3):
        m = _BLOCK_LINE.match(text, end)
        if m is None:
            break
        line = m.group("line")
        if len(line.split()) > 5 or _looks_like_phone(line):
            break
        end = m.end("line")
    return end


# A number right after one of these words is a reference into a legal or official text ("Article
# 14", "Rule 39 of the Rules", "section 33 para. 3", "§ 5", the All India Reporter's "AIR 1974"),
# never a house number: a match that starts on such a number is no address. Structural (how
# citations are written), so a rule.
_CITATION = re.compile(
    r"(?:(?<![^\W\d_])(?:articles?|art|sections?|sec|ss|rules?|regulations?|reg|paragraphs?|paras?|para|protocol|"
    r"chapters?|ch|schedules?|parts?|clauses?|annex(?:es)?|appendix|title|items?|recitals?|"
    r"directive|amendment|subsection|subpara|page|pp|vol|volume|case|application|orders?|air)\.?|§§?)[ \t]*$",
    re.IGNORECASE,
)


# A number glued to a number before it ("150/2010", "20.02.2020", "626-00462-13", "14,500") is the
# tail of a case number, a date, a reference or a thousands group, never a house number: a house
# number begins its number.
_GLUED = re.compile(r"\d[/.,+\-\u00ad\u2010-\u2015]$")
# A number after a year in brackets is a law report's volume ("(2012) 2 Supreme Court Cases 534",
# "(1978) 48 Comp Cas 231").
_REPORT_YEAR = re.compile(r"[(\[](?:1[89]|20)\d\d[)\]][ \t]*$")
# A number after an article modifies what follows ("the 2012 Nuclear Security Summit", "a 12 Court
# ruling"): nobody writes "the 12 Baker Street".
_ARTICLE = re.compile(r"(?<![^\W\d_])(?:the|a|an)[ \t]+$", re.IGNORECASE)


def _reference_at(text: str, start: int) -> bool:
    window = text[max(0, start - 16) : start]
    if _CITATION.search(window) is not None:
        return True
    # The others are about a number that begins the candidate ("Envío a Paseo de la Castellana 89").
    numbered = text[start : start + 1].isdigit()
    return numbered and any(p.search(window) is not None for p in (_GLUED, _REPORT_YEAR, _ARTICLE))


def _looks_like_phone(line: str) -> bool:
    return sum(c.isdigit() for c in line) >= 7


class StreetAddressRecognizer(EntityRecognizer):
    CONTEXT = [
        "address",
        "street",
        "live",
        "lives",
        "living",
        "located",
        "ship",
        "deliver",
        "mail",
        "send",
        "billing",
        "shipping",
        "residence",
        "home",
        "apartment",
        "moved",
        "corner",
        "visit",
    ]

    def __init__(self) -> None:
        super().__init__(supported_entities=["ADDRESS"], name="StreetAddressRecognizer", context=self.CONTEXT)

    def load(self) -> None:
        pass

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list[RecognizerResult]:
        spans: list[tuple[int, int, float]] = []
        for pattern, score in _ADDRESS_PATTERNS:
            for m in pattern.finditer(text):
                found = _street(text, m) if pattern in _NAMED else m.span()
                if found is None:
                    continue
                start, end = found
                if _reference_at(text, start):
                    continue
                while (c := _CONTINUATION.match(text, end)) is not None and c.end() > end:
                    end = c.end()
                if score > 0.45 or pattern is _NUMBER_WORDS_NUMBER:  # a street line, not a lone "Apt. 5"
                    end = _absorb_block(text, end)
                spans.append((start, end, score))
        return [_result(self, "ADDRESS", s, e, score) for s, e, score in _merge(spans)]


def _closed(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Words that are never part of a street's name: English function words, months (dates read as
# "15 September 1972"), units, reference markers ("No. 2585") and honorifics ("2009 Acj 1298
# Honourable Dr. Justice B.": "Dr" is also Drive). A closed class, not a list of names.
_NOT_STREET = _closed(
    """a an the and or nor but if of to in on at by for from with without within into onto upon about
    above after against along among around as before behind below beside besides between beyond during
    except inside near off out outside over past per since than through throughout till toward towards
    under until up was were is are be been being has have had does did will would shall should may
    might can could not no nos number num i he she it we they you his her its their our your my me him
    them us this that these those who whom which what when where why how all any each every some such
    only just also very more most less least approx ca circa vs versus
    january february march april june july august september october november december jan feb mar apr
    jun jul aug sep sept oct nov dec monday tuesday wednesday thursday friday saturday sunday
    years year months month weeks week days day hours hour minutes minute seconds am pm percent points
    times degrees km kms miles metres meters feet ft kg lbs dollars euros
    page pages rule rules order orders section sections article articles chapter para clause schedule
    volume vol act acts dated honourable honorable honble hon'ble"""
)
# Lower-case words a street's name may hold: particles ("Paseo de Montejo") and the continental
# street types, which those languages write in lower case ("via Roma", "Luite tee", "rue de Rivoli").
_PARTICLES = _closed("de del della dei des di da do dos das du la le les van von der den ten ter y e")
_LOWER_TYPE = re.compile(rf"(?:{_JOINED}|{_SEPARATE}|{_CONTINENTAL_PREFIX})", re.IGNORECASE)
_WORD = re.compile(_W)
_WORD_BEFORE = re.compile(rf"({_W})[ \t]+$")


def _street(text: str, m: re.Match[str]) -> tuple[int, int] | None:
    """The span of a candidate street line when its words read as a street's name, else None.

    In a line written in mixed case, a street's name is capitalised ("12 Baker Street", "Via Roma
    131"): "2004 at Earls Court", "about 60", "place between 1990" and "275 basis points" are not
    streets. A line all in lower case ("meet me at 2407 tawastintie 6") is read leniently, as chat
    is typed. Function words, months and units are never a street's name in either."""
    start, end = m.span()
    cased = _cased(text, start, end)
    if m.re is _JOINED_STREET:
        street = m.group("street")
        if _LOWER_TYPE.fullmatch(street):  # the type alone ("Straße 5"): a name must come before it
            before = _name_before(text, start, cased)
            return (before, end) if before < start else None
        # A joined name ("Koskikatu") is no English word and, in mixed case, capitalised: not
        # "committee 5", "Chapter 2".
        if street.lower() in english_words() or (cased and not street[0].isupper()):
            return None
        return _name_before(text, start, cased), end
    if m.re is _NUMBER_FIRST:  # "26 boulevard Carnot": the name words after the type, as far as they go
        last = None
        for w in _WORD.finditer(text, m.start("tail"), m.end("tail")):
            if not _name_word(w.group(), cased):
                break
            last = w.end()
        return (start, last) if last is not None else None
    while m is not None:
        words = _WORD.findall(text, m.start(), m.end())
        if m.re is _TYPE_LAST:
            # An English street type is capitalised in mixed case ("548 points") and follows the
            # street's name: "714097 Circle", "107 Court", "of 2015 Dr. V" are no streets ("1
            # Broadway" is a name, not a type).
            kind = words[-1] if words else ""
            plausible = (not cased or kind[:1].isupper()) and (len(words) > 1 or kind.lower() == "broadway")
        elif m.re is _NUMBER_WORDS_NUMBER:
            # A street's name has a word: not only abbreviations, as a law report has ("(2005) 10 SCC
            # 97", "24 Q.B.D. 712", "2008 Acj 776").
            plausible = any(len(w) >= 4 and not w.isupper() and "." not in w for w in words)
        else:
            plausible = True
        if plausible and all(_name_word(w, cased) for w in words):
            return m.span()
        # The pattern's longest match may run past the street ("3744 Retreat Avenue and Władysława
        # Route"): try it again up to its last word.
        last = text.rfind(words[-1], m.start(), m.end()) if len(words) > 1 else -1
        m = m.re.match(text, m.start(), len(text[:last].rstrip())) if last > m.start() else None
    return None


def _name_word(word: str, cased: bool) -> bool:
    low = word.lower().rstrip(".")
    if low in _NOT_STREET or any(c.isdigit() for c in word):  # "Item No.62 Court"
        return False
    return not cased or word[0].isupper() or low in _PARTICLES or _LOWER_TYPE.fullmatch(word) is not None


def _name_before(text: str, start: int, cased: bool, most: int = 3) -> int:
    """Where the street's name begins: up to `most` name words before `start`, on its line."""
    for _ in range(most):
        m = _WORD_BEFORE.search(text, max(0, start - 40), start)
        if m is None or not _name_word(m.group(1), cased) or (cased and not m.group(1)[0].isupper()):
            break  # a name starts with a capitalised word ("Berliner Straße", not "der Straße")
        start = m.start(1)
    return start


def _cased(text: str, start: int, end: int) -> bool:
    """Whether the candidate's line, the candidate aside, has a capital letter."""
    lo = text.rfind("\n", 0, start) + 1
    hi = text.find("\n", end)
    hi = len(text) if hi < 0 else hi
    return any(c.isupper() for c in text[lo:start]) or any(c.isupper() for c in text[end:hi])


def _merge(spans: list[tuple[int, int, float]]) -> list[tuple[int, int, float]]:
    """Union overlapping or touching address pieces, keeping the best score."""
    merged: list[list] = []
    for start, end, score in sorted(spans):
        if merged and start <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], end)
            merged[-1][2] = max(merged[-1][2], score)
        else:
            merged.append([start, end, score])
    return [(s, e, sc) for s, e, sc in merged]

