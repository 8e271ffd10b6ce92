#!/usr/bin/env python3
"""Broad Twitter Corpus (GateNLP/broad_twitter_corpus, CC-BY-4.0) -> training/ner/build/btc*.jsonl

Tweets (UK/global, 2009-2014) annotated for PER/LOC/ORG in CoNLL format, one file per section.
Sections A, B, E, G, H become source "btc"; section F (the corpus authors' recommended test split)
becomes "btc-f" so it can be held out.

Conversion: the CoNLL files split @-mentions into "@" + "username" and tag each part B-X
(sections E-H) or only the username (section B). We re-join them into one token "@username"
(the original tweet text) tagged B-X when either part was tagged. Standalone "@user" tokens
are untagged in the source and stay O.

    python3 training/ner/sources/btc.py --mirrors DIR --out training/ner/build
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common

REPO = "GateNLP/broad_twitter_corpus"
COMMIT = "0c45ef7b1924a6b8115bceab388781590b1b553a"
LICENCE = "CC-BY-4.0"
MAPPING = {"PER": "PER", "LOC": "LOC", "ORG": "ORG"}
SOURCES = {
    "btc": ["a.conll", "b.conll", "e.conll", "g.conll", "h.conll"],
    "btc-f": ["f.conll"],
}


def merge_at(tokens: list[str], tags: list[str]) -> tuple[list[str], list[str]]:
    out_t, out_g, i = [], [], 0
    while i < len(tokens):
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if tokens[i] == "@" and nxt[:1] and (nxt[:1].isalnum() or nxt[:1] == "_"):
            a, b = tags[i], tags[i + 1]
            typ = b[2:] if b != "O" else (a[2:] if a != "O" else None)
            out_t.append("@" + tokens[i + 1])
            out_g.append("B-" + typ if typ else "O")
            i += 2
            continue
        out_t.append(tokens[i])
        out_g.append(tags[i])
        i += 1
    return out_t, common.repair_bio(out_g)


def sentences(mirrors: str, paths: list[str]):
    for toks, tags in common.conll_sentences(mirrors, REPO, COMMIT, paths, MAPPING, sep="\t"):
        # some tokens carry stray whitespace (emoji + space): strip, drop empty untagged ones
        pairs = [("".join(t.split()), g) for t, g in zip(toks, tags, strict=True)]
        pairs = [(t, g) for t, g in pairs if t or g != "O"]
        if any(not t for t, _ in pairs):
            continue
        yield merge_at([t for t, _ in pairs], common.repair_bio([g for _, g in pairs]))


def main() -> None:
    args = common.standard_args(__doc__.splitlines()[0], __file__).parse_args()
    entries = []
    for source, paths in SOURCES.items():
        stats = common.finalize(source, sentences(args.mirrors, paths), args.out, cap=args.cap, seed=args.seed)
        split_note = ("Section F is the BTC authors' recommended TEST split: keep it for evaluation. "
                      if source == "btc-f" else
                      "The BTC authors recommend section F (source btc-f) as test and the 2nd half of H as dev. ")
        notes = ("Tweets; sections " + ", ".join(p[0].upper() for p in paths) + ". " + split_note
                 + "'@' + username re-joined into one '@username' token (B-X if either part was tagged); "
                 "@-mentions are tagged inconsistently in the source (many standalone '@user' tokens, "
                 "e.g. after RT, are O). Hashtags are mostly O. Original casing kept.")
        entries.append(common.manifest_entry(source=source, repo=REPO, commit=COMMIT, paths=paths,
                                             licence=LICENCE, genre="social", stats=stats, notes=notes))
    common.write_manifest(args.manifest, entries)


if __name__ == "__main__":
    main()
