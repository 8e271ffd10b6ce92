"""Names, places and organisations by source, each scored by a tagger that never saw it.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/train_ner.py --folds      # the left-out models, once
    HF_HUB_OFFLINE=1 .venv/bin/python bench/pii_eval.py --by-source [--per-source 600] [--recall-first]

For every group of training sources (`training/ner/dataset.py`), the analyzer runs with the tagger
trained on all the other groups (`training/ner/build/folds/GROUP.npz`; for a group the recipe holds
back, `HELD_BACK`, the shipped weights, which never saw it) over a fixed-seed sample of that group's
sentences, each its own request, written as its words joined by spaces, or with `--passages
CHARS`, running text: the group's consecutive sentences joined up to CHARS characters a request
(requests are often paragraphs, and a tagger can read a sentence alone better than the same
sentence inside one). Beside it:
vanilla Presidio (its defaults, spaCy's small model). (The hand-written name and place rules that
the tagger replaced were scored here too before they were deleted: bench/RESULTS.md.) Recall per type is
per gold entity (found by an overlapping prediction of the same type); precision per prediction
(overlaps a gold entity of the same type); "any" counts a prediction right when it overlaps any
gold entity, as the gateway replaces the stretch whatever its label, and "covered" counts a gold
entity that a prediction of any type overlaps (what does not leak). 95% Wilson intervals.
@mentions and #hashtags are scored on neither side: the Broad Twitter Corpus labels a few as
persons and most not.

The policy enables PERSON, LOCATION and ORGANIZATION only, so that the corpora's labels are the
whole answer key (they label no e-mails or phone numbers). The headline rows are the means over the
left-out groups; `generated-chat` is ours and is never scored.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TYPES = {"PER": "PERSON", "LOC": "LOCATION", "ORG": "ORGANIZATION"}
DEFAULT = "default policy"


def as_text(tokens: list[str], tags: list[str]) -> tuple[str, list[tuple[str, int, int]]]:
    """The sentence as one text (words joined by spaces) and its gold entities as character spans."""
    from training.ner.fit import entities

    starts, pos = [], 0
    for t in tokens:
        starts.append(pos)
        pos += len(t) + 1
    text = " ".join(tokens)
    gold = [(TYPES[k], starts[a], starts[b - 1] + len(tokens[b - 1])) for k, a, b in entities(tags)]
    return text, gold


def as_passages(rows: list, count: int, chars: int, seed: int = 11) -> list[tuple[str, list[tuple[str, int, int]]]]:
    """`count` texts of running prose: from a fixed-seed start, the group's consecutive sentences (in
    corpus order) joined by spaces up to `chars` characters, with their gold entities."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        i = rng.randrange(max(1, len(rows) - 1))
        text, gold = "", []
        while i < len(rows):
            t, g = as_text(*rows[i])
            if text and len(text) + 1 + len(t) > chars:
                break
            shift = len(text) + 1 if text else 0
            text = f"{text} {t}" if text else t
            gold += [(k, a + shift, b + shift) for k, a, b in g]
            i += 1
        out.append((text, gold))
    return out


def _handle(text: str, start: int, end: int) -> bool:
    """Wholly inside an @mention or #hashtag ("@Peter_Reith", "#happyboy"): the Broad Twitter Corpus
    labels a few of them as persons and most not (its guidelines), so they are noise either way and
    are scored on neither side. (A span that runs on past the handle is scored.)"""
    lo = start + 1 if text[start : start + 1] in ("@", "#") else start
    while lo > 0 and (text[lo - 1].isalnum() or text[lo - 1] == "_"):
        lo -= 1
    # The corpus's tokens split "#happyboy" into "#" and "happyboy", joined here by a space.
    marked = lo > 0 and text[lo - 1] in "@#" or text[max(0, lo - 3) : lo] in (" # ", "# ")
    hi = max(lo, start)
    while hi < len(text) and (text[hi].isalnum() or text[hi] == "_"):
        hi += 1
    return marked and end <= hi


