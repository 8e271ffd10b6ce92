"""Recognizers Presidio does not ship, or ships in a form we cannot use in production.

- `StreetAddressRecognizer`: street addresses (ADDRESS). Presidio has none; spaCy finds at best
  the city inside one.
- `PhoneNumberRecognizer`: one pass of a candidate regex plus formatting and context evidence,
  instead of Presidio's eight `phonenumbers` passes (one per region) that miss international
  formats like `(37) 788-063` and cost the most of any built-in recognizer.
- `OfflineEmailRecognizer`: Presidio's email recognizer validates domains with `tldextract`,
  which fetches the public suffix list over the network on first use; ours uses the snapshot
  bundled with tldextract, so nothing is downloaded at run time.
- `policy_recognizers`: a tenant's own regexes (with context words) and deny lists.
"""

from __future__ import annotations

import re

import tldextract
from presidio_analyzer import (
    AnalysisExplanation,
    EntityRecognizer,
    Pattern,
    PatternRecognizer,
    RecognizerResult,
)
from presidio_analyzer.predefined_recognizers import EmailRecognizer

from gateway.pii.config import CustomRecognizer

_TLD = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


class OfflineEmailRecognizer(EmailRecognizer):
    def validate_result(self, pattern_text: str) -> bool:
        return _TLD(pattern_text).fqdn != ""


def _result(rec: EntityRecognizer, entity: str, start: int, end: int, score: float, **metadata) -> RecognizerResult:
    return RecognizerResult(
        entity,
        start,
        end,
        score,
        AnalysisExplanation(rec.name, score),
        recognition_metadata={
            RecognizerResult.RECOGNIZER_NAME_KEY: rec.name,
            RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: rec.id,
            **metadata,
        },
    )


# --- phone numbers -------------------------------------------------------------------------------

_PHONE = re.compile(
    r"(?<![\w+\-./])"
    r"(?:\+\d{1,3}[ .\-]?)?(?:\(0?\d{1,5}\)[ .\-]?)?(?:0\))?"
    r"\d{1,12}(?:[ .\-]\d{1,8}){0,5}"
    r"(?:\s?(?:x|ext\.?)\s?\d{1,5})?"
    r"(?!\w|-\d|\.\d)"
)
_DATE_LIKE = re.compile(r"^(?:\d{4}[./\-]\d{1,2}[./\-]\d{1,2}(?!\d)|\d{1,2}[./\-]\d{1,2}[./\-]\d{2,4}$)")
_SSN_LIKE = re.compile(r"^\d{3}[ \-]\d{2}[ \-]\d{4}$")
_NANP = re.compile(r"^(?:\+?1[ .\-]?)?(?:\(\d{3}\)\s?|\d{3}[ .\-])\d{3}[ .\-]\d{4}$")
_DOTTED_QUAD = re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$")


class PhoneNumberRecognizer(EntityRecognizer):
    CONTEXT = [
        "phone",
        "telephone",
        "tel",
        "cell",
        "cellphone",
        "mobile",
        "call",
        "fax",
        "contact",
        "desk",
        "office",
        "whatsapp",
        "sms",
        "text",
        "number",
        "reach",
        "dial",
        "landline",
        "home",
        "work",
        "message",
        "answer",
        "ring",
        "phoned",
        "voicemail",
        "extension",
        "ext",
    ]

    def __init__(self) -> None:
        super().__init__(
            supported_entities=["PHONE_NUMBER"], name="PhoneNumberRecognizer", context=self.CONTEXT
        )

    def load(self) -> None:
        pass

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list[RecognizerResult]:
        results = []
        for m in _PHONE.finditer(text):
            value = m.group(0)
            score = phone_score(value)
            if score > 0:
                results.append(_result(self, "PHONE_NUMBER", m.start(), m.end(), score))
        return results


def phone_score(value: str) -> float:
    """Prior score from the shape alone; context words add to it later."""
    digits = sum(c.isdigit() for c in value.split("x")[0].split("ext")[0])
    if (
        not 7 <= digits <= 15
        or _DATE_LIKE.match(value)
        or _SSN_LIKE.match(value)
        or _DOTTED_QUAD.match(value)
    ):
        return 0.0
    separated = any(c in value for c in " .-()")
    if value.startswith("+") or _NANP.match(value) or "(" in value:
        return 0.6
    if not separated:
        # A bare run of digits is an order number as often as a phone number.
        return 0.3 if 10 <= digits <= 11 else 0.0
    groups = re.split(r"[ .\-]", value)
    if len(groups) >= 2 and all(g.isdigit() for g in groups):
        return 0.45 if digits >= 9 else 0.35
    return 0.35


