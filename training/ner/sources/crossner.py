#!/usr/bin/env python3
"""CrossNER (Liu et al. 2021, MIT) -> training/ner/build/crossner-<domain>.jsonl

Wikipedia sentences from five domains (AI, literature, music, politics, natural science) with
fine-grained types. What it teaches that the other corpora do not: titles of books, songs,
albums, awards, elections and products sit among names and are not persons. Mapping: person,
writer, musicalartist, politician, scientist, researcher -> PER; location, country -> LOC;
organisation, university, band, politicalparty -> ORG; every other type (book, song, album, award,
event, election, misc, ...) -> O. The copy of CoNLL-2003 in the same repository is not read.

    python3 training/ner/sources/crossner.py --mirrors DIR --out training/ner/build
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common

REPO = "zliucr/CrossNER"
COMMIT = "2e7ba2a7798c961e3f29fbc51252c5a8d40224bf"
DOMAINS = ("ai", "literature", "music", "politics", "science")
SPLITS = ("train", "dev", "test")
LICENCE = "MIT (LICENSE @ the pinned commit); the sentences are from Wikipedia (CC-BY-SA)"
MAPPING = {
    **{t: "PER" for t in ("person", "writer", "musicalartist", "politician", "scientist", "researcher")},
    "location": "LOC", "country": "LOC",
    **{t: "ORG" for t in ("organisation", "university", "band", "politicalparty")},
}
NOTES = ("CrossNER five-domain NER (train+dev+test of each domain), BIO, tab-separated. Person "
         "subtypes -> PER, location/country -> LOC, organisation/university/band/party -> ORG, the "
         "rest (creative works, awards, events, products, misc) -> O. Cite Liu et al. 2021 (AAAI).")


def main() -> None:
    args = common.standard_args(__doc__.splitlines()[0], __file__).parse_args()
    entries = []
    for domain in DOMAINS:
        paths = [f"ner_data/{domain}/{s}.txt" for s in SPLITS]
        source = f"crossner-{domain}"
        stats = common.finalize(source, common.conll_sentences(args.mirrors, REPO, COMMIT, paths, MAPPING,
                                                               sep="\t"),
                                args.out, cap=args.cap, seed=args.seed)
        entries.append(common.manifest_entry(source=source, repo=REPO, commit=COMMIT, paths=paths,
                                             licence=LICENCE, genre="wiki", stats=stats, notes=NOTES))
    common.write_manifest(args.manifest, entries)


if __name__ == "__main__":
    main()
