#!/usr/bin/env python3
"""GUM corpus (amir-zeldes/gum) entity annotations -> training/ner/build/gum-<genre>.jsonl

GUM annotates every mention (names, pronouns, common noun phrases) with an entity type in the
CorefUD-style MISC column of dep/*.conllu (``Entity=(eid-etype-infstat-salience-centering-minspan-link[-identity]``).
We keep only *named* mentions of type person->PER, place->LOC, organization->ORG:

* within a mention, take maximal runs of proper-noun tokens (UPOS PROPN or XPOS NNP/NNPS), allowing
  ADP/DET/CCONJ/NUM and the punctuation - & . ' / inside a run but not at its edges
  ("the University of Helsinki" -> "University of Helsinki");
* keep the run that contains the mention's syntactic head; if the head is a common noun, keep a run
  attached to it as flat/appos ("biologist Nick Bos" -> "Nick Bos"); otherwise
  the mention is not a name and is dropped ("Nick Bos's lab", "the Texas legislature" -> dropped; the
  nested "Nick Bos"/"Texas" mentions, annotated separately, are kept on their own);
* person mentions headed by a plural proper noun (NNPS: "Americans", "Democrats") are dropped;
* overlapping candidates: the outermost (longest) wins.

Tokens are the surface tokens of the text (multi-word tokens such as "it's" are kept whole), except
that a multi-word token overlapping a name is split into its syntactic words ("Megumi's" -> "Megumi" "'s").
One source per genre, only for genres whose text licence allows redistribution of derived weights:
see GENRES below. Reddit (no text shipped), NC-licensed genres (essay, fiction, letter, podcast, whow)
and the GENTLE test2 genres are never read. Conversation (Santa Barbara Corpus, CC BY-ND) is only
written with --include-nd.

    python3 training/ner/sources/gum.py --mirrors DIR --out training/ner/build
"""
from __future__ import annotations

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common

REPO = "amir-zeldes/gum"
COMMIT = "72ce5ac14978a324c2fd18d49484e65292cbe316"
TYPE_MAP = {"person": "PER", "place": "LOC", "organization": "ORG"}

# genre -> (output genre label, licence, notes, included by default)
ANN = "annotations CC-BY-4.0"
GENRES = {
    "interview": ("conversation", "CC-BY-2.5 (Wikinews; GUM LICENSE.txt); annotations CC-BY-4.0",
                  "Wikinews interviews (Q&A transcripts).", True),
    "vlog": ("conversation", "CC-BY-3.0 (YouTube Creative Commons videos, per GUM docs); annotations CC-BY-4.0",
             "Transcribed YouTube vlogs (spoken monologue). Text licence not listed in GUM LICENSE.txt; GUM "
             "describes them as Creative Commons YouTube vlogs (YouTube's CC option is CC-BY-3.0): verify per video "
             "(sourceURL in xml/ metadata).", True),
    "speech": ("speech", "public domain / government works (UN General Debate corpus, US Congress, "
               "White House, presidency.ucsb.edu, ...); annotations CC-BY-4.0",
               "Political speeches. Text licence not listed in GUM LICENSE.txt; sources are mostly US-government "
               "or UN public records, one Creative Commons blog post; verify before shipping.", True),
    "court": ("legal", "CC-BY-4.0 (GUM LICENSE.txt: 'multiple public sources')",
              "Courtroom transcripts (oral arguments). GUM_court_carpet (Santa Barbara Corpus, BY-ND) excluded.", True),
    "news": ("news", f"CC-BY-2.5 (Wikinews; GUM LICENSE.txt); {ANN}", "Wikinews articles.", True),
    "bio": ("web", f"CC-BY-SA-3.0 (Wikipedia; GUM LICENSE.txt); {ANN}", "Wikipedia biographies.", True),
    "voyage": ("web", f"CC-BY-SA-3.0 (Wikivoyage; GUM LICENSE.txt); {ANN}", "Wikivoyage travel guides.", True),
    "academic": ("academic", f"CC-BY-4.0 (GUM LICENSE.txt); {ANN}", "Open-access academic papers.", True),
    "textbook": ("academic", f"CC-BY-4.0 (OpenStax / Rebus / OERTX open textbooks, per sourceURL); {ANN}",
                 "Open textbooks. Text licence not listed in GUM LICENSE.txt; OpenStax and Rebus books are "
                 "CC-BY-4.0.", True),
    "conversation": ("conversation",
                     "CC-BY-ND-3.0-US (Santa Barbara Corpus of Spoken American English) - NoDerivatives",
                     "Face-to-face conversations (SBC). Not on the allowed-licence list: written only with "
                     "--include-nd. SBC already replaced real personal names with pseudonyms.", False),
}
EXCLUDED_DOCS = {"GUM_court_carpet"}  # Santa Barbara Corpus text (BY-ND)