def score(texts: list[str], gold: list[list[tuple]], pred: list[list[tuple]]) -> dict:
    out = {t: {"gold": 0, "found": 0, "covered": 0, "pred": 0, "right": 0} for t in TYPES.values()}
    out["any"] = {"pred": 0, "right": 0}
    for text, g, p in zip(texts, gold, pred, strict=True):
        g = [e for e in g if not _handle(text, e[1], e[2])]
        p = [e for e in p if not _handle(text, e[1], e[2])]
        for t, a, b in g:
            out[t]["gold"] += 1
            out[t]["found"] += any(t2 == t and a2 < b and a < b2 for t2, a2, b2 in p)
            out[t]["covered"] += any(a2 < b and a < b2 for _, a2, b2 in p)  # replaced, whatever the label
        for t, a, b in p:
            # Any type counts for "any": a span the default policy finds (an ADDRESS, a phone) is
            # rewritten on the way out whatever its type, and where it overlaps no entity it is noise.
            if t in out:
                out[t]["pred"] += 1
                out[t]["right"] += any(t2 == t and a2 < b and a < b2 for t2, a2, b2 in g)
            out["any"]["pred"] += 1
            out["any"]["right"] += any(a2 < b and a < b2 for _, a2, b2 in g)
    return out


def systems(fold: Path, recall_first: bool, threshold: float | None, default_policy: bool = False):
    """name -> function(texts) -> [[(type, start, end)]]. `default_policy`: also the same tagger under
    the default policy (every entity type it finds: addresses, numbers), scored on the same labels."""
    from gateway.pii.analyzer import PiiAnalyzer
    from gateway.pii.config import PiiPolicy
    from gateway.pii.tagger import NameTagger

    entities = sorted(TYPES.values())
    thresholds = {t: threshold for t in entities} if threshold is not None else {}
    policy = PiiPolicy(entities=entities, thresholds=thresholds)
    if recall_first:
        policy = PiiPolicy(entities=entities, thresholds=thresholds,
                           recall_first={"PERSON": 0.15, "LOCATION": 0.25})
    tagger = NameTagger(fold)
    ours = PiiAnalyzer(policy, tagger=tagger)
    out = {"tagger": lambda texts: [[(e.type, e.start, e.end) for e in ours.analyze([t])[0]] for t in texts]}
    if default_policy:
        full = PiiAnalyzer(PiiPolicy(), tagger=tagger)
        out[DEFAULT] = lambda texts: [[(e.type, e.start, e.end) for e in full.analyze([t])[0]] for t in texts]
    return out


def vanilla():
    from pii import vanilla_presidio  # bench/pii.py, beside this script

    engine = vanilla_presidio()
    wanted = sorted(TYPES.values())

    def run(texts):
        return [[(r.entity_type, r.start, r.end) for r in engine.analyze(t, language="en", entities=wanted)]
                for t in texts]

    return run


