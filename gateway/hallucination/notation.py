"""Numbers, dates and times of a text (amounts of money among them), normalized so that notations
compare equal.

`find_numbers(text)` returns each number's span and every value it may stand for: "1,000" = "1000",
"5%" = "5 percent", "$2.3 million" = 2300000, "Q3" = 3, "twenty-five" = 25, "four hundred and
twenty" = 420, "3 pm" = "15:00" (times are keyed apart from plain numbers, so "15:00" never matches
a count of 15), "twelve dot fifty" = 12.5, "$.50" = "50 cents" = 0.5, "FY21" = "'21" = 2021.
`context_side=True` reads the context more generously than an answer: its "first"/"third" and
"half" count as numbers (an answer's "one" or "first" is too often not a number to flag it,
unless it names a reporting period: "the fourth quarter", "first half"),
"2.3 million" also supports a bare "2.3", "twelve Euro fifty" is 12.50, and a number supports what
an answer may round it to (40.6: 41; $2.34 billion: $2.3 billion; see `_roundings`), and a
duration also stands for its value in larger units ("48 hours": 2, with `implied.implied_words`
"day"; "a day": 24 "hour"; see `durations`).

The words a notation stands for ("Q3": "third quarter") and the currencies a text names are read
in `implied.py`, from the patterns and durations here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

NUMBER_WORDS = {
    "zero": 0, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40,
    "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "dozen": 12,
}
CONTEXT_ONLY_NUMBER_WORDS = {
    "one": 1, "single": 1, "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6,
    "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10, "twice": 2, "double": 2, "half": 0.5,
    "hundred": 100, "thousand": 1000, "million": 1e6, "billion": 1e9, "once": 1, "triple": 3,
}
# "half of the staff" supports "50% of the staff".
_CONTEXT_EXTRA_KEYS = {"half": (50.0,)}
_SCALES = {
    "thousand": 1e3, "k": 1e3, "million": 1e6, "mn": 1e6, "m": 1e6, "mm": 1e6, "billion": 1e9, "bn": 1e9,
    "b": 1e9, "trillion": 1e12, "tn": 1e12, "mln": 1e6, "bln": 1e9, "trn": 1e12,
}
# Words that are part of a number's notation, not content ("1.5 bn", "four hundred", "3 pm").
NOTATION_WORDS = frozenset(
    {"hundred", "thousand", "million", "billion", "trillion", "mn", "bn", "tn", "mm", "mln", "bln", "trn", "pm"}
)

WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*", re.UNICODE)
_NUMBER = re.compile(
    r"(?<![\w.])(?:[$€£¥]\s?)?"
    r"(\d{1,3}(?:,\d{3})+|\d+|(?<=[$€£¥])(?=\.\d))(?:\.(\d+))?"  # "$.50" has no whole part
    r"(?:\s?(%|percent\b|per cent\b|pct\b|percentage points?\b|basis points?\b|bps\b))?"
    r"(?:\s?(thousand|million|billion|trillion|mn|bn|tn|mm|mln|bln|trn|[kmb])\b)?",
    re.IGNORECASE,
)
_CENTS = re.compile(r"\s?(?:cents?\b|¢)", re.IGNORECASE)
# "FY21", "FY 2021", "Q3 '21", "the '90s": a year written with two digits.
_SHORT_YEAR = re.compile(r"\bFY\s?['’]?(\d{2}|\d{4})\b|(?<![\w'’])['’](\d{2})\b", re.IGNORECASE)
# The words a spelled-out number is built from: "one" counts inside "one hundred", "dozen" and "zero"
# never start such a run.
_SMALL = {"one": 1, **{w: v for w, v in NUMBER_WORDS.items() if w not in ("zero", "dozen")}}
_BIG = {"thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12}
_SPELLED_WORD = "|".join([*_SMALL, "hundred", *_BIG])
# Two or more number words in a row ("four hundred and twenty", "twenty-five", "two million").
_AND = "|".join(rf"(?<={w})\s+and\s+" for w in ("hundred", *_BIG))  # "four hundred and twenty"
_NEXT_SPELLED = rf"(?:[\s-]+|{_AND})(?:{_SPELLED_WORD})"  # the next word of a spelled-out number
_SPELLED = re.compile(rf"\b(?:{_SPELLED_WORD})(?:{_NEXT_SPELLED})+\b", re.IGNORECASE)
# A number, in digits or spelled out ("twelve", "twenty five"), as the whole part of a spoken price or
# decimal; and the digits after the point, spelled digit by digit ("two five") or as one number ("fifty").
_WHOLE = rf"(?:\d+|zero|(?:{_SPELLED_WORD})(?:{_NEXT_SPELLED})*)"
# Single number words as digits: the whole part may be "zero", the digits after a point also "oh".
_DIGITS = {"zero": 0, "oh": 0, **_SMALL}
_DIGIT_WORD = "|".join(_DIGITS)
_FRACTION = rf"(?:\d+|(?:{_DIGIT_WORD})(?:[\s-]+(?:{_DIGIT_WORD}))*)"
# "twelve point five", "twelve dot fifty": how a transcript writes 12.5 and 12.50.
_SPOKEN_DECIMAL = re.compile(
    rf"\b({_WHOLE})\s+(?:point|dot)\s+({_FRACTION})(?:\s+(thousand|million|billion|trillion))?\b", re.IGNORECASE
)
# "twelve Euro fifty", "twelve euros and fifty cents": a spoken 12.50 (read on the context side only).
_SPOKEN_PRICE = re.compile(
    rf"\b({_WHOLE})\s+(?:euros?|pounds?|dollars?|bucks)\s+(?:and\s+)?({_FRACTION})(?:\s+(?:cents?|pence))?\b",
    re.IGNORECASE,
)
_TIME = re.compile(
    r"\b(\d{1,2})(?::([0-5]\d))?\s?([ap])(?:m\b|\.m\.)"  # 3 pm, 3:30 p.m.
    r"|\b([01]?\d|2[0-3]):([0-5]\d)\b(?!\s?[ap]\.?m\b)",  # 15:00
    re.IGNORECASE,
)
QUARTER = re.compile(r"\b([QqHh])([1-4])\b")
_ORDINAL = re.compile(r"\b(\d+)(?:st|nd|rd|th)\b")
_DECADE = re.compile(r"\b(\d{4})s\b")

ORDINAL_WORDS = ("first", "second", "third", "fourth")
# "the fourth quarter", "first half": a reporting period is a number even in an answer, where a
# lone "first" or "second" is not ("the second time" / "a second opinion")
_PERIOD_ORDINAL = re.compile(r"\b(first|second|third|fourth)(?=\s+(?:fiscal\s+)?(?:quarter|half)\b)", re.IGNORECASE)
# A duration in one unit is one in another: the context's "24 hours" supports an answer's "a day",
# "48 hours" its "two days", "a week" its "7 days", "18 months" its "1.5 years". Units in minutes;
# months and years apart, as a month is no whole number of days.
_DURATION_UNITS = (
    {"minute": 1, "hour": 60, "day": 1440, "week": 10080},
    {"month": 1, "year": 12},
)
_DURATION = re.compile(
    rf"\b(\d+(?:\.\d+)?|an?|one|{'|'.join(w for w in NUMBER_WORDS if w != 'zero')})[\s-]+"
    r"(minute|hour|day|week|month|year)s?\b",
    re.IGNORECASE,
)


def _num_key(value: float) -> float:
    return float(f"{value:.6g}")


def _time_key(hour: int, minute: int) -> float:
    # Negative: no plain number parsed here is negative, so a time never equals a count.
    return -1.0 - (hour % 24) * 60 - minute


@dataclass(slots=True)
class Numbers:
    """Numbers of a text: (start, end, keys) per number; keys are every value it may stand for."""

    spans: list[tuple[int, int, frozenset[float]]] = field(default_factory=list)

    @property
    def keys(self) -> set[float]:
        out: set[float] = set()
        for _, _, keys in self.spans:
            out |= keys
        return out


def _spelled_value(words: list[str]) -> float | None:
    """The value of "four hundred twenty", or None for a run that is not one number ("two three")."""
    total, current = 0.0, 0.0
    prev = ""
    for w in words:
        if w in _SMALL:
            tens_then_unit = prev in _SMALL and _SMALL[prev] >= 20 and _SMALL[prev] % 10 == 0 and _SMALL[w] < 10
            if prev in _SMALL and not tens_then_unit:
                return None
            current += _SMALL[w]
        elif w == "hundred":
            if prev not in _SMALL or current >= 100:
                return None
            current *= 100
        else:
            if prev not in _SMALL and prev != "hundred":
                return None
            total += current * _BIG[w]
            current = 0.0
        prev = w
    return total + current


def _roundings(value: float, decimals: int) -> set[float]:
    """What an answer may round the context's `value` to, half up, keeping two significant figures or
    more: 40.6 -> 41, 2.345 -> 2.35 and 2.3, 2,345 -> 2,300 and 2,350. Not to one figure (41.2 -> 40
    would pass an edited 40; 3.2 -> 3), and never a year (2019 -> 2020)."""
    exact = Decimal(repr(value))
    out: set[Decimal] = set()
    for d in range(decimals):
        out.add(exact.quantize(Decimal(1).scaleb(-d), rounding=ROUND_HALF_UP))
    if decimals == 0 and value >= 1000 and not 1900 <= value <= 2100:
        for sig in (2, 3):
            step = Decimal(1).scaleb(exact.adjusted() - sig + 1)
            out.add((exact / step).quantize(Decimal(1), rounding=ROUND_HALF_UP) * step)
    return {_num_key(float(r)) for r in out if r != exact and len(r.normalize().as_tuple().digits) >= 2}


def _spoken_whole(text: str) -> float | None:
    if text.isdigit():
        return float(text)
    words = [w.lower() for w in re.findall(r"[A-Za-z]+", text) if w.lower() != "and"]
    return _spelled_value(words) if len(words) > 1 else _DIGITS.get(words[0]) if words else None


def _spoken_digits(text: str) -> str | None:
    """The digits after a spoken point: "five" -> "5", "fifty" -> "50", "two five" -> "25"."""
    if text.isdigit():
        return text
    words = [w.lower() for w in re.findall(r"[A-Za-z]+", text)]
    if len(words) > 1 and all(_DIGITS.get(w, 10) < 10 for w in words):
        return "".join(str(_DIGITS[w]) for w in words)
    value = _spelled_value(words) if len(words) > 1 else _DIGITS.get(words[0])
    return None if value is None else str(int(value))


def _spoken_number(whole: str, fraction: str, cents: bool) -> float | None:
    w, f = _spoken_whole(whole), _spoken_digits(fraction)
    if w is None or f is None or (cents and len(f) > 2):
        return None
    return _num_key(w + int(f) / 100) if cents else _num_key(float(f"{int(w)}.{f}"))


def find_numbers(text: str, *, context_side: bool = False) -> Numbers:
    found: list[tuple[int, int, frozenset[float]]] = []
    taken: list[tuple[int, int]] = []

    def add(start: int, end: int, keys: set[float]) -> None:
        found.append((start, end, frozenset(keys)))
        taken.append((start, end))

    def free(start: int) -> bool:
        return not any(a <= start < b for a, b in taken)

    for m in _TIME.finditer(text):
        if m.group(3):
            hour, minute = int(m.group(1)), int(m.group(2) or 0)
            if not 1 <= hour <= 12:
                continue
            hour24 = hour % 12 + (12 if m.group(3).lower() == "p" else 0)
            add(m.start(), m.end(), {_time_key(hour24, minute), float(hour)})
        else:
            hour, minute = int(m.group(4)), int(m.group(5))
            keys = {_time_key(hour, minute)}
            if context_side:
                keys.add(float(hour))
            add(m.start(), m.end(), keys)
    for pattern, cents in ((_SPOKEN_DECIMAL, False), (_SPOKEN_PRICE, True)):
        if cents and not context_side:
            continue
        for m in pattern.finditer(text):
            value = _spoken_number(m.group(1), m.group(2), cents)
            if value is None or not free(m.start()):
                continue
            keys = {value}
            if cents:  # the context's "twelve Euro fifty" also holds a twelve and a fifty
                parts = (_spoken_whole(m.group(1)), _spoken_whole(m.group(2)))
                keys |= {_num_key(p) for p in parts if p is not None}
            elif m.group(3):
                scaled = _num_key(value * _BIG[m.group(3).lower()])
                keys = keys | {scaled} if context_side else {scaled}
            add(m.start(), m.end(), keys)
    for m in QUARTER.finditer(text):
        if free(m.start()):
            add(m.start(), m.end(), {float(m.group(2))})
    for m in _PERIOD_ORDINAL.finditer(text):
        add(m.start(), m.end(), {float(ORDINAL_WORDS.index(m.group(1).lower()) + 1)})
    for m in _DECADE.finditer(text):
        if free(m.start()):
            add(m.start(), m.end(), {float(m.group(1))})
    for m in _ORDINAL.finditer(text):
        if free(m.start()):
            add(m.start(), m.end(), {float(m.group(1))})
    for m in _SPELLED.finditer(text):
        if free(m.start()):
            words = [w.lower() for w in re.findall(r"[A-Za-z]+", m.group(0)) if w.lower() != "and"]
            value = _spelled_value(words)
            if value is not None:
                add(m.start(), m.end(), {_num_key(value)})
    for m in _SHORT_YEAR.finditer(text):
        digits = m.group(1) or m.group(2)
        if free(m.start()):
            year = int(digits) if len(digits) == 4 else int(digits) + (1900 if int(digits) >= 50 else 2000)
            add(m.start(), m.end(), {float(year), float(year % 100)})
    for m in _NUMBER.finditer(text):
        if not free(m.start()) or not m.group(0).strip("$€£¥ "):
            continue
        whole = m.group(1).replace(",", "") or "0"
        frac = (m.group(2) or "").rstrip("0")
        value = float(f"{whole}.{frac}" if frac else whole)
        keys = {_num_key(value)}
        if _CENTS.match(text, m.end()):  # "50 cents" is $0.50
            keys.add(_num_key(value / 100))
        if context_side:
            keys |= _roundings(value, len(frac))
        scale = (m.group(4) or "").lower()
        if scale in _SCALES:
            # "2.3 million" in the answer must match 2.3 million, not any 2.3; the context's "2.3 million"
            # still supports an answer's bare "2.3" (and "$2.34 billion" an answer's "$2.3 billion").
            scaled = {_num_key(k * _SCALES[scale]) for k in keys}
            keys = keys | scaled if context_side else scaled
        add(m.start(), m.end(), keys)
    for m in WORD.finditer(text):
        if not free(m.start()):
            continue
        w = m.group(0).lower()
        value = NUMBER_WORDS.get(w)
        if value is None and context_side:
            value = CONTEXT_ONLY_NUMBER_WORDS.get(w)
        if value is not None:
            extra = _CONTEXT_EXTRA_KEYS.get(w, ()) if context_side else ()
            found.append((m.start(), m.end(), frozenset({_num_key(value), *extra})))
    if context_side:
        found = _with_durations(text, found)
    found.sort()
    return Numbers(found)


def durations(text: str) -> list[tuple[int, int, dict[str, float]]]:
    """(start, end of the amount, the same duration in larger units of its group where that is a
    whole or half number of them, and for "a day", "one week" in the next smaller unit). Only those:
    "24 hours" as 1,440 minutes would let an answer's "24 minutes" pass."""
    out = []
    for m in _DURATION.finditer(text):
        amount = m.group(1).lower()
        single = amount in ("a", "an", "one")
        value = 1.0 if single else NUMBER_WORDS.get(amount)
        value = float(amount) if value is None else float(value)
        unit = m.group(2).lower()
        group = next(g for g in _DURATION_UNITS if unit in g)
        total = value * group[unit]
        larger = {u: total / size for u, size in group.items() if size > group[unit] and total / size >= 1}
        same = {u: v for u, v in larger.items() if (2 * v).is_integer()}
        smaller = [u for u, size in group.items() if size < group[unit]]
        if single and smaller:
            same[smaller[-1]] = total / group[smaller[-1]]
        if same:
            out.append((m.start(1), m.end(1), same))
    return out


def _with_durations(
    text: str, found: list[tuple[int, int, frozenset[float]]]
) -> list[tuple[int, int, frozenset[float]]]:
    """`found` with each of the context's durations also standing for its value in other units."""
    found = list(found)
    for start, end, same in durations(text):
        keys = {_num_key(v) for v in same.values()}
        at = next((k for k, (a, b, _) in enumerate(found) if a <= start < b), None)
        if at is None:  # "a day": no number span of its own
            found.append((start, end, frozenset(keys)))
        else:
            a, b, old = found[at]
            found[at] = (a, b, old | keys)
    return found
