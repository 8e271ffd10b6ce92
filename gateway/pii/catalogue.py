"""Which recognizers serve each entity type, and the cheap test that skips them for a text.

`recognizers_for(entity)` builds the recognizers the analyzer runs for one entity type: Presidio's
predefined ones where they serve, ours where they are faster or read more (recognizers.py,
addresses.py, secrets_recognizer.py; names, places and organisations come from the learned tagger,
tagger.py, which the analyzer runs itself). `GATES` decides, from
the text and its count of digits alone, whether an entity can occur in it at all (a card number
needs 12 digits, an e-mail an "@"), so that a recognizer whose entity cannot occur is not run.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from presidio_analyzer import EntityRecognizer
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    CryptoRecognizer,
    DateRecognizer,
    IbanRecognizer,
    IpRecognizer,
    MacAddressRecognizer,
    MedicalLicenseRecognizer,
    UrlRecognizer,
    UsBankRecognizer,
    UsItinRecognizer,
    UsLicenseRecognizer,
    UsPassportRecognizer,
    UsSsnRecognizer,
)

from gateway.pii.addresses import StreetAddressRecognizer
from gateway.pii.recognizers import (
    NhsNumberRecognizer,
    OfflineEmailRecognizer,
    PaymentCardRecognizer,
    PhoneNumberRecognizer,
)
from gateway.pii.secrets_recognizer import SecretsRecognizer

_IBAN_START = re.compile(r"[A-Za-z]{2}\d{2}")

# Which entity can possibly be in a text, decided without running its recognizer.
# Arguments: the text and its count of ASCII digits.
Gate = Callable[[str, int], bool]
GATES: dict[str, Gate] = {
    "EMAIL_ADDRESS": lambda t, d: "@" in t,
    "PHONE_NUMBER": lambda t, d: d >= 7,
    "CREDIT_CARD": lambda t, d: d >= 12,
    "US_SSN": lambda t, d: d >= 9,
    "US_ITIN": lambda t, d: d >= 9,
    "US_BANK_NUMBER": lambda t, d: d >= 8,
    "US_PASSPORT": lambda t, d: d >= 8,
    "US_DRIVER_LICENSE": lambda t, d: d >= 4,
    "UK_NHS": lambda t, d: d >= 10,
    "MEDICAL_LICENSE": lambda t, d: d >= 6,
    "IBAN_CODE": lambda t, d: d >= 8 and _IBAN_START.search(t) is not None,
    "IP_ADDRESS": lambda t, d: (d >= 4 and "." in t) or "::" in t or t.count(":") >= 2,
    "MAC_ADDRESS": lambda t, d: d >= 2 and (":" in t or "-" in t or "." in t),
    "CRYPTO": lambda t, d: d >= 1,
    "URL": lambda t, d: "." in t,
    "ADDRESS": lambda t, d: d >= 1,
}


def recognizers_for(entity: str) -> list[EntityRecognizer]:
    table: dict[str, Callable[[], list[EntityRecognizer]]] = {
        "EMAIL_ADDRESS": lambda: [OfflineEmailRecognizer()],
        "PHONE_NUMBER": lambda: [PhoneNumberRecognizer()],
        "CREDIT_CARD": lambda: [CreditCardRecognizer(), PaymentCardRecognizer()],
        "US_SSN": lambda: [UsSsnRecognizer()],
        "US_ITIN": lambda: [UsItinRecognizer()],
        "US_BANK_NUMBER": lambda: [UsBankRecognizer()],
        "US_PASSPORT": lambda: [UsPassportRecognizer()],
        "US_DRIVER_LICENSE": lambda: [UsLicenseRecognizer()],
        "UK_NHS": lambda: [NhsNumberRecognizer()],
        "MEDICAL_LICENSE": lambda: [MedicalLicenseRecognizer()],
        # Presidio's YAML-configured default ignores case; the class default does not ("gb42nawi...").
        "IBAN_CODE": lambda: [IbanRecognizer(regex_flags=re.DOTALL | re.MULTILINE | re.IGNORECASE)],
        "IP_ADDRESS": lambda: [IpRecognizer()],
        "MAC_ADDRESS": lambda: [MacAddressRecognizer()],
        "CRYPTO": lambda: [CryptoRecognizer()],
        "URL": lambda: [UrlRecognizer()],
        "DATE_TIME": lambda: [DateRecognizer()],
        "ADDRESS": lambda: [StreetAddressRecognizer()],
        "SECRET": lambda: [SecretsRecognizer()],
    }
    return table[entity]() if entity in table else []