PROPN_XPOS = {"NNP", "NNPS"}
CONNECT_UPOS = {"ADP", "DET", "CCONJ", "NUM"}
CONNECT_PUNCT = {"-", "&", ".", "'", "/"}
ENTITY_RE = re.compile(r"\((\d+)-([^()]*)\)|\((\d+)-([^()]*)|(\d+)\)")


def parse_conllu(text: str):
    """Yield sentences: (words, mwts, doc_id) with words = dicts and mwts = {start_idx: (end_idx, form)}."""
    words, mwts, doc = [], {}, None
    for line in text.splitlines() + [""]:
        if line.startswith("# newdoc id"):
            doc = line.split("=", 1)[1].strip()
            continue
        if line.startswith("#"):
            continue
        if not line.strip():
            if words:
                yield words, mwts, doc
            words, mwts = [], {}
            continue
        cols = line.split("\t")
        if "-" in cols[0]:
            a, b = cols[0].split("-")
            mwts[int(a) - 1] = (int(b) - 1, cols[1])
            continue
        if "." in cols[0]:
            continue
        misc = dict(kv.split("=", 1) if "=" in kv else (kv, "") for kv in cols[9].split("|")) if cols[9] != "_" else {}
        words.append({"form": cols[1], "upos": cols[3], "xpos": cols[4], "head": int(cols[6]) - 1,
                      "deprel": cols[7], "entity": misc.get("Entity", "")})


def mentions(words):
    """[(start, end_inclusive, etype)] from the Entity bracket notation."""
    out, open_ = [], {}
    for i, w in enumerate(words):
        for m in ENTITY_RE.finditer(w["entity"]):
            if m.group(1):  # single-token mention
                out.append((i, i, m.group(2).split("-")[0]))
            elif m.group(3):
                open_.setdefault(m.group(3), []).append((i, m.group(4).split("-")[0]))
            else:
                stack = open_.get(m.group(5))
                if stack:
                    s, etype = stack.pop()
                    out.append((s, i, etype))
    return out


def is_propn(w) -> bool:
    return w["upos"] == "PROPN" or w["xpos"] in PROPN_XPOS


def is_connector(w) -> bool:
    return w["upos"] in CONNECT_UPOS or (w["upos"] == "PUNCT" and w["form"] in CONNECT_PUNCT)


def name_span(words, s: int, e: int, label: str):
    """The proper-name part of mention words[s..e] (inclusive), or None."""
    runs, cur = [], None
    for i in range(s, e + 1):
        w = words[i]
        if is_propn(w):
            if cur is None:
                cur = [i, i]
            else:
                cur[1] = i
        elif is_connector(w) and cur is not None:
            continue  # may be inside a run; the run end only moves on the next proper noun
        else:
            if cur is not None:
                runs.append(tuple(cur))
            cur = None
    if cur is not None:
        runs.append(tuple(cur))
    if not runs:
        return None
    heads = [i for i in range(s, e + 1) if not (s <= words[i]["head"] <= e)]
    head = heads[0] if heads else e
    chosen = None
    for a, b in runs:
        if a <= head <= b:
            chosen = (a, b)
            break
    if chosen is None and not is_propn(words[head]):
        for a, b in runs:  # "biologist Nick Bos", "veteran politician Raymond Wong of ..."
            if words[a]["deprel"].split(":")[0] in ("flat", "appos") and words[a]["head"] == head:
                chosen = (a, b)
                break
    if chosen is None:
        return None
    a, b = chosen
    if label == "PER" and words[head if a <= head <= b else b]["xpos"] == "NNPS":
        return None
    return a, b


