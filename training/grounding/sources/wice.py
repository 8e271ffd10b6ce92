#!/usr/bin/env python3
"""WiCE (Kamoi et al. 2023; annotations ODC-BY 1.0) -> training/grounding/build/wice.jsonl

Wikipedia claims checked against the web article(s) they cite: context = the cited article's
sentences (multi-sentence, real web text), question = "", answer = the Wikipedia claim sentence.
supported -> supported; partially_supported and not_supported -> hallucinated. Sub-claims from the
non-supported-tokens task carry annotated unsupported token spans, turned into character spans.

    python3 training/grounding/sources/wice.py --mirrors DIR
"""
from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common

REPO = "ryokamoi/wice"
COMMIT = "ddeb6c183665e2a20c5f03c5aa07f03888b9870f"
CLAIM_PATHS = ["data/entailment_retrieval/claim/dev.jsonl",
               "data/entailment_retrieval/claim/test.jsonl"]
ORACLE_PATHS = ["code_and_resources/entailment_inputs/oracle_chunks/claim/dev.jsonl",
                "code_and_resources/entailment_inputs/oracle_chunks/claim/test.jsonl"]
TOKEN_PATHS = ["data/non_supported_tokens/train.jsonl", "data/non_supported_tokens/dev.jsonl",
               "data/non_supported_tokens/test.jsonl"]
PATHS = CLAIM_PATHS + ORACLE_PATHS + TOKEN_PATHS
LICENCE = ("ODC-BY 1.0 for the annotations (LICENSE.md); claims are Wikipedia text (CC BY-SA), "
           "evidence is cited web pages via Common Crawl (Common Crawl terms of use) (LICENSE.md)")
LABELS = {"supported": "supported", "partially_supported": "hallucinated",
          "not_supported": "hallucinated"}
BUDGET = 11000
GAP = " [...] "
ORACLE_PER_SUPPORTED = 2
NOTES = ("Claim verification against real cited web documents (news, official pages, etc.). "
         "Records: (1) every claim of the claim-level entailment set, dev+test (train.jsonl is "
         ">= 4 MiB, absent from the snapshot), context = the cited article's sentences joined "
         "with spaces; articles over 11000 chars are cut to the annotated supporting sentences "
         "(union of all annotators' sets) grown outwards with ' [...] ' at gaps, or for "
         "not_supported claims the article's opening; (2) every sub-claim of the "
         "non-supported-tokens set (train+dev+test, all partially_supported) as hallucinated with "
         "character spans merged from the annotated unsupported tokens; (3) to offset the skew "
         "(raw claim level 226 supported / 481 not), up to 2 oracle-retrieval chunks (gold "
         "supporting sentences + random distractor sentences, from the authors' oracle_chunks "
         "files) per SUPPORTED claim as extra supported records with a different context. "
         "partially_supported (some part of the claim unsupported) counts as hallucinated. "
         "Several records share one claim: group/split by the WiCE id in the record id "
         "(wice:<split id>:<variant>). Claims are single Wikipedia sentences whose pronouns may "
         "refer to earlier article text (not included). Text terms: Wikipedia CC BY-SA; evidence "
         "pages are third-party web content obtained via Common Crawl (each page's own copyright; "
         "Common Crawl terms of use) - treat as such on redistribution. Cite Kamoi et al., "
         "WiCE, EMNLP 2023.")


def rows(mirrors, path):
    for line in common.git_text(mirrors, REPO, COMMIT, path).splitlines():
        if line.strip():
            yield json.loads(line)


def _join(sents, chosen) -> str:
    out, prev = [], None
    for i in sorted(chosen):
        if prev is not None:
            out.append(" " if i == prev + 1 else GAP)
        out.append(sents[i].strip())
        prev = i
    return "".join(out).strip()


def evidence_text(sents, support_sets) -> str:
    sents = [s for s in sents]
    full = " ".join(s.strip() for s in sents).strip()
    if len(full) <= BUDGET:
        return full
    n = len(sents)
    def size(i):
        return len(sents[i].strip()) + 1
    chosen = {i for group in support_sets for i in group if 0 <= i < n}
    used = sum(size(i) for i in chosen) + len(GAP) * len(chosen)
    seeds = sorted(chosen) or [0]
    if not chosen:            # no supporting sentences: the article's opening
        chosen, used = {0}, size(0)
    for step in range(1, n):
        for c in seeds:
            for j in (c - step, c + step):
                if 0 <= j < n and j not in chosen and used + size(j) <= BUDGET:
                    chosen.add(j)
                    used += size(j)
    return _join(sents, chosen)


def char_spans(claim: str, tokens, flags):
    """Merge flagged tokens into character spans of `claim`; None if tokens don't align."""
    spans, pos = [], 0
    for tok, bad in zip(tokens, flags, strict=False):
        at = claim.find(tok, pos)
        if at < 0 or claim[pos:at].strip():
            return None
        start, pos = at, at + len(tok)
        if bad:
            if spans and claim[spans[-1][1]:start].strip() == "" and spans[-1][2] == 1:
                spans[-1][1] = pos
            else:
                spans.append([start, pos, 1])
        elif spans:
            spans[-1][2] = 0      # a clean token breaks the run
    return [[s, e] for s, e, _ in spans]


def records(mirrors: str):
    supported_ids = set()
    for path in CLAIM_PATHS:
        for r in rows(mirrors, path):
            label = LABELS[r["label"]]
            if label == "supported":
                supported_ids.add(r["meta"]["id"])
            yield {"id": f"{r['meta']['id']}:article", "family": "nli",
                   "context": evidence_text(r["evidence"], r.get("supporting_sentences") or []),
                   "question": "", "answer": r["claim"].strip(), "label": label}
    for path in ORACLE_PATHS:
        seen = {}
        for r in rows(mirrors, path):
            cid = r["meta"]["id"]
            if r["label"] != "supported" or cid not in supported_ids:
                continue
            k = seen.get(cid, 0)
            if k >= ORACLE_PER_SUPPORTED:
                continue
            seen[cid] = k + 1
            yield {"id": f"{cid}:oracle{k}", "family": "nli",
                   "context": " ".join(s.strip() for s in r["evidence"]).strip(),
                   "question": "", "answer": r["claim"].strip(), "label": "supported"}
    for path in TOKEN_PATHS:
        for r in rows(mirrors, path):
            claim = r["claim"].strip()
            rec = {"id": f"{r['meta']['id']}:subclaim", "family": "nli",
                   "context": evidence_text(r["evidence"], r.get("supporting_sentences") or []),
                   "question": "", "answer": claim, "label": LABELS[r["label"]]}
            spans = char_spans(claim, r["claim_tokens"], r["non_supported_spans"])
            if spans:
                rec["spans"] = spans
            yield rec


def main() -> None:
    args = common.standard_args(__doc__.splitlines()[0], __file__).parse_args()
    common.convert(args, source="wice", records=records(args.mirrors), repo=REPO, commit=COMMIT,
                   paths=PATHS, licence=LICENCE, notes=NOTES)


if __name__ == "__main__":
    main()
