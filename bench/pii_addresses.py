"""Street addresses found in text that holds few: the NER corpora's prose, per group.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/pii_addresses.py [--only GROUP ...] [--show N [--unmatched]]

Every ADDRESS span is pseudonymized on the way to an external backend, so one found in a court
judgment's case number ("Civil Appeal 1902 of 2012"), a date or a law-report citation breaks the
text a team sends. These corpora label people, places and organisations but not addresses, and
their sentences hold few: the spans found per 1,000 sentences are mostly false, and "matching
nothing" counts those that overlap no labelled entity (a real address usually holds a labelled
town). Sentences are detokenized first (no space before , . ; : ! ? ) or after ( ), as real text
is written. Recall is `bench/pii_eval.py`'s ADDRESS row on the dev file and the generated prompts of
tests/pii/test_leak.py. Needs the converted groups (`training/ner/sources/*.py`).
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.pii.addresses import StreetAddressRecognizer


def detokenize(tokens: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """The sentence as written, and each token's character span in it."""
    text, spans = "", []
    for i, t in enumerate(tokens):
        glue = i == 0 or re.fullmatch(r"[,.;:!?)\]]", t) or tokens[i - 1] in ("(", "[")
        if not glue:
            text += " "
        spans.append((len(text), len(text) + len(t)))
        text += t
    return text, spans


def main(argv: list[str] | None = None) -> int:
    from training.ner.dataset import GENRE, load_all
    from training.ner.fit import entities

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", help="these groups only")
    ap.add_argument("--show", type=int, default=0, help="print N random spans of each group")
    ap.add_argument("--unmatched", action="store_true", help="with --show: only spans matching no entity")
    args = ap.parse_args(argv)
    recognizer = StreetAddressRecognizer()
    by_group = load_all()
    print(f"{'group (genre)':42} {'sentences':>9} {'ADDRESS':>8} {'per 1k':>7} {'matching nothing':>17}")
    for name in args.only or sorted(by_group):
        if name in ("generated-chat", "pii-dev"):  # ours, and the dev file (its addresses are labelled)
            continue
        found, nothing, shown = 0, 0, []
        for tokens, tags in by_group[name]:
            text, spans = detokenize(tokens)
            gold = [(spans[a][0], spans[b - 1][1]) for _k, a, b in entities(tags)]
            for r in recognizer.analyze(text, ["ADDRESS"]):
                found += 1
                matched = any(a < r.end and r.start < b for a, b in gold)
                nothing += not matched
                if not (matched and args.unmatched):
                    shown.append(text[max(0, r.start - 30) : r.start] + "[[" + text[r.start : r.end] + "]]")
        n = len(by_group[name])
        share = f"{nothing / found:.0%}" if found else "-"
        print(f"{name + ' (' + GENRE.get(name, '?') + ')':42} {n:>9} {found:>8} {1000 * found / n:>7.1f} {share:>17}")
        for s in random.Random(0).sample(shown, min(args.show, len(shown))):
            print("     ", s.replace("\n", " | "))
    return 0


if __name__ == "__main__":
    sys.exit(main())
