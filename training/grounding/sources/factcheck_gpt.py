#!/usr/bin/env python3
"""Factcheck-GPT (Wang et al. 2023, Apache-2.0) -> training/grounding/build/factcheck_gpt.jsonl

Atomic claims decomposed from 94 ChatGPT answers, each paired with web passages retrieved for it;
annotators judged the stance of every (passage, claim) pair: completely-support /
partially-support / refute / irrelevant (subtasks/subtask3_claim_evidence_stance.jsonl). The user
prompt that produced the answer is joined in from factcheck-GPT-benchmark.jsonl as the question.

    python3 training/grounding/sources/factcheck_gpt.py --mirrors DIR
"""
from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common

REPO = "yuxiaw/Factcheck-GPT"
COMMIT = "a9e6a04a953ad880806529c504a679dd1ad06528"
STANCE = "subtasks/subtask3_claim_evidence_stance.jsonl"
BENCH = "factcheck-GPT-benchmark.jsonl"
PATHS = [STANCE, BENCH]
LICENCE = "Apache-2.0 (LICENSE)"
LABELS = {"completely-support": "supported", "partially-support": "hallucinated",
          "refute": "hallucinated", "irrelevant": "hallucinated"}
NOTES = ("Passage-level grounding: context = one retrieved web passage, answer = one atomic claim from "
         "a ChatGPT answer, question = the user prompt of that answer. Human stance labels mapped: "
         "completely-support -> supported; partially-support, refute, irrelevant -> hallucinated "
         "(the passage does not back the whole claim); pairs listed twice with conflicting stances "
         "(7) are dropped. 'irrelevant' pairs (2057 of 3305) are kept at "
         "most one per claim (the first listed) so they do not swamp the set; they are topical "
         "retrieval misses, i.e. hard 'not in context' negatives. Labels are about the passage, not "
         "world truth: a true claim with an irrelevant passage is 'hallucinated' here. Family 'rag'. "
         "No spans. Passages are third-party web snippets (search results) redistributed by the "
         "authors; the repo licence (Apache-2.0) is the authors' grant.")


def records(mirrors: str):
    prompt_of = {}
    for line in common.git_text(mirrors, REPO, COMMIT, BENCH).splitlines():
        if line.strip():
            d = json.loads(line)
            for sent in d["sentences"].values():
                for claim in sent.get("claims", []):
                    prompt_of.setdefault(claim.strip(), d["prompt"].strip())
    rows = [json.loads(line) for line in common.git_text(mirrors, REPO, COMMIT, STANCE).splitlines()
            if line.strip()]
    stances = {}
    for d in rows:
        stances.setdefault((d["claim"].strip(), d["evidence"].strip()), set()).add(d["stance"])
    irrelevant_seen = set()
    for i, d in enumerate(rows):
        claim = d["claim"].strip()
        stance = d["stance"]
        if stance not in LABELS or len(stances[(claim, d["evidence"].strip())]) > 1:
            continue  # unknown stance, or the same pair listed with conflicting stances
        if stance == "irrelevant":
            if claim in irrelevant_seen:
                continue
            irrelevant_seen.add(claim)
        yield {"id": f"{i}", "family": "rag", "context": d["evidence"].strip(),
               "question": prompt_of.get(claim, ""), "answer": claim, "label": LABELS[stance]}


def main() -> None:
    args = common.standard_args(__doc__.splitlines()[0], __file__).parse_args()
    common.convert(args, source="factcheck_gpt", records=records(args.mirrors), repo=REPO,
                   commit=COMMIT, paths=PATHS, licence=LICENCE, notes=NOTES)


if __name__ == "__main__":
    main()
