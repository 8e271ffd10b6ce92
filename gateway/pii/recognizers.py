"""Recognizers Presidio does not ship, or ships in a form we cannot use in production.

- `PhoneNumberRecognizer`: one pass of a candidate regex plus formatting and context evidence,
  instead of Presidio's eight `phonenumbers` passes (one per region) that miss international
  formats like `(37) 788-063` and cost the most of any built-in recognizer.
- `OfflineEmailRecognizer`: Presidio's email recognizer validates domains with `tldextract`,
  which fetches the public suffix list over the network on first use; ours uses the snapshot
  bundled with tldextract, so nothing is downloaded at run time.
- `NhsNumberRecognizer`: Presidio's NHS pattern and checksum, kept only where NHS context is near:
  the checksum alone passes one ten-digit number in eleven, phone numbers included.
- `policy_recognizers`: a tenant's own regexes (with context words) and deny lists.

Street addresses are recognized in addresses.py; `_result` is the RecognizerResult every recognizer
of ours returns.
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
from presidio_analyzer.predefined_recognizers import EmailRecognizer, NhsRecognizer

from gateway.pii.config import CustomRecognizer

_TLD = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


class OfflineEmailRecognizer(EmailRecognizer):
    def validate_result(self, pattern_text: str) -> bool:
        return _TLD(pattern_text).fqdn != ""


class NhsNumberRecognizer(NhsRecognizer):
    """An NHS number is ten digits written 3-3-4, the shape of a North American phone number, and
    its mod-11 checksum passes one ten-digit number in eleven. On the checksum alone one benign
    request in ten that carried a US phone number was read as carrying a health identifier and
    raised to the high tier (issue 25). So a match scores as an NHS number only with NHS context in
    the same stretch of text. Without it the match stays, at a score below the default threshold:
    it is dropped unless a policy's recall-first zone (`pii.recall_first: {UK_NHS: 0.2}`) asks for
    it on external backends, where it is pseudonymized without raising the tier. A phone-shaped
    number is still covered by the phone recognizer (`bench/pii_checksums.py` measures both)."""

    _CONTEXT = re.compile(r"\b(?:nhs|national\s+health\s+service|health\s+(?:services?|authority))\b", re.I)
    BEFORE, AFTER = 64, 32  # characters of text searched for context around a match
    NO_CONTEXT_SCORE = 0.2

    def analyze(self, text, entities, nlp_artifacts=None, regex_flags=None):
        results = super().analyze(text, entities, nlp_artifacts, regex_flags)
        for r in results:
            if not self._CONTEXT.search(text, max(0, r.start - self.BEFORE), r.end + self.AFTER):
                r.score = min(r.score, self.NO_CONTEXT_SCORE)
        return results


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