# --- payment cards ------------------------------------------------------------------------------

_CARD = re.compile(r"(?<![\w\-])\d(?:[ \-]?\d){11,18}(?![\w\-])")


def luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


class PaymentCardRecognizer(EntityRecognizer):
    """12 to 19 digits (spaces or dashes allowed) passing the Luhn check.

    Presidio's card regex knows only some issuer prefixes and lengths (it misses Mastercard's
    2-series, 19-digit Visa, Maestro, JCB 15). One random digit string in ten passes Luhn, so a
    Luhn-valid number scores 0.5 and card/credit/visa words nearby raise it.
    """

    CONTEXT = [
        "credit",
        "card",
        "visa",
        "mastercard",
        "amex",
        "discover",
        "jcb",
        "diners",
        "maestro",
        "debit",
        "cc",
        "payment",
        "pan",
        "cvv",
        "expiry",
        "expires",
        "billing",
    ]

    def __init__(self) -> None:
        super().__init__(
            supported_entities=["CREDIT_CARD"], name="PaymentCardRecognizer", context=self.CONTEXT
        )

    def load(self) -> None:
        pass

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list[RecognizerResult]:
        out = []
        for m in _CARD.finditer(text):
            digits = re.sub(r"\D", "", m.group(0))
            if luhn(digits) and len(set(digits)) > 2:
                out.append(_result(self, "CREDIT_CARD", m.start(), m.end(), 0.5))
        return out


# --- street addresses ----------------------------------------------------------------------------

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


# --- names introduced by the words around them ---------------------------------------------------

_NAME = r"[^\W\d_a-z][^\W\d_]*(?:['’\-][^\W\d_]+)?"  # a capitalised word, any script
_FULL_NAME = rf"{_NAME}(?:[ \t]+(?:{_NAME}|[^\W\d_a-z]\.?(?![^\W\d_]))){{0,3}}"
_NAME_CUES = re.compile(
    r"(?i:\b(?:my name is|name is|names? (?:are|were)|i am|i'm|this is|called|named|call me|signed|regards,|"
    r"sincerely,|thanks,|dear|hi|hello|hey|mr\.?|mrs\.?|ms\.?|miss|mx\.?|dr\.?|prof\.?|sir|madam|"
    r"(?:full |first |last |maiden |user|patient|customer|client|employee|contact |account )?name:?|"
    r"(?:patient|customer|client|employee|contact|attn|from|to|cc|author|user)\s*:|"
    r"(?:said|says|asked|told) to)"
    r"|name\?)[ \t]+(" + _FULL_NAME + ")"
)
_NOT_NAMES = frozenset(
    {
        "I",
        "A",
        "The",
        "This",
        "That",
        "It",
        "We",
        "You",
        "He",
        "She",
        "They",
        "Here",
        "There",
        "Not",
        "So",
        "Very",
        "Just",
        "Sorry",
        "Happy",
        "Glad",
        "Sure",
        "Yes",
        "No",
        "Please",
        "Thank",
        "Thanks",
        "What",
        "How",
        "Why",
        "When",
        "Where",
        "Who",
        "Is",
        "Are",
        "My",
        "Your",
        "Our",
        "Hi",
        "Hello",
        "Going",
        "Looking",
        "Trying",
        "Interested",
        "Fine",
        "Good",
        "Great",
        "Okay",
        "OK",
        "All",
    }
)