def convert_sentence(words, mwts):
    cands = []
    for s, e, etype in mentions(words):
        label = TYPE_MAP.get(etype)
        if not label:
            continue
        span = name_span(words, s, e, label)
        if span:
            cands.append((span[0], span[1], label))
    cands.sort(key=lambda c: (-(c[1] - c[0]), c[0]))
    kept = []
    for a, b, lab in cands:
        if all(b < ka or a > kb for ka, kb, _ in kept):
            kept.append((a, b, lab))
    # surface tokens
    tokens, tok_of_word, i = [], [], 0
    in_name = set(k for a, b, _ in kept for k in range(a, b + 1))
    while i < len(words):
        if i in mwts and not any(k in in_name for k in range(i, mwts[i][0] + 1)):
            end, form = mwts[i]
            tokens.append(form)
            tok_of_word.extend([len(tokens) - 1] * (end - i + 1))
            i = end + 1
        else:
            tokens.append(words[i]["form"])
            tok_of_word.append(len(tokens) - 1)
            i += 1
    spans = sorted((tok_of_word[a], tok_of_word[b] + 1, lab) for a, b, lab in kept)
    return tokens, _to_bio(len(tokens), spans)


def _to_bio(n, spans):
    tags = ["O"] * n
    for s, e, lab in spans:
        if any(t != "O" for t in tags[s:e]):
            continue  # two names inside one multi-word token: keep the first
        tags[s] = "B-" + lab
        for k in range(s + 1, e):
            tags[k] = "I-" + lab
    return tags


def genre_paths(mirrors: str, genre: str) -> list[str]:
    paths = [p for p in common.git_ls(mirrors, REPO, COMMIT, "dep/")
             if p.endswith(".conllu") and os.path.basename(p).startswith(f"GUM_{genre}_")]
    return [p for p in sorted(paths) if os.path.basename(p)[:-7] not in EXCLUDED_DOCS]


def sentences(mirrors: str, paths: list[str]):
    for p in paths:
        for words, mwts, _doc in parse_conllu(common.git_text(mirrors, REPO, COMMIT, p)):
            yield convert_sentence(words, mwts)


def main() -> None:
    ap = common.standard_args(__doc__.splitlines()[0], __file__)
    ap.add_argument("--include-nd", action="store_true", help="also write gum-conversation (CC BY-ND text)")
    args = ap.parse_args()
    entries = []
    for genre, (glabel, licence, gnotes, default) in GENRES.items():
        if not default and not args.include_nd:
            continue
        paths = genre_paths(args.mirrors, genre)
        source = f"gum-{genre}"
        stats = common.finalize(source, sentences(args.mirrors, paths), args.out, cap=args.cap, seed=args.seed)
        notes = (gnotes + " Converted from GUM's all-mention entity layer (dep/*.conllu MISC Entity): only proper-name "
                 "mentions of person/place/organization kept, trimmed to the proper-noun run (see gum.py docstring); "
                 "demonym-like plural person names (NNPS) dropped. Includes GUM train, dev and test documents "
                 "(see GUM splits.md if GUM test must stay unseen). gum-speech and gum-conversation are "
                 "converted but not trained on (licence doubts; training/ner/dataset.py EXCLUDED skips them). "
                 "Cite Zeldes 2017.")
        entries.append(common.manifest_entry(source=source, repo=REPO, commit=COMMIT, paths=paths, licence=licence,
                                             genre=glabel, stats=stats, notes=notes))
    common.write_manifest(args.manifest, entries)


if __name__ == "__main__":
    main()
