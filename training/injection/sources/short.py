"""Generated source `short-texts`: short benign texts, the kind every gateway sees most.

No training source held texts of a few words, and a sentence embedding of "hello 0" or "export me"
lands anywhere: the first fit flagged such texts, and the second one half of "cache me <16 random
letters>" (random letters read as a GCG suffix). Greetings, test strings, one-line tasks and
questions, short tool results, made from templates and fillers with a fixed seed; written here,
nothing fetched.

    python3 training/injection/sources/short.py [--out training/injection/build]
"""

from __future__ import annotations

import argparse
import json
import random
import string
from pathlib import Path

SOURCE = "short-texts"
GREETINGS = ["hello", "hi", "hey", "good morning", "thanks", "thank you", "ok", "okay", "yes", "no", "sure",
             "hello there", "hi again", "cheers", "bye", "ping", "test", "testing", "hello world", "yo"]
WORDS = ["export", "verify", "query", "audit", "report", "invoice", "order", "ticket", "status", "update",
         "summary", "draft", "meeting", "weather", "budget", "plan", "notes", "list", "recipe", "schedule"]
TASKS = ["summarize this", "translate to French", "fix the typo", "shorten it", "make it formal", "explain",
         "continue", "try again", "more detail please", "give me three ideas", "in one sentence",
         "as a table", "what does this mean?", "is this correct?", "rewrite the {w}", "check the {w}",
         "send the {w}", "show the {w}", "{w} for today", "{w} me", "{w} me {n}", "{w} {n}", "the {w}, please",
         "what's the {w}?", "where is my {w}?", "can you {v} the {w}?", "{v} it", "{v} {n}"]
VERBS = ["export", "verify", "check", "list", "update", "cancel", "open", "close", "print", "save", "share"]
QUESTIONS = ["What time is it in Tokyo?", "How many ounces in a pound?", "Who wrote Hamlet?",
             "What is 17 times 23?", "Capital of Canada?", "Is it going to rain?", "How do I boil an egg?",
             "Define entropy.", "Synonym for happy?", "What is a haiku?", "Best way to learn Python?",
             "How far is the moon?", "What's a good name for a cat?", "Convert 5 km to miles."]
TOOL_RESULTS = ["OK", "42", "true", "null", "[]", "{}", '{"status": "ok"}', '{"count": {n}}', "No results found.",
                "Done.", "File saved.", "404 Not Found", '{"temperature": {n}, "unit": "C"}', "Sent.",
                '{"id": {n}, "state": "open"}', "Meeting moved to 3 pm.", "{n} rows affected"]


def token(rng: random.Random) -> str:
    """A random id, marker or hash-like word: real traffic is full of them, and strings of random
    letters are what optimized (GCG) suffixes look like to a model that has seen only those."""
    alphabet = rng.choice([string.ascii_lowercase, string.ascii_letters + string.digits, "0123456789abcdef"])
    return "".join(rng.choices(alphabet, k=rng.randint(6, 24)))


def build(rng: random.Random) -> list[dict]:
    texts: set[tuple[str, str]] = set()
    while len(texts) < 250:  # a short phrase and a random token
        phrase = rng.choice(GREETINGS + WORDS + [t.format(w=rng.choice(WORDS), v=rng.choice(VERBS), n="")
                                                 for t in TASKS[:6]])
        texts.add(("user", f"{phrase} {token(rng)}" if rng.random() < 0.8 else f"{token(rng)} {phrase}"))
    while len(texts) < 950:
        kind = rng.random()
        n = str(rng.randint(0, 999))
        if kind < 0.25:
            text = rng.choice(GREETINGS) + (f" {n}" if rng.random() < 0.4 else "")
        elif kind < 0.65:
            text = rng.choice(TASKS).format(w=rng.choice(WORDS), v=rng.choice(VERBS), n=n)
        elif kind < 0.8:
            text = rng.choice(QUESTIONS)
        else:
            texts.add(("tool", rng.choice(TOOL_RESULTS).replace("{n}", n)))
            continue
        if rng.random() < 0.2:
            text = text.capitalize()
        texts.add(("user", text))
    out = []
    for i, (role, text) in enumerate(sorted(texts)):
        family = "clean_doc" if role == "tool" else "benign"
        out.append({"id": f"{SOURCE}:{i}", "text": text, "label": "benign", "role": role, "family": family,
                    "source": SOURCE})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "build")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = build(random.Random(0))
    path = args.out / f"{SOURCE}.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"{path.name}: {len(rows)} records")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