# Weaker evidence: two or three capitalised words (Firstname Lastname) right after a preposition or
# a role word, where a person is a likely object ("reply to Beatriz Moreno", "admin is Lars Berg").
# Scored under spaCy, so where the model calls the same words a place, the place wins.
_NAME_PAIR_CUES = re.compile(
    r"(?i:\b(?:to|for|by|with|cc|is|was|reporter|assignee|owner|admin|manager|contact|attention|via|"
    r"requester|approver|reviewer|author|customer|client|patient|employee|tenant|user)\b:?)[ \t]+"
    r"((?:[^\W\d_a-z][^\W\d_A-Z]+['’\-]?){1,2}(?:[ \t]+[^\W\d_a-z][^\W\d_A-Z]+(?:['’\-][^\W\d_]+)?){1,2})"
    r"(?![ \t]+(?:Inc|Ltd|LLC|GmbH|Corp|Co|Company|Group|Bank|University|Street|St|Road|Rd|Avenue|Ave|"
    r"Lane|Drive|Boulevard|Court|Terrace|Way|Place|Square|Park|River|Mountains?|Lake|Island|City|County|State|Republic)\b)"
)
_NOT_NAME_WORDS = frozenset(
    {
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "January",
        "February",
        "March",
        "April",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
        "The",
        "This",
        "That",
        "These",
        "Those",
        "New",
        "North",
        "South",
        "East",
        "West",
        "United",
        "Saint",
        "San",
        "Los",
        "Las",
        "Mount",
        # organisation and place words that follow a capitalised word
        "Orchestra",
        "Associates",
        "Technologies",
        "Solutions",
        "Capital",
        "Weekly",
        "Union",
        "Pass",
        "Route",
        "Gateway",
        "Coves",
        "Parks",
        "Village",
        "Port",
        "Systems",
        "Partners",
        "Services",
        "Labs",
        "Media",
        "Foundation",
        "Institute",
        "Hospital",
        "School",
        "College",
        "Airport",
        "Station",
        "Center",
        "Centre",
        "Hotel",
        "Club",
        "Team",
        "Project",
        "Bay",
        "Valley",
        "Heights",
        "Hills",
        "Springs",
        "Beach",
        "Falls",
        "Harbor",
        "Harbour",
    }
)


class IntroducedNameRecognizer(EntityRecognizer):
    """PERSON where the words before a capitalised name say it is one: "my name is", "Dear",
    "Mr.", "Name:", "said ... to". It complements spaCy's small model, which misses rare and
    foreign names exactly where people introduce themselves."""

    def __init__(self) -> None:
        super().__init__(supported_entities=["PERSON"], name="IntroducedNameRecognizer")

    def load(self) -> None:
        pass

    def analyze(self, text: str, entities: list[str], nlp_artifacts=None) -> list[RecognizerResult]:
        out = []
        for m in _NAME_CUES.finditer(text):
            name = m.group(1)
            words = name.split()
            while words and words[-1].rstrip(".") in _NOT_NAMES:
                words.pop()
            if not words or words[0] in _NOT_NAMES:
                continue
            start = m.start(1)
            out.append(
                _result(
                    self,
                    "PERSON",
                    start,
                    start + len(" ".join(words))
                    if len(words) == len(name.split())
                    else start + name.find(words[-1]) + len(words[-1]),
                    0.6,
                )
            )
        for m in _NAME_PAIR_CUES.finditer(text):
            words = m.group(1).split()
            if any(w in _NOT_NAMES or w in _NOT_NAME_WORDS for w in words):
                continue
            out.append(_result(self, "PERSON", m.start(1), m.end(1), 0.45))
        return out


# --- the tenant's own recognizers ----------------------------------------------------------------


def policy_recognizers(custom: list[CustomRecognizer]) -> list[EntityRecognizer]:
    recognizers: list[EntityRecognizer] = []
    for c in custom:
        flags = re.DOTALL | re.MULTILINE | (0 if c.case_sensitive else re.IGNORECASE)
        if c.patterns:
            # Without required context, the score is what the tenant wrote; with it, the pattern
            # alone scores 0.01 and only a context word lifts it over any threshold.
            base = 0.01 if c.require_context else c.score
            recognizers.append(
                _FlaggedPatternRecognizer(
                    supported_entity=c.entity,
                    name=f"custom:{c.name}",
                    context=c.context or None,
                    flags=flags,
                    patterns=[Pattern(f"{c.name}:{i}", p, base) for i, p in enumerate(c.patterns)],
                )
            )
        if c.deny_list:
            recognizers.append(
                _FlaggedPatternRecognizer(
                    supported_entity=c.entity,
                    name=f"custom:{c.name}:deny",
                    flags=flags,
                    patterns=[
                        Pattern(
                            f"{c.name}:deny",
                            r"(?<!\w)(?:"
                            + "|".join(re.escape(w) for w in sorted(c.deny_list, key=len, reverse=True))
                            + r")(?!\w)",
                            1.0,
                        )
                    ],
                )
            )
    return recognizers


class _FlaggedPatternRecognizer(PatternRecognizer):
    """A pattern recognizer whose regex flags (case sensitivity) are its own, not the caller's."""

    def __init__(self, *, flags: int, **kwargs) -> None:
        super().__init__(global_regex_flags=flags, **kwargs)

    def analyze(self, text, entities, nlp_artifacts=None, regex_flags=None):
        return super().analyze(text, entities, nlp_artifacts, regex_flags=self.global_regex_flags)
