#!/usr/bin/env python3
"""InLegalNER / OpenNyAI Indian court-judgment NER (Kalamkar et al. 2022), judgment + preamble train/dev.

The original release (NER_TRAIN.zip / NER_DEV.zip, linked from Legal-NLP-EkStep/legal_NER, Apache-2.0)
is not on GitHub in files < 4 MiB; this reads the whitespace-tokenised BIO conversion committed in
Ast97/Data_Augmentation_for_Low_Resource_Indian_Legal_NER (Simple_Augmentation_BiLSTM/
data-augmentation-ner-legal-main/data/bio_format/NER_{TRAIN,DEV}_{JUDGEMENT,PREAMBLE}.txt) at a pinned
commit. Mapping: JUDGE, LAWYER, WITNESS, OTHER_PERSON -> PER; PETITIONER/RESPONDENT -> PER, or ORG when
the span looks like an institution (State of ..., Union of India, ... Ltd, Commissioner of ...);
COURT, ORG -> ORG; GPE -> LOC; STATUTE, PROVISION, CASE_NUMBER, DATE -> O (so "section 33",
"Article 14" are O). Sentences containing a PRECEDENT span are dropped (party names inside case
citations are not annotated as persons), as are sentences with leaked HTML.

    python3 training/ner/sources/indian_legal_ner.py --mirrors DIR --out training/ner/build
"""
from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

SOURCE = "indian_legal_ner"
REPO = "Ast97/Data_Augmentation_for_Low_Resource_Indian_Legal_NER"
COMMIT = "fcca429ce5952a55b342c268ef3eca2e21532124"
BASE = "Simple_Augmentation_BiLSTM/data-augmentation-ner-legal-main/data/bio_format/"
FILES = ["NER_TRAIN_JUDGEMENT.txt", "NER_TRAIN_PREAMBLE.txt", "NER_DEV_JUDGEMENT.txt", "NER_DEV_PREAMBLE.txt"]
PATHS = [BASE + f for f in FILES]

PERSON_TYPES = {"JUDGE", "LAWYER", "WITNESS", "OTHER_PERSON"}
PARTY_TYPES = {"PETITIONER", "RESPONDENT"}
MAPPING = {**{t: "PER" for t in PERSON_TYPES}, **{t: "PARTY" for t in PARTY_TYPES},
           "COURT": "ORG", "ORG": "ORG", "GPE": "LOC"}
ORG_WORDS = {
    "state", "states", "union", "india", "government", "govt", "govt.", "ltd", "ltd.", "limited",
    "corporation", "company", "co", "co.", "bank", "board", "commissioner", "commission", "authority",
    "department", "dept", "dept.", "society", "trust", "council", "municipal", "municipality",
    "officer", "collector", "committee", "university", "pvt", "pvt.", "private", "inc", "inc.",
    "association", "tribunal", "police", "insurance", "railway", "railways", "directorate",
    "ministry", "secretary", "cbi", "c.b.i.", "income-tax", "income", "tax", "customs", "excise",
    "assistant", "deputy", "director", "registrar", "panchayat", "m/s", "m/s.", "bench",
    "corp", "corp.", "industries", "enterprises", "mills", "institute", "college", "school",
    "hospital", "agency", "federation", "cooperative", "co-operative", "sangh", "samiti", "nigam",
    "parishad", "mandal", "sabha", "ltd.,", "llp", "firm", "traders", "sons", "brothers", "&",
    "hindu", "undivided", "family", "huf", "estate", "manager", "officers", "authorities",
    "inspector", "superintendent", "sub-inspector", "station", "directors", "chairman",
    "president", "general", "administrator", "controller", "cit", "acit", "dcit", "ito",
}
CITATION_WORDS = {"Article", "Section", "Rule", "Order", "Clause", "Schedule", "Act"}
HTML = re.compile(r"</?span|class=|id=\"span|hidden_text")
LEAD = re.compile(r"^[(\[\"“‘:]+")
TRAIL = re.compile(r"[,;:)\]\"”!?]+$")


def read_bio(text):
    toks, tags = [], []
    for line in text.splitlines():
        if not line.strip():
            if toks:
                yield toks, tags
            toks, tags = [], []
            continue
        parts = line.rsplit(None, 1)
        if len(parts) != 2:
            continue
        toks.append(parts[0])
        tags.append(parts[1])
    if toks:
        yield toks, tags


