#!/usr/bin/env python3
"""ContractNLI (Koreeda & Manning 2021, CC BY 4.0) -> training/grounding/build/contractnli.jsonl

Document-level NLI over non-disclosure agreements: 17 fixed hypotheses ("Receiving Party shall not
reverse engineer ...") judged against each whole contract as Entailment / Contradiction /
NotMentioned, with evidence spans. context = the contract (or an excerpt, see NOTES), question = "",
answer = hypothesis; Entailment -> supported, Contradiction and NotMentioned -> hallucinated.

The official zip (stanfordnlp/contract-nli resources/contract-nli.zip) is >= 4 MiB and not in the
snapshot; this reads the unmodified dev.json / test.json and the first 50 train documents
(train_truncated.json, made by that repo's data/truncate.py) from TAOC0002/contract-nli, which
also carries the dataset's LICENSE (CC BY 4.0) and TERMS.

    python3 training/grounding/sources/contractnli.py --mirrors DIR
"""
from __future__ import annotations

import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common

REPO = "TAOC0002/contract-nli"
COMMIT = "5f8ba82dde87a5b9019b518652ea4c41edf456d8"
PATHS = ["data/contract-nli/dev.json", "data/contract-nli/test.json",
         "data/contract-nli/train_truncated.json"]
LICENCE = ("CC BY 4.0 (data/contract-nli/LICENSE and data/contract-nli/TERMS: Hitachi America "
           "terms grant use under CC BY 4.0; same as stanfordnlp/contract-nli LICENSE/index.md)")
LABELS = {"Entailment": "supported", "Contradiction": "hallucinated",
          "NotMentioned": "hallucinated"}
BUDGET = 11000   # characters of contract text per context (common.MAX_CONTEXT_CHARS is 12000)
GAP = "\n[...]\n"
NOTES = ("Legal domain (NDAs from SEC filings and web PDFs), document-level premise. Entailment -> "
         "supported; Contradiction and NotMentioned -> hallucinated (raw: 1876 / 429 / 1673, so "
         "no rebalancing). Contracts up to 11000 chars are used whole; longer ones are cut to an "
         "excerpt of the contract's own spans (sentences / list items) in document order with "
         "'[...]' marking omitted text: for Entailment/Contradiction it holds every annotated "
         "evidence span plus neighbouring spans up to the budget; for NotMentioned (no evidence "
         "anywhere in the contract, so none in any excerpt) a contiguous window whose start is a "
         "hash of (document id, hypothesis key). The same 17 hypotheses recur for every contract, "
         "so group/split by the document id in the record id (contractnli:<doc>:<nda-k>). "
         "Documents: all of dev (61) and test (123) and the first 50 of train (the copy lacks "
         "the full train.json). Contract texts are third-party documents (SEC EDGAR filings and "
         "public web PDFs, urls in the raw data) redistributed by the dataset under CC BY 4.0 "
         "terms with a takedown notice. Cite Koreeda & Manning, Findings of EMNLP 2021.")


def _join(text: str, spans, chosen) -> str:
    parts, prev = [], None
    for i in sorted(chosen):
        s, e = spans[i]
        if prev is not None:
            parts.append(text[spans[prev][1]:s] if i == prev + 1 else GAP)
        parts.append(text[s:e])
        prev = i
    return "".join(parts).strip()


def excerpt(text: str, spans, evidence, key: str) -> str:
    """Whole text if short; else evidence spans grown outwards, or a hashed window."""
    if len(text) <= BUDGET:
        return text
    n = len(spans)
    def size(i):
        return spans[i][1] - spans[i][0] + 1
    if evidence:
        chosen = set(evidence)
        used = sum(size(i) for i in chosen) + len(GAP) * len(chosen)
        seeds = sorted(chosen)
        for step in range(1, n):          # grow rings around every evidence span
            for c in seeds:
                for j in (c - step, c + step):
                    if 0 <= j < n and j not in chosen and used + size(j) <= BUDGET:
                        chosen.add(j)
                        used += size(j)
        return _join(text, spans, chosen)
    # no evidence: contiguous window starting at a deterministic position
    start = int(hashlib.sha256(key.encode()).hexdigest(), 16) % n
    chosen, used, i = set(), 0, start
    while i < n and used + size(i) <= BUDGET:
        chosen.add(i)
        used += size(i)
        i += 1
    i = start - 1
    while i >= 0 and used + size(i) <= BUDGET:   # fill backwards when the window hit the end
        chosen.add(i)
        used += size(i)
        i -= 1
    return _join(text, spans, chosen)


def records(mirrors: str):
    for path in PATHS:
        data = json.loads(common.git_text(mirrors, REPO, COMMIT, path))
        hyps = {k: v["hypothesis"] for k, v in data["labels"].items()}
        for doc in data["documents"]:
            text, spans = doc["text"], doc["spans"]
            anns = doc["annotation_sets"][0]["annotations"]
            for key in sorted(anns, key=lambda k: int(k.split("-")[1])):
                ann = anns[key]
                label = LABELS[ann["choice"]]
                evidence = ann["spans"] if ann["choice"] != "NotMentioned" else []
                yield {"id": f"{doc['id']}:{key}", "family": "nli",
                       "context": excerpt(text, spans, evidence, f"{doc['id']}:{key}"),
                       "question": "", "answer": hyps[key], "label": label}


def main() -> None:
    args = common.standard_args(__doc__.splitlines()[0], __file__).parse_args()
    common.convert(args, source="contractnli", records=records(args.mirrors), repo=REPO,
                   commit=COMMIT, paths=PATHS, licence=LICENCE, notes=NOTES)


if __name__ == "__main__":
    main()
