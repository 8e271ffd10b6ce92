#!/usr/bin/env python3
"""LitBank (Bamman et al. 2019, CC-BY-4.0) -> training/ner/build/litbank.jsonl

The first ~2,000 words of 100 English novels and stories (Project Gutenberg): dialogue, first
names alone, "Mr. Darcy", "Lady Russell". Read from the coreference annotation (coref/brat), which
marks each mention proper (PROP_), nominal or pronominal; only proper mentions are names.
Mapping: PROP_PER -> PER; PROP_GPE, PROP_LOC, PROP_FAC -> LOC; PROP_ORG -> ORG; vehicles and every
nominal or pronominal mention ("his wife", "the printer") -> O.

Spans are cut to the name: leading titles and lower-case words go ("the second Sir Walter" ->
"Walter", titles are tagged O in every source here; the analyzer adds them by rule). A mention
that holds a comma or a lower-case word other than a name particle ("James Stevenson , Esq. of
South Park") is cut before it ("James Stevenson"); the mentions nested in it ("South Park") are
tagged on their own. A sentence with a proper mention that cannot be cut to a clean name is
dropped, not guessed.

    python3 training/ner/sources/litbank.py --mirrors DIR --out training/ner/build
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common
from common import is_cap

REPO = "dbamman/litbank"
COMMIT = "3e50db0ffc033d7ccbb94f4d88f6b99210328ed8"
BASE = "coref/brat/"
LICENCE = "CC-BY-4.0 (README.md @ the pinned commit); the texts are public-domain Project Gutenberg books"
TYPES = {"PROP_PER": "PER", "PROP_GPE": "LOC", "PROP_LOC": "LOC", "PROP_FAC": "LOC", "PROP_ORG": "ORG"}
TITLES = {"mr", "mr.", "mrs", "mrs.", "miss", "ms", "ms.", "sir", "lady", "lord", "dr", "dr.", "doctor",
          "captain", "capt.", "colonel", "col.", "major", "general", "gen.", "madame", "mme", "monsieur",
          "m.", "mlle", "mademoiselle", "master", "mistress", "dame", "rev.", "reverend", "father",
          "mother", "brother", "sister", "uncle", "aunt", "aunty", "professor", "prof.", "judge",
          "king", "queen", "prince", "princess", "duke", "duchess", "count", "countess", "baron",
          "baroness", "esq.", "esq", "herr", "frau", "señor", "senor", "don", "st.", "saint", "old",
          "little", "young", "poor", "dear", "cousin", "lieutenant", "lieut.", "sergeant", "inspector"}
PARTICLES = {"de", "du", "da", "di", "van", "von", "der", "la", "le", "del", "of", "'s", "the", "and", "&"}
NOTES = ("LitBank coreference layer (coref/brat, 100 texts): proper mentions only, cut to the name "
         "(leading titles and lower-case words dropped; titles are O as in every source here); a mention "
         "holding a comma or lower-case word is cut before it, nested mentions tagged on their own. Sentences "
         "with a proper mention that does not reduce to a clean name are dropped. Cite Bamman, Popat "
         "and Shen 2019 (NAACL); Bamman, Lewke and Mansoor 2020 (LREC, coreference).")


def cut(tokens: list[str], s: int, e: int) -> tuple[int, int] | None:
    """The name inside mention tokens[s:e], or None when it is not a clean name."""
    while s < e and (tokens[s].lower() in TITLES or not is_cap(tokens[s])):
        s += 1
    while e > s and not is_cap(tokens[e - 1]):
        e -= 1
    if s == e:
        return None
    inner = tokens[s:e]
    if any(t == "," or (not is_cap(t) and t.lower() not in PARTICLES) for t in inner):
        return None
    return s, e


def convert_doc(text: str, ann: str, counters: dict):
    # brat offsets are characters into the file; the text is one sentence a line, tokens split by spaces
    starts, tokens, sent_of, line_start = {}, [], [], 0
    for n, line in enumerate(text.split("\n")):
        pos = line_start
        for tok in line.split(" "):
            if tok:
                starts[pos] = len(tokens)
                tokens.append(tok)
                sent_of.append(n)
            pos += len(tok) + 1
        line_start += len(line) + 1
    ends = {}
    for off, i in starts.items():
        ends[off + len(tokens[i])] = i + 1
    mentions = []
    for row in ann.splitlines():
        if not row.startswith("T"):
            continue
        _, info, _ = row.split("\t", 2)
        kind, a, b = info.split(" ")[:3]
        if kind.startswith("PROP_"):
            s, e = starts.get(int(a)), ends.get(int(b))
            if s is None or e is None:
                counters["unaligned"] += 1
                continue
            mentions.append((s, e, TYPES.get(kind)))
    tags = ["O"] * len(tokens)
    bad_sents = set()
    # outer first: a mention's name takes its words before any mention nested in it can
    for s, e, typ in sorted(mentions, key=lambda m: (m[0], -(m[1] - m[0]))):
        if typ is None:  # a vehicle: not a type the tagger learns
            continue
        span = cut(tokens, s, e)
        if span is None:
            # "James Stevenson , Esq. of South Park": the name is what comes before the first comma
            # or lower-case word; the mentions inside it ("South Park") are tagged on their own.
            head = next((i for i in range(s, e) if tokens[i] == "," or
                         (i > s and not is_cap(tokens[i]) and tokens[i].lower() not in PARTICLES)), e)
            span = cut(tokens, s, head) if head < e else None
            counters["cut_at_comma"] += span is not None
        if span is None:
            bad_sents.add(sent_of[s])
            counters["unclean"] += 1
            continue
        a, b = span
        if any(t != "O" for t in tags[a:b]):
            continue
        for i in range(a, b):
            tags[i] = ("B-" if i == a else "I-") + typ
    by_sent: dict[int, tuple[list, list]] = {}
    for tok, tag, n in zip(tokens, tags, sent_of, strict=True):
        by_sent.setdefault(n, ([], []))
        by_sent[n][0].append(tok)
        by_sent[n][1].append(tag)
    for n, (toks, tgs) in sorted(by_sent.items()):
        if n in bad_sents:
            counters["dropped_sentences"] += 1
            continue
        yield toks, tgs


def sentences(mirrors: str, counters: dict):
    paths = sorted(p for p in common.git_ls(mirrors, REPO, COMMIT, BASE) if p.endswith(".ann"))
    for p in paths:
        text = common.git_text(mirrors, REPO, COMMIT, p[:-4] + ".txt")
        yield from convert_doc(text, common.git_text(mirrors, REPO, COMMIT, p), counters)


def main() -> None:
    args = common.standard_args(__doc__.splitlines()[0], __file__).parse_args()
    counters = {"unaligned": 0, "cut_at_comma": 0, "unclean": 0, "dropped_sentences": 0}
    stats = common.finalize("litbank", list(sentences(args.mirrors, counters)), args.out,
                            cap=args.cap, seed=args.seed)
    stats.update(counters)
    common.write_manifest(args.manifest, [common.manifest_entry(
        source="litbank", repo=REPO, commit=COMMIT, paths=[BASE + "*.ann", BASE + "*.txt"],
        licence=LICENCE, genre="fiction", stats=stats, notes=NOTES)])
    print(counters)


if __name__ == "__main__":
    main()
