#!/usr/bin/env python3
"""SummEdits (Laban et al. 2023, Apache-2.0) -> training/grounding/build/summedits.jsonl

Human-labelled edits of LLM-written seed summaries in several domains (news, meeting transcripts,
sales calls/emails, scientific abstracts, earnings-call excerpts). A seed summary ("..._og",
verified consistent) is edited by an LLM (GPT-3.5) and annotators label each edited summary
consistent / inconsistent with the document. Read from salesforce/factualNLG data/summedits/.

    python3 training/grounding/sources/summedits.py --mirrors DIR
"""
from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common

REPO = "salesforce/factualNLG"
COMMIT = "0da1dfa62c783218d26208c1796d3a2605bec745"
# Left out: samsum (SAMSum is CC BY-NC-ND 4.0), podcast (Spotify Podcast Dataset transcripts,
# research-only terms); billsum and shakespeare are >= 4 MiB and absent from the snapshot.
DOMAINS = ["news", "qmsumm", "sales_call", "sales_email", "scitldr", "ectsum"]
PATHS = [f"data/summedits/summedits_{d}.json" for d in DOMAINS]
LICENCE = "Apache-2.0 (LICENSE.txt)"
NOTES = ("family=summary, question=''. label 1 (consistent, incl. the verified seed summary '_og') -> "
         "supported; label 0 (annotators judged the edited summary inconsistent with the document) -> "
         "hallucinated. Whole-summary labels only, no spans (an edit may also contain harmless "
         "paraphrase, so a diff against the seed is not a reliable error span). Few documents with "
         "many near-duplicate edits each (e.g. news: 819 summaries of 25 documents); some "
         "borderline 'inconsistent' labels on near-paraphrases (label noise). Domains kept: "
         + ", ".join(DOMAINS) + ". Excluded: samsum (CC BY-NC-ND), podcast (Spotify research-only). "
         "Document terms: news = recent web news articles (publishers' copyright), qmsumm = QMSum "
         "meeting transcripts (AMI/ICSI CC BY 4.0, parliamentary committees), sales_call/sales_email "
         "= LLM-generated synthetic texts, scitldr = paper abstracts (SciTLDR, Apache-2.0), "
         "ectsum = earnings-call transcript excerpts (ECTSum; transcripts' own terms not verified). "
         "Both 'evaluation' and 'test' splits are read (the id keeps domain and split). "
         "Cite Laban et al. 2023, 'SummEdits' (arXiv 2305.14540).")


def records(mirrors: str):
    for dom, path in zip(DOMAINS, PATHS, strict=False):
        for ex in json.loads(common.git_text(mirrors, REPO, COMMIT, path)):
            if ex.get("label") not in (0, 1):
                continue
            yield {
                "id": f"{dom}:{ex.get('split', '')}:{ex['id']}",
                "family": "summary",
                "context": ex["doc"].strip(),
                "question": "",
                "answer": ex["summary"].strip(),
                "label": "supported" if ex["label"] == 1 else "hallucinated",
            }


def main() -> None:
    args = common.standard_args(__doc__.splitlines()[0], __file__).parse_args()
    common.convert(args, source="summedits", records=records(args.mirrors), repo=REPO,
                   commit=COMMIT, paths=PATHS, licence=LICENCE, notes=NOTES)


if __name__ == "__main__":
    main()
