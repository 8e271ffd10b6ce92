"""Generated chat-style sentences with names, places and organisations: the `generated-chat` source.

Public NER corpora are news, Wikipedia and tweets; what a gateway reads is requests to an assistant:
lower-case, terse, names standing alone or half written, lists of surnames, names in tool
arguments. These templates give the tagger that register. Names come from the US Census lists and
places from GeoNames (`lists/`, public domain and CC BY 4.0); organisations are built
from surnames and places. Titles ("Ms.", "Dr.") are tagged O as in the corpora: the analyzer adds
them to a name by rule (`gateway/pii/names.py`).

Every template is written from a kind of text, not from a miss of any evaluation set. Each
sentence also comes with no entity at all in some templates (`{none}` slots filled with ordinary
words), so that capitalised words alone are no evidence.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

DATA = Path(__file__).resolve().parent / "lists"

# {P} full name, {F} first name, {L} surname, {C} city, {K} country, {O} organisation.
TEMPLATES = [
    "please add {P} as guardian on the account",
    "can you write a reference letter for {P} ?",
    "{P} is joining the team on monday , can you draft a welcome note",
    "the drummer {L} left the band after the tour",
    "founders : {L} , {L} and {L}",
    "{L} and {L} were the only ones at the meeting",
    "summarise this email from {P} about the {C} office move",
    "hi , i'm {F} from {O} , we spoke last week",
    "my name is {P} and i live in {C}",
    "remind {F} to send the invoice to {O}",
    "what should i get {F} for her birthday ?",
    "{F} said the flight from {C} to {C} was delayed",
    "book a table for {F} and {F} tomorrow at 7",
    "translate this for {P} : the package arrives friday",
    "cc {P} and {P} on the reply",
    "draft a complaint to {O} about my order , signed {P}",
    "a tribute to {P} , who taught here for thirty years",
    "{P} ( {O} ) will chair the panel in {C}",
    "we hired {L} as head of sales at {O}",
    "ask {L} whether the {C} contract is signed",
    "the patient , {P} , was admitted on tuesday",
    "notes from the call with {F} {L} and {F}",
    "is {O} hiring in {C} or {K} ?",
    "{P} moved to {K} last year and now works for {O}",
    "write a short bio for {P} , a nurse from {C}",
    "who is {L} ? he keeps emailing me",
    "forward this to {F} at {O}",
    "our landlord {P} wants the rent by friday",
    "thanks {F} !",
    "{F} , can you check the numbers again",
    "dear {P} , thank you for your application",
    "regards , {P}",
    "meeting with {P} , {P} and {P} moved to 3pm",
    "the {C} team ( {F} , {F} , {F} ) owns the release",
    "coach {L} benched {L} for the final",
    "interview {P} for the {C} role next week",
    "my daughter {F} has a fever , what should i do",
    "{F} and i are driving from {C} to {C} this weekend",
    "{O} opened a new branch in {C} , {K}",
    "compare {O} and {O} for cloud hosting",
    "the judge , {P} , adjourned the hearing",
    "witness {L} said she saw the car in {C}",
    "send the contract to {P} , {O} , {C}",
    "{P} vs {O} : summarise the ruling",
    "reply to {F} saying i'll be late",
    "tell {F} {L} the report is ready",
    "invite {P} to the {O} review",
    "add {F} {L} to the mailing list",
    "{L} , {F} - date of birth 1984",
    "employee : {P} , office : {C}",
    "contact {P} at the {C} branch of {O}",
]
# Sentences without entities: capitalised or not, they name nobody.
NONE_TEMPLATES = [
    "can you explain how photosynthesis works ?",
    "write a python function that sorts a list of dates",
    "what is the difference between a virus and a bacterium ?",
    "Please Summarise The Attached Report In Three Bullet Points",
    "the meeting is moved to monday , bring the slides",
    "a violation of Article 6 § 1 of the Convention was found",
    "Section 12 ( 2 ) of the Act does not apply to leases",
    "see Regulation 7 and Schedule 2 , Part 3",
    "Will you check the build again ?",
    "May I ask what the refund policy is ?",
    "Grant access to the staging bucket for the new job",
    "Mark the ticket as done and close the sprint",
    "the doctor said to rest for a week",
    "my boss wants the numbers by friday",
    "URGENT : the server is down again",
    "Dear Sir or Madam , I am writing to complain about my order",
    "Best regards , the support team",
    "Summer Sale : everything must go",
    "how do i reset my password ?",
    "Turn the heating down in the evening",
]


def _load(name: str) -> list[str]:
    return [w for w in (DATA / name).read_text(encoding="utf-8").split("\n") if w]


def _titled(word: str) -> str:
    return "-".join(p[:1].upper() + p[1:] for p in word.split("-"))


class Pools:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.first = _load("first_names.txt")
        self.last = _load("last_names.txt")[:30000]
        self.cities = [c for c in _load("major_places.txt") if re.fullmatch(r"[a-z][a-z \-]+", c)]
        self.countries = [c for c in _load("countries.txt") if re.fullmatch(r"[a-z][a-z ]+", c)]
        self.org_suffix = ["inc", "ltd", "llc", "group", "holdings", "partners", "& co", "bank",
                           "university", "hospital", "foundation", "labs", "logistics", "insurance"]

    def fill(self, slot: str) -> tuple[list[str], str]:
        r = self.rng
        if slot == "F":
            return [_titled(r.choice(self.first))], "PER"
        if slot == "L":
            return [_titled(r.choice(self.last))], "PER"
        if slot == "P":
            parts = [_titled(r.choice(self.first))]
            if r.random() < 0.15:
                parts.append(r.choice("ABCDEFGHJKLMNPRSTW") + ".")
            parts.append(_titled(r.choice(self.last)))
            if r.random() < 0.1:
                parts[-1] = parts[-1] + "-" + _titled(r.choice(self.last))
            return parts, "PER"
        if slot == "C":
            return [_titled(w) for w in r.choice(self.cities).split()], "LOC"
        if slot == "K":
            return [_titled(w) for w in r.choice(self.countries).split()], "LOC"
        if slot == "O":
            if r.random() < 0.5:
                head = [_titled(r.choice(self.last))]
            else:
                head = [_titled(w) for w in r.choice(self.cities).split()]
            return head + [_titled(w) if w[0].isalpha() else w for w in r.choice(self.org_suffix).split()], "ORG"
        raise KeyError(slot)


def sentence(template: str, pools: Pools) -> tuple[list[str], list[str]]:
    tokens: list[str] = []
    tags: list[str] = []
    for part in template.split():
        m = re.fullmatch(r"\{([FLPCKO])\}", part)
        if m is None:
            tokens.append(part)
            tags.append("O")
            continue
        words, kind = pools.fill(m.group(1))
        tokens.extend(words)
        tags.extend([f"B-{kind}"] + [f"I-{kind}"] * (len(words) - 1))
    return tokens, tags


def generate(n: int, seed: int = 13) -> list[dict]:
    """`n` sentences, about one in six without entities; casing is left to the training augmentation
    except that a third of the sentences start with a capital, as typed messages often do."""
    rng = random.Random(seed)
    pools = Pools(rng)
    out = []
    for _ in range(n):
        if rng.random() < 0.17:
            tokens = rng.choice(NONE_TEMPLATES).split()
            tags = ["O"] * len(tokens)
        else:
            tokens, tags = sentence(rng.choice(TEMPLATES), pools)
        if rng.random() < 0.33 and tokens[0][:1].islower():
            tokens[0] = tokens[0][:1].upper() + tokens[0][1:]
        out.append({"source": "generated-chat", "tokens": tokens, "tags": tags})
    return out
