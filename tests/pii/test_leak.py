"""Leak test: 240 generated prompts full of personal data and secrets. After the transform for an
external backend none of the inserted formatted values may remain anywhere in the outbound body
(and a name in at most one prompt: see the test), and an
answer that echoes the placeholders (whole, or split into random stream chunks) must come back as
exactly the original text."""

import json
import random

import pytest

from gateway.pii.analyzer import PiiAnalyzer
from gateway.pii.config import PiiPolicy, Treatments
from gateway.pii.entities import PiiBlockedError
from gateway.pii.restore import StreamRestorer, restore_response
from gateway.pii.transform import inspect_request_sync, transform_request

FIRST = [
    "Maria",
    "Olusegun",
    "Priya",
    "Jonathan",
    "Siobhan",
    "Wei",
    "Fatima",
    "Lars",
    "Ingrid",
    "Mateo",
    "Chiara",
    "Dmitri",
    "Aisha",
    "Kenji",
    "Zofia",
    "Rahul",
    "Camille",
    "Tobias",
    "Amara",
    "Henrik",
    "Lucia",
    "Emeka",
    "Hannah",
    "Giorgos",
    "Yusuf",
    "Elena",
    "Patrick",
    "Sunita",
    "Nikolai",
    "Beatriz",
]
LAST = [
    "Gonzalez",
    "Adeyemi",
    "Raghavan",
    "Whitaker",
    "O'Brien",
    "Zhang",
    "Haddad",
    "Lindqvist",
    "Johansen",
    "Ferreira",
    "Bianchi",
    "Volkov",
    "Mensah",
    "Tanaka",
    "Kowalczyk",
    "Mehta",
    "Dubois",
    "Hoffmann",
    "Okafor",
    "Nilsson",
    "Moreno",
    "Eze",
    "Schneider",
    "Papadopoulos",
    "Yilmaz",
    "Petrova",
    "Murphy",
    "Kapoor",
    "Sokolov",
    "Carvalho",
]
STREETS = [
    "Maple",
    "Kingsley",
    "Harbor View",
    "Oakwood",
    "Station",
    "Chestnut",
    "Willow Creek",
    "Bridgewater",
]
SUFFIXES = ["Street", "Road", "Avenue", "Lane", "Drive", "Boulevard", "Court", "Terrace"]
CITIES = ["Springfield", "Manchester", "Portland", "Leeds", "Austin", "Toronto"]
DOMAINS = ["example.com", "mail.example.org", "corp.example.net"]


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    digits = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return digits + str((10 - total % 10) % 10)


def iban(rng: random.Random) -> str:
    country = rng.choice(["GB", "DE"])
    if country == "GB":
        bban = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4)) + "".join(
            rng.choice("0123456789") for _ in range(14)
        )
    else:
        bban = "".join(rng.choice("0123456789") for _ in range(18))
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(numeric) % 97
    return f"{country}{check:02d}{bban}"


def value_makers(rng: random.Random):
    def person():
        return f"{rng.choice(FIRST)} {rng.choice(LAST)}"

    def email():
        return (
            f"{rng.choice(FIRST).lower()}.{rng.choice(LAST).lower().replace(chr(39), '')}{rng.randint(1, 99)}"
            f"@{rng.choice(DOMAINS)}"
        )

    def phone():
        a, b, c = rng.randint(201, 989), rng.randint(200, 999), rng.randint(1000, 9999)
        return rng.choice([f"({a}) {b}-{c}", f"{a}-{b}-{c}", f"+1 {a} {b} {c}", f"+44 20 {b}{c % 10} {c}"])

    def card():
        n = luhn_complete(rng.choice(["4", "51", "55", "2221"]), 16, rng)
        return rng.choice(
            [
                n,
                " ".join(n[i : i + 4] for i in range(0, 16, 4)),
                "-".join(n[i : i + 4] for i in range(0, 16, 4)),
            ]
        )

    def ssn():
        area = rng.choice([a for a in range(1, 900) if a != 666])
        return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"

    def address():
        return f"{rng.randint(2, 9999)} {rng.choice(STREETS)} {rng.choice(SUFFIXES)}"

    def ip():
        return f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"

    def secret():
        alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
        return rng.choice(
            [
                "AKIA" + "".join(rng.choice(upper) for _ in range(16)),
                "ghp_" + "".join(rng.choice(alnum) for _ in range(36)),
                "sk-proj-" + "".join(rng.choice(alnum) for _ in range(40)),
                "xoxb-"
                + str(rng.randint(10**11, 10**12))
                + "-"
                + "".join(rng.choice(alnum) for _ in range(24)),
            ]
        )

    return {
        "person": person,
        "email": email,
        "phone": phone,
        "card": card,
        "ssn": ssn,
        "iban": lambda: iban(rng),
        "address": address,
        "ip": ip,
        "secret": secret,
    }


TEMPLATES = [
    ("My name is {person} and my email is {email}.", "person email"),
    ("Dear {person}, we will call you at {phone} tomorrow.", "person phone"),
    ("Please charge my card {card}; the billing name is {person}.", "card person"),
    ("Customer: {person}\nSSN: {ssn}\nPhone: {phone}", "person ssn phone"),
    ("Transfer 500 EUR to IBAN {iban} for {person}.", "iban person"),
    ("Ship the parcel to {address}, {city}. Contact: {email}", "address email"),
    ("The login failures come from {ip}; the admin on duty is {person}.", "ip person"),
    ("Hi, I'm {person}. I moved to {address} and my new number is {phone}.", "person address phone"),
    (
        "Summarize this ticket. Reporter: {person} <{email}>. Card on file {card}. SSN {ssn}.",
        "person email card ssn",
    ),
    (
        "Draft a reply to {person} about invoice 4471, cc {email}, and mention the server {ip}.",
        "person email ip",
    ),
    (
        "Patient: {person}, DOB withheld, insurance card {card}, phone {phone}, lives at {address}.",
        "person card phone address",
    ),
    ("Our deploy key is {secret}, please check why the pipeline fails.", "secret"),
    ("Connection works with key {secret} from host {ip}, owner {person}.", "secret ip person"),
    ("Translate to French: Mr. {person} paid with IBAN {iban} and card {card}.", "person iban card"),
    (
        "Write a polite note to {person} at {address}, {city}; email {email}; phone {phone}.",
        "person address email phone",
    ),
]


