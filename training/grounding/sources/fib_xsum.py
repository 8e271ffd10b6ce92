#!/usr/bin/env python3
"""FIB XSum (Tam et al. 2022, CC-BY-4.0) -> training/grounding/build/fib_xsum.jsonl

Factual Inconsistency Benchmark, XSum part: 500 BBC articles (XSum test set), each with a
factually consistent summary (the XSum reference, checked and where needed edited by the FIB
annotators) and 3,122 abstractive model summaries (BART, PEGASUS, T5, BLOOM, distilled variants)
that annotators judged factually inconsistent with the article. Read from r-three/fib
multiple_choice-dataset/xsum/fib/*.jsonl (the binary-choice files: correct_choice vs. distractor).

    python3 training/grounding/sources/fib_xsum.py --mirrors DIR
"""
from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common

REPO = "r-three/fib"
COMMIT = "1d48ee2e52ac3f8ded69f4593db255ae2ba12200"
PREFIX = "multiple_choice-dataset/xsum/fib/"
MODELS = ["bart-base", "bart-large", "bloom-560m", "distil-bart", "distil-pegasus", "pegasus",
          "t5-large"]
PATHS = [f"{PREFIX}binary_choice-using_{m}_distractors.jsonl" for m in MODELS]
LICENCE = "CC-BY-4.0 (dataset_LICENSE; code under software_LICENSE)"
NOTES = ("family=summary, question=''. correct_choice (XSum reference summary, annotator-verified "
         "factually consistent) -> supported; the distractor (model summary annotators judged "
         "factually inconsistent) -> hallucinated. Whole-summary labels, no spans. The reference of "
         "a document recurs in every distractor file and is kept once (de-duplication), so the "
         "set is ~1 supported : 6 hallucinated. Only the XSum part is used: the CNN/DM part "
         "(96 documents) is left out because ~70% of its 'inconsistent' distractors are extractive "
         "sentences copied verbatim from the article (inconsistent only by lost context), a "
         "misleading signal for a grounding verifier; the factcc/mfma/fir/factually_consistent "
         "folders (synthetic perturbations, other datasets) are not read. Documents are BBC news "
         "articles (XSum), whose own terms are the BBC's; XSum test articles also appear in other "
         "summary-faithfulness sets (e.g. the 500 XSum-Hallucinations documents, 40 of them "
         "shared with FIB). XSum references are known to contain extrinsic details; FIB's check "
         "reduces but may not remove that (label noise). Cite Tam et al. 2022 (arXiv 2211.08412).")


def records(mirrors: str):
    for model, path in zip(MODELS, PATHS, strict=False):
        for line in common.git_text(mirrors, REPO, COMMIT, path).splitlines():
            if not line.strip():
                continue
            ex = json.loads(line)
            choices = ex["list_choices"]
            correct = ex["correct_choice"]
            if len(choices) != 2 or choices[int(ex["lbl"])] != correct:
                continue
            doc = ex["input"].strip()
            yield {"id": f"{ex['id']}:reference", "family": "summary", "context": doc,
                   "question": "", "answer": correct.strip(), "label": "supported"}
            for wrong in choices:
                if wrong != correct and wrong.strip():
                    yield {"id": f"{ex['id']}:{model}", "family": "summary", "context": doc,
                           "question": "", "answer": wrong.strip(), "label": "hallucinated"}


def main() -> None:
    args = common.standard_args(__doc__.splitlines()[0], __file__).parse_args()
    common.convert(args, source="fib_xsum", records=records(args.mirrors), repo=REPO,
                   commit=COMMIT, paths=PATHS, licence=LICENCE, notes=NOTES)


if __name__ == "__main__":
    main()
