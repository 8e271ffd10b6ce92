"""Precision and recall of the PII engine on the labelled evaluation sets.

    .venv/bin/python bench/pii_eval.py [--evals DIR] [--policy FILE] [--all-entities] [--vanilla]
                                       [--split all|tune|holdout]

Data: `pii-dev.jsonl` (per-span labels, 17 types) and `secrets-dev.jsonl` (per-snippet labels),
by default in `../shared/evals` next to the repository. `--vanilla` scores plain Presidio
(`AnalyzerEngine` defaults with the same spaCy model) for comparison.

How spans are matched:
- exact: same type, same start and end.
- overlap: same type and the two spans share at least one letter or digit (token overlap).
Recall is per gold span (found by some prediction), precision per prediction (matches some gold
span). 95% Wilson intervals are given because several types have fewer than 25 spans.

Splits: `--split holdout` scores only the records whose SHA-256 of the id is 0 mod 5 (about a
fifth, fixed by the id, not by the content); `--split tune` the other four fifths. (They served
the hand-written name rules that the learned tagger replaced.) The shipped tagger was trained on
this whole file among its other sources, so its PERSON, LOCATION and ORGANIZATION figures here are
fitted ones: the figures that count are `--by-source`, each source scored by a tagger trained
without it (bench/pii_by_source.py).

How the types Presidio has no recognizer for are handled:
- ADDRESS (street addresses) is scored as its own type against our StreetAddressRecognizer, and
  again in the "location family" view, where ADDRESS, LOCATION and ZIP_CODE count as one type
  (presidio-research's convention of folding addresses into LOCATION, stated as such).
- ZIP_CODE has no recognizer of its own (a bare 5-digit number is not identifying); its recall is
  reported in the location-family view only (found when an ADDRESS/LOCATION span covers it).
- AGE and TITLE are not detected by design ("Dr." or "42" identify nobody, and rewriting them
  makes answers worse); they are listed with their counts and excluded from precision.
- Types the default policy does not enable (ORGANIZATION, DATE_TIME, NRP, URL) are listed as
  "off"; pass --all-entities to score them too.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.pii.config import KNOWN_ENTITIES, PiiPolicy

REPO = Path(__file__).resolve().parents[1]
DEFAULT_EVALS = REPO.parent / "shared" / "evals"
LOCATION_FAMILY = {"ADDRESS", "LOCATION", "ZIP_CODE"}
NOT_DETECTED = {"AGE", "TITLE"}
RECALL_TARGETS = {
    "EMAIL_ADDRESS": 0.95,
    "PHONE_NUMBER": 0.95,
    "CREDIT_CARD": 0.95,
    "US_SSN": 0.95,
    "IBAN_CODE": 0.95,
    "IP_ADDRESS": 0.95,
    "PERSON": 0.85,
    "LOCATION": 0.85,
}


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 0.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def _overlap(text: str, a: tuple[int, int], b: tuple[int, int]) -> bool:
    lo, hi = max(a[0], b[0]), min(a[1], b[1])
    return lo < hi and any(ch.isalnum() for ch in text[lo:hi])


def in_split(record_id: str, split: str) -> bool:
    if split == "all":
        return True
    holdout = int(hashlib.sha256(record_id.encode()).hexdigest(), 16) % 5 == 0
    return holdout == (split == "holdout")


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def detector(args) -> tuple[callable, set[str]]:
    """A function texts -> [[(type, start, end)]], and the entity types it was asked for."""
    if args.vanilla:
        from pii import vanilla_presidio  # bench/pii.py, beside this script

        engine = vanilla_presidio()

        def run(texts):
            return [
                [(r.entity_type, r.start, r.end) for r in engine.analyze(t, language="en")] for t in texts
            ]

        return run, set(engine.get_supported_entities("en"))

    from gateway.pii.analyzer import PiiAnalyzer

    policy = load_policy(args.policy) if args.policy else PiiPolicy()
    if args.all_entities:
        policy = policy.model_copy(update={"entities": sorted(KNOWN_ENTITIES)})
    analyzer = PiiAnalyzer(policy)

    def run(texts):
        # One request per record: a name found in one must not be looked for in the others.
        return [[(e.type, e.start, e.end) for e in analyzer.analyze([t])[0]] for t in texts]

    return run, set(policy.active_entities)


def load_policy(path: str) -> PiiPolicy:
    import yaml

    doc = yaml.safe_load(Path(path).read_text()) or {}
    return PiiPolicy.model_validate(doc.get("pii", doc))


def _in_address_block(text: str, span: dict, gold: list[dict]) -> bool:
    """Whether a gold LOCATION is a line of a postal address (a gold ADDRESS within 120 characters
    and no blank line between them): the city and country lines that the data labels LOCATION in
    some records and as part of one ADDRESS span in others."""
    for a in gold:
        if a["type"] != "ADDRESS":
            continue
        lo, hi = min(a["start"], span["start"]), max(a["end"], span["end"])
        between = re.sub(r"[ \t]*\n[ \t]*", "\n", text[lo:hi])
        if hi - lo < 120 and "\n\n" not in between:
            return True
    return False


def score_pii(records: list[dict], predictions: list[list[tuple]], enabled: set[str]) -> dict:
    gold_types = sorted(
        {s["type"] for r in records for s in r["spans"]} | {p[0] for ps in predictions for p in ps}
    )
    stats = {t: defaultdict(int) for t in gold_types}
    family = defaultdict(int)
    any_pii = defaultdict(int)
    for rec, preds in zip(records, predictions, strict=True):
        text, gold = rec["text"], rec["spans"]
        for g in gold:
            st = stats[g["type"]]
            st["gold"] += 1
            span = (g["start"], g["end"])
            if any(p[0] == g["type"] and (p[1], p[2]) == span for p in preds):
                st["rec_exact"] += 1
            if any(p[0] == g["type"] and _overlap(text, (p[1], p[2]), span) for p in preds):
                st["rec_overlap"] += 1
            if g["type"] == "LOCATION" and not _in_address_block(text, g, gold):
                family["standalone:gold"] += 1
                if any(p[0] == "LOCATION" and _overlap(text, (p[1], p[2]), span) for p in preds):
                    family["standalone:found"] += 1
            if g["type"] in LOCATION_FAMILY:
                family[g["type"] + ":gold"] += 1
                if any(p[0] in LOCATION_FAMILY and _overlap(text, (p[1], p[2]), span) for p in preds):
                    family[g["type"] + ":found"] += 1
        for p in preds:
            st = stats[p[0]]
            st["pred"] += 1
            span = (p[1], p[2])
            if any(g["type"] == p[0] and (g["start"], g["end"]) == span for g in gold):
                st["prec_exact"] += 1
            if any(g["type"] == p[0] and _overlap(text, span, (g["start"], g["end"])) for g in gold):
                st["prec_overlap"] += 1
            if p[0] in LOCATION_FAMILY:
                family["pred"] += 1
                if any(
                    g["type"] in LOCATION_FAMILY and _overlap(text, span, (g["start"], g["end"]))
                    for g in gold
                ):
                    family["pred_ok"] += 1
            any_pii["pred"] += 1
            if any(_overlap(text, span, (g["start"], g["end"])) for g in gold):
                any_pii["pred_ok"] += 1
    return {"types": stats, "family": family, "any": any_pii, "enabled": enabled}


def print_pii(result: dict, n_records: int, seconds: float) -> bool:
    stats, enabled = result["types"], result["enabled"]
    print(
        f"pii-dev.jsonl: {n_records} records, {sum(s['gold'] for s in stats.values())} gold spans, "
        f"analysed in {seconds:.1f}s\n"
    )
    print(
        f"{'type':<18}{'gold':>5}{'pred':>6}  {'recall exact':>12}  {'recall overlap [95% CI]':>25}  "
        f"{'prec exact':>10}  {'prec overlap':>12}  target"
    )
    ok = True
    tot = defaultdict(int)
    for t, st in sorted(stats.items(), key=lambda kv: -kv[1]["gold"]):
        if t in NOT_DETECTED or (t not in enabled and t != "ZIP_CODE"):
            why = "not detected by design" if t in NOT_DETECTED else "off in this policy"
            print(f"{t:<18}{st['gold']:>5}{st['pred']:>6}  {why}")
            continue
        if t == "ZIP_CODE":
            print(
                f"{t:<18}{st['gold']:>5}{st['pred']:>6}  no recognizer of its own; see location family below"
            )
            continue
        g, p = st["gold"], st["pred"]
        lo, hi = wilson(st["rec_overlap"], g)
        rec_o = st["rec_overlap"] / g if g else float("nan")
        target = RECALL_TARGETS.get(t)
        mark = ""
        if target is not None:
            met = rec_o >= target
            ok &= met
            mark = f"recall>={target:.2f} {'ok' if met else 'MISSED'}"
        print(
            f"{t:<18}{g:>5}{p:>6}  {st['rec_exact'] / g if g else float('nan'):>12.3f}  "
            f"{rec_o:>8.3f} [{lo:.3f}-{hi:.3f}]      "
            f"{st['prec_exact'] / p if p else float('nan'):>10.3f}  "
            f"{st['prec_overlap'] / p if p else float('nan'):>12.3f}  {mark}"
        )
        for k in ("pred", "prec_exact", "prec_overlap"):
            tot[k] += st[k]
    prec_o = tot["prec_overlap"] / tot["pred"] if tot["pred"] else float("nan")
    prec_ok = prec_o >= 0.85
    ok &= prec_ok
    print(
        f"\noverall precision (typed): exact {tot['prec_exact'] / max(tot['pred'], 1):.3f}, "
        f"overlap {prec_o:.3f} over {tot['pred']} predictions  target>=0.85 {'ok' if prec_ok else 'MISSED'}"
    )
    a = result["any"]
    print(
        f"precision as scrubbing (prediction overlaps a gold span of any type): "
        f"{a['pred_ok'] / max(a['pred'], 1):.3f}"
    )
    f = result["family"]
    print("\nlocation family (ADDRESS, LOCATION, ZIP_CODE as one type, overlap match):")
    for t in ("ADDRESS", "LOCATION", "ZIP_CODE"):
        g, k = f[t + ":gold"], f[t + ":found"]
        if g:
            lo, hi = wilson(k, g)
            print(f"  recall {t:<9} {k / g:.3f} [{lo:.3f}-{hi:.3f}] of {g}")
    if f["pred"]:
        print(f"  precision {f['pred_ok'] / f['pred']:.3f} of {f['pred']} predictions")
    g, k = f["standalone:gold"], f["standalone:found"]
    if g:
        lo, hi = wilson(k, g)
        print(
            f"LOCATION outside postal addresses (strict type, overlap match): {k / g:.3f} [{lo:.3f}-{hi:.3f}] "
            f"of {g}; the other {f['LOCATION:gold'] - g} are city/country lines of addresses, "
            f"reported inside the ADDRESS span"
        )
    return ok


def eval_secrets(path: Path, run, benign_path: Path | None) -> bool:
    records = read_jsonl(path)
    pos = [r for r in records if r["label"] == "secret"]
    neg = [r for r in records if r["label"] != "secret"]
    found = [any(t == "SECRET" for t, *_ in ents) for ents in run([r["text"] for r in pos])]
    k = sum(found)
    lo, hi = wilson(k, len(pos))
    flagged = sum(any(t == "SECRET" for t, *_ in ents) for ents in run([r["text"] for r in neg]))
    print(
        f"\nsecrets-dev.jsonl: {len(records)} records; secret recall {k / len(pos):.3f} [{lo:.3f}-{hi:.3f}] "
        f"({k}/{len(pos)}) target>=0.90 {'ok' if k / len(pos) >= 0.9 else 'MISSED'}; "
        f"negatives flagged {flagged}/{len(neg)} (rule look-alikes, several are real random strings)"
    )
    if benign_path and benign_path.exists():
        benign = [r for r in read_jsonl(benign_path) if r.get("label") == "benign"]
        fp = sum(any(t == "SECRET" for t, *_ in ents) for ents in run([r["text"] for r in benign]))
        print(f"injection-dev.jsonl benign prompts flagged as containing a secret: {fp}/{len(benign)}")
    return k / len(pos) >= 0.9


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--evals", type=Path, default=DEFAULT_EVALS, help="directory with the .jsonl files")
    ap.add_argument("--pii", type=Path, help="pii-dev.jsonl (default: EVALS/pii-dev.jsonl)")
    ap.add_argument("--secrets", type=Path, help="secrets-dev.jsonl (default: EVALS/secrets-dev.jsonl)")
    ap.add_argument("--policy", help="YAML file whose `pii:` section is the policy (default: PiiPolicy())")
    ap.add_argument("--all-entities", action="store_true", help="enable every known entity type")
    ap.add_argument("--vanilla", action="store_true", help="score plain Presidio defaults instead")
    ap.add_argument("--limit", type=int, help="first N records only (quick runs)")
    ap.add_argument(
        "--split",
        choices=["all", "tune", "holdout"],
        default="all",
        help="pii-dev records to score: all, the four fifths used for tuning, or the held-out fifth",
    )
    ap.add_argument("--by-source", action="store_true",
                    help="names, places, organisations per training source, each scored left out (pii_by_source.py)")
    ap.add_argument("--per-source", type=int, default=600, help="with --by-source: sentences per source")
    ap.add_argument("--recall-first", action="store_true", help="with --by-source: the recall-first thresholds")
    ap.add_argument("--only", nargs="*", help="with --by-source: these sources only")
    ap.add_argument("--threshold", type=float, help="with --by-source: the names' threshold (policy default else)")
    ap.add_argument("--folds-dir", type=Path,
                    help="with --by-source: the left-out models (default: scripts/train_ner.py's folds)")
    ap.add_argument("--passages", type=int, default=0, metavar="CHARS",
                    help="with --by-source: score running text, consecutive sentences joined up to CHARS "
                         "characters per request, instead of one sentence per request")
    ap.add_argument("--no-vanilla", action="store_true", help="with --by-source: the tagger only (faster)")
    ap.add_argument("--default-policy", action="store_true",
                    help="with --by-source: also the same tagger under the default policy, every type it "
                         "finds counted in 'any prec' (addresses and numbers over-scrub too)")
    ap.add_argument("--show-false", type=int, default=0, metavar="N",
                    help="with --by-source: print N fixed-seed PERSON predictions per group that overlap no "
                         "labelled person, with their context (to read what the labels call wrong)")
    args = ap.parse_args(argv)
    if args.by_source:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from pii_by_source import run as by_source

        return by_source(args.per_source, args.recall_first, args.only, args.threshold, args.folds_dir,
                         args.passages, not args.no_vanilla, args.default_policy, args.show_false)
    pii_path = args.pii or args.evals / "pii-dev.jsonl"
    secrets_path = args.secrets or args.evals / "secrets-dev.jsonl"
    run, enabled = detector(args)
    records = [r for r in read_jsonl(pii_path) if in_split(r["id"], args.split)][: args.limit]
    t0 = time.perf_counter()
    predictions = run([r["text"] for r in records])
    result = score_pii(records, predictions, enabled)
    ok = print_pii(result, len(records), time.perf_counter() - t0)
    if "SECRET" in enabled:
        ok &= eval_secrets(secrets_path, run, args.evals / "injection-dev.jsonl")
    else:
        print("\nsecrets: this detector has no SECRET entity; skipped")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