def generate(n: int, seed: int = 7):
    rng = random.Random(seed)
    makers = value_makers(rng)
    for i in range(n):
        template, kinds = TEMPLATES[i % len(TEMPLATES)]
        values = {k: makers[k]() for k in kinds.split()}
        text = template.format(city=rng.choice(CITIES), **values)
        yield i, text, values


def body_for(i: int, text: str) -> dict:
    """Vary where the text sits: chat content, content parts, tool results, prompt, embeddings input."""
    shape = i % 5
    if shape == 0:
        return {
            "model": "m",
            "messages": [
                {"role": "system", "content": "You are helpful."},
                {"role": "user", "content": text},
            ],
        }
    if shape == 1:
        return {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]}
    if shape == 2:
        return {
            "model": "m",
            "messages": [
                {"role": "user", "content": "look this up"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "crm", "arguments": json.dumps({"note": text})},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": text},
            ],
        }
    if shape == 3:
        return {"model": "m", "prompt": text}
    return {"model": "m", "input": [text, "unrelated"]}


def leaked_values(values: dict, outbound: str) -> list[str]:
    out = []
    for kind, value in values.items():
        parts = value.split() if kind == "person" else [value]
        out += [f"{kind}" for p in parts if p in outbound]
    return out


PSEUDONYMIZE_ALL = PiiPolicy(
    treatment=Treatments(
        external={"default": "pseudonymize"}, internal={"default": "allow", "SECRET": "block"}
    )
)
N = 240


@pytest.fixture(scope="module")
def pseudo_analyzer() -> PiiAnalyzer:
    return PiiAnalyzer(PSEUDONYMIZE_ALL)


def test_no_value_reaches_the_external_backend_and_restore_is_exact(pseudo_analyzer):
    rng = random.Random(99)
    leaks = []
    for i, text, values in generate(N):
        body = body_for(i, text)
        result = transform_request(
            body, inspect_request_sync(body, pseudo_analyzer), PSEUDONYMIZE_ALL, "external"
        )
        outbound = json.dumps(result.body, ensure_ascii=False)
        found = leaked_values(values, outbound)
        if found:
            leaks.append((i, found))
            continue
        # The stand-in echoes what it received; restoring that echo must give the original back.
        echoed = _sent_text(result.body, i)
        answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": echoed}}]}
        assert restore_response(answer, result.vault)["choices"][0]["message"]["content"] == text
        restorer = StreamRestorer(result.vault)
        cuts = sorted(rng.sample(range(1, len(echoed)), k=min(len(echoed) - 1, rng.randint(1, 30))))
        pieces = [echoed[a:b] for a, b in zip([0, *cuts], [*cuts, len(echoed)], strict=True)]
        streamed = ""
        for k, piece in enumerate(pieces):
            last = k == len(pieces) - 1
            chunk = restorer.feed_chunk(
                {
                    "choices": [
                        {"index": 0, "delta": {"content": piece}, "finish_reason": "stop" if last else None}
                    ]
                }
            )
            streamed += chunk["choices"][0]["delta"]["content"]
        assert streamed == text
    # Values with a format (e-mail, phone, card, IBAN, SSN, IP, key) never leak. Names come from a
    # learned tagger, which has no such guarantee: over 3,000 prompts of this generator (seeds 7-9)
    # the weights shipped before 2026-12-07 (2) let a name through in 7, the ones since in 8 (a
    # surname after a long IBAN or IP address, "... for Giorgos Okafor."); with the values the
    # patterns find read as placeholders, 2 (7 without, same weights, same day). One such prompt is
    # tolerated here, so the test still fails on a tagger that leaks names at several times that rate.
    structured = [(i, kinds) for i, kinds in leaks if set(kinds) != {"person"}]
    assert structured == [], f"{len(structured)} of {N} prompts leaked formatted values: {structured[:10]}"
    assert len(leaks) <= 1, f"{len(leaks)} of {N} prompts leaked a name: {leaks[:10]}"


def _sent_text(body: dict, i: int) -> str:
    shape = i % 5
    if shape == 0:
        return body["messages"][1]["content"]
    if shape == 1:
        return body["messages"][0]["content"][0]["text"]
    if shape == 2:
        return body["messages"][2]["content"]
    if shape == 3:
        return body["prompt"]
    return body["input"][0]


def test_default_policy_blocks_every_prompt_with_a_secret_and_only_those(analyzer):
    blocked = allowed = 0
    for i, text, values in generate(N):
        body = body_for(i, text)
        inspection = inspect_request_sync(body, analyzer)
        if "secret" not in values:
            transform_request(body, inspection, PiiPolicy(), "external")  # must not raise
            allowed += 1
            continue
        with pytest.raises(PiiBlockedError) as info:
            transform_request(body, inspection, PiiPolicy(), "external")
        assert values["secret"] not in str(info.value)
        blocked += 1
    assert blocked >= 30 and allowed >= 200