def retokenise(toks, tags):
    """Split leading/trailing punctuation off whitespace tokens; tags follow the entity."""
    out_t, out_g = [], []
    n = len(toks)
    for i, (w, t) in enumerate(zip(toks, tags, strict=True)):
        inside_next = i + 1 < n and tags[i + 1].startswith("I-")
        lead = LEAD.match(w)
        lead_s = lead.group(0) if lead else ""
        core = w[len(lead_s):]
        trail = TRAIL.search(core)
        trail_s = trail.group(0) if trail else ""
        core = core[: len(core) - len(trail_s)]
        if i == n - 1 and core.endswith(".") and len(core) > 1 and not re.search(r"\.\w+\.$|^\w\.$", core):
            trail_s = "." + trail_s
            core = core[:-1]
        if not core:
            out_t.append(w)
            out_g.append(t)
            continue
        typ = t[2:] if t != "O" else None
        for ch in lead_s:
            out_t.append(ch)
            out_g.append("I-" + typ if t.startswith("I-") else "O")
        out_t.append(core)
        out_g.append(t)
        for ch in trail_s:
            out_t.append(ch)
            out_g.append("I-" + typ if (typ and inside_next) else "O")
    return out_t, out_g


def party_type(words):
    low = {w.lower().strip(".,()") for w in words} | {w.lower() for w in words}
    return "ORG" if low & ORG_WORDS else "PER"


def convert(mirrors, counters):
    for path in PATHS:
        for toks, raw in read_bio(common.git_text(mirrors, REPO, COMMIT, path)):
            counters["input"] += 1
            if any(HTML.search(w) for w in toks):
                counters["dropped_html"] += 1
                continue
            if any(r.endswith("PRECEDENT") for r in raw):
                counters["dropped_precedent"] += 1
                continue
            toks, raw = retokenise(toks, raw)
            bio = common.to_bio(raw, MAPPING)
            for s, e, typ in common.spans(bio):
                if " ".join(toks[s:e]) in CITATION_WORDS:  # stray "Article"/"Section" tags
                    for i in range(s, e):
                        bio[i] = "O"
                    continue
                if typ == "PARTY":
                    t = party_type(toks[s:e])
                    counters["party_as_" + t] += 1
                    bio[s] = "B-" + t
                    for i in range(s + 1, e):
                        bio[i] = "I-" + t
            yield toks, bio


def main() -> None:
    args = common.standard_args(__doc__.splitlines()[0], __file__).parse_args()
    counters = Counter()
    stats = common.finalize(SOURCE, convert(args.mirrors, counters), args.out, cap=args.cap, seed=args.seed)
    stats.update(counters)
    entry = common.manifest_entry(
        source=SOURCE, repo=REPO, commit=COMMIT, paths=PATHS,
        licence=("Apache-2.0 as stated by the publishing repo Legal-NLP-EkStep/legal_NER (LICENSE @ a25ca29), "
                 "which links the data; the copy used here sits in a folder whose LICENSE is MIT (code of "
                 "fusion-jena/data-augmentation-ner-legal). No separate data licence file found."),
        genre="legal", stats=stats,
        notes=("Indian Supreme/High Court judgment sentences and preambles (OpenNyAI InLegalNER). Copy is "
               "the whitespace-tokenised BIO conversion in the Ast97 repo (train+dev; raw JSON train files "
               "are >= 4 MiB and absent); punctuation re-split from words here. PETITIONER/RESPONDENT "
               "-> ORG by keyword heuristic (State/Union/Ltd/Commissioner/...) else PER "
               f"({counters['party_as_PER']} PER, {counters['party_as_ORG']} ORG). Dropped: "
               f"{counters['dropped_precedent']} sentences with PRECEDENT spans, {counters['dropped_html']} "
               "with leaked HTML. Statute/provision/case-number/date -> O. Preambles longer than 120 tokens "
               "are split at O positions. Capped/sampled with the fixed seed if above the cap."))
    common.write_manifest(args.manifest, [entry])


if __name__ == "__main__":
    main()