def run(per_source: int = 600, recall_first: bool = False, only: list[str] | None = None,
        threshold: float | None = None, folds: Path | None = None, passages: int = 0, baseline: bool = True,
        default_policy: bool = False, show_false: int = 0) -> int:
    from pii_eval import wilson  # beside this script

    from scripts.train_ner import FOLDS, SCORED, left_out_weights
    from training.ner.dataset import GENRE, load_all

    by_group = load_all()
    others = [("vanilla Presidio", vanilla())] if baseline else []
    table = []
    for name in only or SCORED:
        fold = left_out_weights(name, folds or FOLDS)
        if not fold.is_file():
            print(f"{name}: no left-out model at {fold}; run scripts/train_ner.py --folds")
            continue
        rows = by_group[name]
        if passages:  # as many characters of running text as the sentences would give, about
            texts, gold = zip(*as_passages(rows, max(1, per_source * 130 // passages), passages), strict=True)
        else:
            sample = rows if len(rows) <= per_source else random.Random(5).sample(rows, per_source)
            texts, gold = zip(*(as_text(t, g) for t, g in sample), strict=True)
        texts, gold = list(texts), list(gold)
        found = {}
        t0 = time.perf_counter()
        for label, fn in [*systems(fold, recall_first, threshold, default_policy).items(), *others]:
            predicted = fn(texts)
            found[label] = score(texts, gold, predicted)
            if label == "tagger" and show_false:
                false_people = _false_people(texts, gold, predicted)
        unit = f"passages of up to {passages} characters" if passages else "sentences"
        print(f"\n{name} ({GENRE.get(name, '?')}), {len(texts)} {unit}, {time.perf_counter() - t0:.0f} s")
        print(f"  {'system':18} {'PERSON rec':>20} {'LOCATION rec':>20} {'ORG rec':>20} "
              f"{'PERSON prec':>12} {'any prec':>9} {'PERSON cov':>10} {'LOC cov':>8}")
        for label, s in found.items():
            cells = []
            for t in ("PERSON", "LOCATION", "ORGANIZATION"):
                k, n = s[t]["found"], s[t]["gold"]
                lo, hi = wilson(k, n)
                cells.append(f"{k / n:.3f} [{lo:.2f}-{hi:.2f}] {n:>4}" if n else f"{'-':>20}")
            pp = s["PERSON"]["right"] / s["PERSON"]["pred"] if s["PERSON"]["pred"] else float("nan")
            ap = s["any"]["right"] / s["any"]["pred"] if s["any"]["pred"] else float("nan")
            pc, lc = (s[t]["covered"] / s[t]["gold"] if s[t]["gold"] else float("nan") for t in ("PERSON", "LOCATION"))
            print(f"  {label:18} {cells[0]:>20} {cells[1]:>20} {cells[2]:>20} {pp:12.3f} {ap:9.3f} "
                  f"{pc:10.3f} {lc:8.3f}")
            table.append((name, label, s))
        if show_false:
            sample = random.Random(3).sample(false_people, min(show_false, len(false_people)))
            print(f"  {len(false_people)} PERSON predictions overlap no labelled person; {len(sample)} of them:")
            for kind, context in sample:
                print(f"    [{kind}] {context}")
    print("\nmean over left-out groups (each group weighing the same):")
    for label in ("tagger", DEFAULT, "vanilla Presidio"):
        rows = [s for _, lab, s in table if lab == label]
        if not rows:
            continue
        cells = [_mean(rows, t, "found") for t in ("PERSON", "LOCATION", "ORGANIZATION")]
        covered = [_mean(rows, t, "covered") for t in ("PERSON", "LOCATION")]
        pvals = [s["PERSON"]["right"] / s["PERSON"]["pred"] for s in rows if s["PERSON"]["pred"] >= 20]
        avals = [s["any"]["right"] / s["any"]["pred"] for s in rows if s["any"]["pred"] >= 20]
        pp = f"{sum(pvals) / len(pvals):.3f}" if pvals else "-"
        ap = f"{sum(avals) / len(avals):.3f}" if avals else "-"
        print(f"  {label:18} PERSON {cells[0]}  LOCATION {cells[1]}  ORG {cells[2]}  "
              f"PERSON precision {pp}  any precision {ap}   (types with >= 20 entities)")
        print(f"  {'':18} covered by a span of any type: PERSON {covered[0]}  LOCATION {covered[1]}")
    return 0


def _false_people(texts: list[str], gold: list[list[tuple]], pred: list[list[tuple]]) -> list[tuple[str, str]]:
    """(what it overlaps: another type or nothing, the prediction in [[brackets]] with 50 characters
    either side) for each PERSON prediction that overlaps no labelled person."""
    out = []
    for text, g, p in zip(texts, gold, pred, strict=True):
        for t, a, b in p:
            if t != "PERSON" or _handle(text, a, b):
                continue
            over = [t2 for t2, a2, b2 in g if a2 < b and a < b2]
            if "PERSON" in over:
                continue
            kind = over[0] if over else "nothing"
            out.append((kind, f"{text[max(0, a - 50):a]}[[{text[a:b]}]]{text[b:b + 50]}".replace("\n", " ")))
    return out


def _mean(rows: list[dict], t: str, key: str) -> str:
    """The mean over groups of `key` per gold entity of type `t` (groups with >= 20 of them)."""
    vals = [s[t][key] / s[t]["gold"] for s in rows if s[t]["gold"] >= 20]
    return f"{sum(vals) / len(vals):.3f}" if vals else "-"
