#!/usr/bin/env python3
"""BUMP (Ma et al. 2023, MIT) -> training/grounding/build/bump.jsonl

Benchmark of Unfaithful Minimal Pairs: for CNN/DailyMail test articles, annotators took the
reference summary and introduced exactly one factual error by a minimal edit (task 1: a given
error type from a taxonomy; task 2: free-style). Reference -> supported, edited -> hallucinated,
with the edited region (word diff against the reference) as the unsupported span. Read from
dataminr-ai/BUMP data/task{1,2}_dataset.json.

    python3 training/grounding/sources/bump.py --mirrors DIR
"""
from __future__ import annotations

import difflib
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common

REPO = "dataminr-ai/BUMP"
COMMIT = "86327f14b9e0c16a364a3793b8a622dc703d22fd"
PATHS = ["data/task1_dataset.json", "data/task2_dataset.json"]
LICENCE = "MIT (LICENSE)"
MAX_SPAN_FRACTION = 0.6  # a diff covering more of the summary than this is not localised
NOTES = ("family=summary, question=''. CNN/DM reference summary -> supported (the faithful half "
         "of each BUMP pair; not re-verified here, and CNN/DM highlights occasionally carry "
         "details absent from the article); human-edited summary with one deliberately introduced "
         "error (intrinsic/extrinsic predicate, entity, circumstance, coreference) -> "
         "hallucinated. spans = character ranges of the edited summary that differ from the "
         "reference (difflib over word and punctuation tokens; punctuation-only changes ignored); "
         "where the edit only deletes words, the words on both "
         "sides of the deletion are marked; no spans where the diff covers > 60% of the summary. "
         "Spans mark the edited words, which can be narrower or wider than the full unsupported "
         "claim. Several edits share one article and reference (~300 articles, ~890 edits). "
         "Documents are CNN/DailyMail news articles (publishers' copyright), the same CNN/DM test "
         "set used by FRANK, SummEval, HaluEval and others, so articles can recur across sources. "
         "Cite Ma et al. 2023, ACL (BUMP).")


def words(text: str):
    # words and punctuation as separate tokens, so "radios ." and "radios." compare equal
    return [(m.start(), m.end(), m.group()) for m in re.finditer(r"\w+|[^\w\s]", text)]


def is_punct(toks) -> bool:
    return all(not re.match(r"\w", w) for _, _, w in toks)


def diff_spans(ref: str, edited: str):
    a, b = words(ref), words(edited)
    sm = difflib.SequenceMatcher(a=[w for _, _, w in a], b=[w for _, _, w in b], autojunk=False)
    spans = []
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        if op == "equal" or (is_punct(a[i1:i2]) and is_punct(b[j1:j2])):
            continue  # unchanged, or a punctuation/spacing-only change
        if j2 > j1:
            spans.append([b[j1][0], b[j2 - 1][1]])
        elif b:  # pure deletion: mark the neighbouring words in the edited summary
            lo, hi = max(j1 - 1, 0), min(j1, len(b) - 1)
            spans.append([b[lo][0], b[hi][1]])
    spans.sort()
    merged = []
    for s, e in spans:
        if merged and s <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    if not merged or sum(e - s for s, e in merged) > MAX_SPAN_FRACTION * len(edited):
        return None
    return merged


def records(mirrors: str):
    for path in PATHS:
        task = path.rsplit("/", 1)[1].split("_")[0]
        for ex in json.loads(common.git_text(mirrors, REPO, COMMIT, path)):
            doc = ex["article"].strip()
            ref = ex["reference_summary"].strip()
            edited = ex["edited_summary"].strip()
            if not doc or not ref or not edited or ref == edited:
                continue
            yield {"id": f"{task}:article{ex['article_id']}:reference", "family": "summary",
                   "context": doc, "question": "", "answer": ref, "label": "supported"}
            rec = {"id": f"{task}:{ex['id']}", "family": "summary", "context": doc,
                   "question": "", "answer": edited, "label": "hallucinated"}
            spans = diff_spans(ref, edited)
            if spans:
                rec["spans"] = spans
            yield rec


def main() -> None:
    args = common.standard_args(__doc__.splitlines()[0], __file__).parse_args()
    common.convert(args, source="bump", records=records(args.mirrors), repo=REPO, commit=COMMIT,
                   paths=PATHS, licence=LICENCE, notes=NOTES)


if __name__ == "__main__":
    main()
