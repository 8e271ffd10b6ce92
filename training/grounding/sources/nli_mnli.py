#!/usr/bin/env python3
"""MultiNLI dev samples (Williams et al. 2018) -> training/grounding/build/mnli.jsonl

Sentence-level NLI over ten genres of written and spoken English (fiction, government reports,
Slate, telephone speech, travel guides; mismatched: 9/11 report, face-to-face speech, letters,
OUP non-fiction, Verbatim). context = premise, question = "", answer = hypothesis;
entailment -> supported, neutral and contradiction -> hallucinated, balanced 50/50.

The full MNLI zip / GLUE tsv files are not committed in any stored snapshot found; this reads the
1000-example samples of the MNLI dev_matched and dev_mismatched sets that jind11/TextFooler
(MIT, code) commits as data/mnli_matched and data/mnli_mismatched (tab-separated
label / premise / hypothesis, PTB-tokenised). data/mnli in that repo is the same mismatched
sample with numeric labels and is not read.

    python3 training/grounding/sources/nli_mnli.py --mirrors DIR
"""
from __future__ import annotations

import hashlib
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common

REPO = "jind11/TextFooler"
COMMIT = "6a56cb10f1055e00a8fbc6882f289e91cfe60f4e"
PATHS = ["data/mnli_matched", "data/mnli_mismatched"]
LICENCE = ("MultiNLI data: OANC-derived genres free of restrictions, other genres CC BY-SA 3.0 / "
           "CC BY 3.0 by genre, none non-commercial (as stated by the MultiNLI data description, "
           "Williams et al. 2018, and https://cims.nyu.edu/~sbowman/multinli/; NOT re-read from "
           "a stored page in this session - the nyu-mll/multiNLI repo's LICENSE.txt is an MIT "
           "licence for its code only). Hosting repo jind11/TextFooler: MIT (its LICENSE file, "
           "code); the data files are MNLI dev samples, PTB-tokenised.")
NOTES = ("Premises from MNLI dev_matched (1000-example sample) and dev_mismatched (1000-example "
         "sample) as chosen by TextFooler (Jin et al. AAAI 2020) for its attack experiments; the "
         "copy carries no genre or pairID column. Raw labels over both files: entailment 719, "
         "neutral 630, contradiction 651. Balanced deterministically: all entailment kept as "
         "supported; the hallucinated side is sampled down to the same count, half neutral and "
         "half contradiction, choosing by sha256 of the pair text. Text is PTB-tokenised in the "
         "copy ('ca n't', ' ,'); a light detokeniser rejoins punctuation and contractions "
         "(quotes and other spacing are left as they are). MNLI dev is the standard evaluation "
         "split of GLUE: do not evaluate on MNLI dev with a model trained on this. Cite Williams, "
         "Nangia & Bowman, NAACL 2018.")

_DETOK = [
    (re.compile(r" ([,.;:!?%)\]}])"), r"\1"),
    (re.compile(r"([(\[{$]) "), r"\1"),
    (re.compile(r"\b(ca|wo|do|does|did|is|are|was|were|has|have|had|could|should|would|ai|"
                r"must|need|might|sha) n't\b", re.I), r"\1n't"),
    (re.compile(r" ('s|'re|'ve|'ll|'d|'m)\b", re.I), r"\1"),
    (re.compile(r"\s+"), " "),
]


def detok(text: str) -> str:
    for pat, rep in _DETOK:
        text = pat.sub(rep, text)
    return text.strip()


def _h(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


def records(mirrors: str):
    rows = []
    for path in PATHS:
        split = path.rsplit("_", 1)[1]           # matched / mismatched
        text = common.git_text(mirrors, REPO, COMMIT, path)
        for i, line in enumerate(text.splitlines()):
            if not line.strip():
                continue
            gold, prem, hyp = line.split("\t")
            rows.append((f"{split}:{i}", gold, detok(prem), detok(hyp)))
    ent = [r for r in rows if r[1] == "entailment"]
    n = len(ent)
    neu = sorted((r for r in rows if r[1] == "neutral"), key=lambda r: _h(r[2] + "\t" + r[3]))
    con = sorted((r for r in rows if r[1] == "contradiction"), key=lambda r: _h(r[2] + "\t" + r[3]))
    k_neu = min(len(neu), (n + 1) // 2)
    k_con = min(len(con), n - k_neu)
    chosen = ent + neu[:k_neu] + con[:k_con]
    order = {r[0]: i for i, r in enumerate(rows)}
    for key, gold, prem, hyp in sorted(chosen, key=lambda r: order[r[0]]):
        yield {"id": f"{key}:{gold[0]}", "family": "nli", "context": prem, "question": "",
               "answer": hyp, "label": "supported" if gold == "entailment" else "hallucinated"}


def main() -> None:
    args = common.standard_args(__doc__.splitlines()[0], __file__).parse_args()
    common.convert(args, source="mnli", records=records(args.mirrors), repo=REPO,
                   commit=COMMIT, paths=PATHS, licence=LICENCE, notes=NOTES)


if __name__ == "__main__":
    main()
