#!/usr/bin/env python3
"""MultiCoNER v1 English (Malmasi et al. 2022, CC-BY-4.0) -> training/ner/build/multiconer-en.jsonl

Lower-cased short sentences (Wikipedia-derived, low context) with six coarse types. Mapping:
PER->PER, LOC->LOC, CORP->ORG, GRP->ORG, PROD/CW->O. Read from the copy of the official
EN-English train/dev files in aapop/multiconer_AaltoNLP (the test file, 40 MB, is not in the
snapshot and is not used).

    python3 training/ner/sources/multiconer.py --mirrors DIR --out training/ner/build
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common

REPO = "aapop/multiconer_AaltoNLP"
COMMIT = "8886b4cbbf8f2ec3812f8d6b9098a6200ab3a9fd"
PATHS = ["data/EN-English/en_train.conll", "data/EN-English/en_dev.conll"]
LICENCE = "CC-BY-4.0 (MultiCoNER v1, per the dataset card / SemEval-2022 Task 11 release)"
MAPPING = {"PER": "PER", "LOC": "LOC", "CORP": "ORG", "GRP": "ORG"}
NOTES = ("MultiCoNER v1 (SemEval-2022 Task 11) English train+dev, all lower-cased, low-context "
         "Wikipedia-style sentences. GRP includes bands, sports teams and other groups (mapped to ORG); "
         "PER includes stage names. Copy in aapop/multiconer_AaltoNLP (no licence file in that repo; "
         "licence is that of the dataset: CC-BY-4.0). Cite Malmasi et al. 2022.")


def sentences(mirrors: str):
    # lines: "token _ _ TAG"; sentence headers "# id <uuid>\tdomain=..." are dropped
    return common.conll_sentences(mirrors, REPO, COMMIT, PATHS, MAPPING, sep=" ", skip_prefix="# id ")


def main() -> None:
    args = common.standard_args(__doc__.splitlines()[0], __file__).parse_args()
    common.convert_single(args, source="multiconer-en", sentences=sentences(args.mirrors), repo=REPO,
                          commit=COMMIT, paths=PATHS, licence=LICENCE, genre="web", notes=NOTES)


if __name__ == "__main__":
    main()
