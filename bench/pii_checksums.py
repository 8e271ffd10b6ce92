"""Checksum identifiers that are only identifiers in context: false alarms on benign traffic and the
dev set, and what still covers a number once context decides.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/pii_checksums.py [--n 2000]

1. Generated benign requests, the shape issue 25 measured ("Hi, my name is … and my phone number
   is …. Can you summarise … (case …) …?"), phone numbers in six common formats, plus order,
   invoice and ticket numbers: per entity type the requests it fired on, and how many requests a
   type tiered `high` by the default risk policy would keep off external backends.
2. The dev set (`../shared/evals/pii-dev.jsonl`): predictions of each number-shaped type, and how
   many of them match a labelled span of that type (the set has no NHS numbers, so every UK_NHS
   prediction there is false).
3. Valid NHS numbers (checksum computed) in sentences with NHS context and without: found as
   UK_NHS, and covered by any entity (a number the gateway still pseudonymizes), with the default
   policy and with `pii.recall_first: {UK_NHS: 0.2}` (what external backends would receive).
Each of 1-3 runs the default analyzer, and Presidio's own NhsRecognizer (the checksum alone, the
recognizer before issue 25) beside ours on the same texts.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from presidio_analyzer.predefined_recognizers import NhsRecognizer  # noqa: E402

from gateway.pii.analyzer import analyzer_for  # noqa: E402
from gateway.pii.config import PiiPolicy  # noqa: E402
from gateway.pii.recognizers import NhsNumberRecognizer  # noqa: E402
from gateway.risk.config import PiiRule  # noqa: E402

DEV = ROOT.parent / "shared" / "evals" / "pii-dev.jsonl"
NUMBERISH = (
    "UK_NHS",
    "US_SSN",
    "US_ITIN",
    "US_BANK_NUMBER",
    "US_PASSPORT",
    "US_DRIVER_LICENSE",
    "MEDICAL_LICENSE",
    "CREDIT_CARD",
    "IBAN_CODE",
    "PHONE_NUMBER",
)
FIRST = ["Alice", "Bongani", "Carla", "Dev", "Emma", "Farid", "Grace", "Hiroshi", "Ines", "Jonas"]
LAST = ["Martin", "Chen", "Diaz", "Patel", "Stone", "Okafor", "Novak", "Larsen", "Haddad", "Kim"]
PHONE_FORMATS = ["{a}-{b}-{c}", "({a}) {b}-{c}", "{a} {b} {c}", "{a}.{b}.{c}", "+1 {a}-{b}-{c}", "{a}{b}{c}"]
TASKS = [
    "Can you summarise the benefits of unit testing (case {n}) in two sentences?",
    "Please draft a short reply about order {n} arriving late.",
    "What should I put in invoice {n}'s payment terms?",
    "Explain ticket {n} to a new colleague in plain words.",
]


def phone(rng: random.Random) -> str:
    fmt = rng.choice(PHONE_FORMATS)
    return fmt.format(a=rng.randint(201, 989), b=rng.randint(200, 999), c=f"{rng.randint(0, 9999):04d}")


def benign(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [
        f"Hi, my name is {rng.choice(FIRST)} {rng.choice(LAST)} and my phone number is {phone(rng)}. "
        + rng.choice(TASKS).format(n=rng.randint(10_000, 9_999_999))
        for _ in range(n)
    ]


def nhs_number(rng: random.Random) -> str:
    """A valid NHS number: nine digits and the mod-11 check digit (redrawn when it would be 10)."""
    while True:
        body = [rng.randint(0, 9) for _ in range(9)]
        check = 11 - sum(d * w for d, w in zip(body, range(10, 1, -1), strict=True)) % 11
        if check == 11:
            check = 0
        if check != 10:
            digits = "".join(map(str, body + [check]))
            a, b, c = digits[:3], digits[3:6], digits[6:]
            return rng.choice([f"{a} {b} {c}", digits, f"{a}-{b}-{c}"])


def nhs_sentences(n: int, context: bool, seed: int = 1) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    with_context = [
        "Her NHS number is {v} and she is registered with the surgery.",
        "Patient {name}, NHS no. {v}, was referred on Monday.",
        "Please update the record for National Health Service number {v}.",
        "NHS: {v} - {name} - discharge summary attached.",
        "The health service reference for {name} is {v}.",
    ]
    without = [
        "Her reference is {v} and she is registered with the surgery.",
        "Patient {name}, no. {v}, was referred on Monday.",
        "Please update the record for number {v}.",
        "{name}: {v} - discharge summary attached.",
        "The reference for {name} is {v}.",
    ]
    texts, values = [], []
    for _ in range(n):
        v = nhs_number(rng)
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        texts.append(rng.choice(with_context if context else without).format(v=v, name=name))
        values.append(v)
    return texts, values


def count_nhs(recognizer, texts: list[str]) -> int:
    """Texts where `recognizer` finds UK_NHS at or above the default policy's threshold for it."""
    threshold = PiiPolicy().threshold("UK_NHS")
    return sum(any(r.score >= threshold for r in recognizer.analyze(t, ["UK_NHS"])) for t in texts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000)
    args = p.parse_args(argv)
    analyzer = analyzer_for(PiiPolicy())
    tiers = PiiRule().entities
    presidio, ours = NhsRecognizer(), NhsNumberRecognizer()

    texts = benign(args.n)
    found = analyzer.analyze(texts)
    fired = collections.Counter(t for ents in found for t in {e.type for e in ents})
    high = sum(any(tiers.get(e.type) == "high" for e in ents) for ents in found)
    print(f"1. generated benign requests: {args.n}, each with a name and a phone number")
    for kind, count in fired.most_common():
        print(f"   {kind:<18} fired on {count:>5} ({count / args.n:.1%})  tier {tiers.get(kind, '-')}")
    print(f"   requests tiered high (kept off external backends): {high} ({high / args.n:.1%})")
    before = count_nhs(presidio, texts)
    print(
        f"   UK_NHS on the checksum alone (Presidio's recognizer): {before} ({before / args.n:.1%}); "
        f"with context required: {count_nhs(ours, texts)}"
    )

    if DEV.exists():
        rows = [json.loads(line) for line in DEV.read_text().splitlines() if line.strip()]
        found = analyzer.analyze([r["text"] for r in rows])
        print(f"\n2. dev set: {len(rows)} texts ({DEV.name})")
        print(f"   {'type':<18} {'predicted':>9} {'labelled':>8} {'match':>6}")
        for kind in NUMBERISH:
            pred = match = gold = 0
            for row, ents in zip(rows, found, strict=True):
                spans = [(s["start"], s["end"]) for s in row["spans"] if s["type"] == kind]
                gold += len(spans)
                for e in ents:
                    if e.type == kind:
                        pred += 1
                        match += any(e.start < end and start < e.end for start, end in spans)
            print(f"   {kind:<18} {pred:>9} {gold:>8} {match:>6}")
        dev_texts = [r["text"] for r in rows]
        print(
            f"   UK_NHS on the checksum alone: {count_nhs(presidio, dev_texts)} texts; "
            f"with context required: {count_nhs(ours, dev_texts)}"
        )

    print("\n3. valid NHS numbers, 500 sentences each; covered = inside a detected span of any type")
    recall_first = analyzer_for(PiiPolicy(recall_first={"UK_NHS": 0.2}))
    print(
        f"   {'sentences':<16} {'UK_NHS, checksum alone':>22} {'UK_NHS, ours':>13} {'covered':>8}"
        f" {'covered, recall-first':>22}"
    )
    for context in (True, False):
        texts, values = nhs_sentences(500, context)
        cells = []
        for az in (analyzer, recall_first):
            covered = 0
            for text, value, ents in zip(texts, values, az.analyze(texts), strict=True):
                start = text.index(value)
                covered += any(e.start <= start and start + len(value) <= e.end for e in ents)
            cells.append(covered / 500)
        label = "with context" if context else "without context"
        print(
            f"   {label:<16} {count_nhs(presidio, texts) / 500:>22.1%} {count_nhs(ours, texts) / 500:>13.1%}"
            f" {cells[0]:>8.1%} {cells[1]:>22.1%}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
