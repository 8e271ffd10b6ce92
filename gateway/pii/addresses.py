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

from gateway.pii.recognizers import _result

_W = r"[^\W\d_][\w'’.\-]*"  # a word that starts with a letter (any script)
_SUFFIX = (
    r"(?:Street|St|Str|Road|Rd|Avenue|Ave|Av|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|"
    r"Square|Sq|Terrace|Ter|Crescent|Cres|Highway|Hwy|Parkway|Pkwy|Circle|Cir|Trail|Trl|Turnpike|Tpke|"
    r"Plaza|Alley|Row|Close|Gardens|Grove|Hill|Heights|Mews|Walk|Point|Points|Lodge|Fort|Park|Ridge|"
    r"Run|Pike|Path|Loop|Crossing|Expressway|Freeway|Junction|Landing|Manor|Meadows?|Mill|Port|Rest|"
    r"Shores?|Springs?|Summit|View|Villas?|Wharf|Center|Centre|Bypass|Causeway|Estates?|Green|Harbor|"
    r"Harbour|Island|Knolls?|Lake|Orchard|Pass|Pines|Plains?|Prairie|Ranch|Route|Spur|Station|Stream|"
    r"Track|Trace|Vista|Wells?|Broadway)\.?"
)
_CONTINENTAL_PREFIX = (
    r"(?:Rue|Rua|Via|Viale|Vicolo|Corso|Piazza|Piazzale|Largo|Strada|Avenida|Avda|Av|Calle|"
    r"Carrer|Camino|Paseo|Plaza|Pra[cç]a|Travessa|Chemin|Boulevard|All[ée]e|Place|Quai|Route|"
    r"ul|ulica|al|aleja|Plac|Platz|Stra[sß]e|Weg|Gasse|Ring|Odos|Odós|Leoforos)\.?"
)
_CONTINENTAL_SUFFIX = (
    r"(?:stra[sß]e|str\.|gasse|weg|platz|allee|ring|damm|ufer|katu|tie|kuja|polku|v[aä]gen|gatan|"
    r"gr[aä]nd|gade|vej|veien|vegen|gata|laan|straat|plein|gracht|utca|[uú]t|[uú]tja|t[eé]r|k[oö]z|"
    r"tee|m[aä]gi|iela|gatv[eė]|ulica|ulice|n[aá]m[eě]st[ií]|tr[zž]|aukio|torget|torv|vei)"
)
_UNIT = r"(?:Apt|Apartment|Suite|Ste|Unit|Flat|Floor|Fl|Room|Rm|Bldg|Building)\.?\s*#?\s*\d+[A-Za-z]?"
_NUM = r"\d{1,6}[A-Za-z]?(?:[\-/]\d{1,4})?"

_NUMBER_WORDS_NUMBER = re.compile(
    rf"\b\d{{2,6}}\s+(?:{_W}\s+){{0,4}}{_W}\s+\d{{1,4}}[A-Za-z]?\b(?!\s*(?:%|percent|years|am|pm))"
)
_ADDRESS_PATTERNS = [
    # 1234 Main St / 90 Whitchurch Road / 515 385 Gemsbok St
    (re.compile(rf"\b{_NUM}(?:\s+\d{{1,5}})?\s+(?:{_W}\s+){{0,4}}{_SUFFIX}(?![\w])", re.IGNORECASE), 0.6),
    # Rue Al Imam Al Bakri 31 / Via Roma 131 / Rua do Arenque 1634 / ul. Słowicza 10
    (re.compile(rf"\b{_CONTINENTAL_PREFIX}\s+(?:{_W}\s+){{0,5}}{_W}\s+{_NUM}\b", re.IGNORECASE), 0.55),
    # 31 Rue Al Imam Al Bakri (number first, then a continental prefix)
    (re.compile(rf"\b{_NUM}\s+{_CONTINENTAL_PREFIX}\s+(?:{_W}\s*){{1,5}}", re.IGNORECASE), 0.55),
    # Koskikatu 25 / Villacher Strasse 89 / Snellmaninkatu 55 / Erzsébet tér 19.
    (re.compile(rf"\b(?:{_W}\s+){{0,3}}\w*{_CONTINENTAL_SUFFIX}\s+{_NUM}\.?(?!\w)", re.IGNORECASE), 0.55),
    # 09457 Vana-Viru 25 / 6614 Luite tee 87 (house number, street words, number): faker's
    # international format, and common in Europe.
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
# 14", "Rule 39 of the Rules", "section 33 para. 3", "§ 5"), never a house number: a match that
# starts on such a number is no address. Structural (how citations are written), so a rule.
_CITATION = re.compile(
    r"(?:\b(?:articles?|art|sections?|sec|ss|rules?|regulations?|reg|paragraphs?|paras?|para|protocol|"
    r"chapters?|ch|schedules?|parts?|clauses?|annex(?:es)?|appendix|title|items?|recitals?|"
    r"directive|amendment|subsection|subpara|page|pp|vol|volume|case|application)\.?|§§?)[ \t]*$",
    re.IGNORECASE,
)


def _cites(text: str, start: int) -> bool:
    return _CITATION.search(text, max(0, start - 16), start) is not None


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
                start, end = m.span()
                if _cites(text, start):
                    continue
                while (c := _CONTINUATION.match(text, end)) is not None and c.end() > end:
                    end = c.end()
                if score > 0.45 or pattern is _NUMBER_WORDS_NUMBER:  # a street line, not a lone "Apt. 5"
                    end = _absorb_block(text, end)
                spans.append((start, end, score))
        return [_result(self, "ADDRESS", s, e, score) for s, e, score in _merge(spans)]


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

