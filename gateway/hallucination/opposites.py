"""Words that flip a statement when one stands in another's place: antonyms and closed classes.

`hand_antonyms()` is a hand list of opposed pairs ("increase"/"decrease", "approve"/"reject"),
`class_mates()` the other members of closed classes whose members exclude each other
("hours"/"minutes", "pink"/"yellow"), and `content_antonyms` WordNet's antonyms of a content word
(`lexicon.py`). All answer in stems (`stems.py`).
"""

from __future__ import annotations

from functools import lru_cache

from gateway.hallucination.lexicon import Lexicon
from gateway.hallucination.stems import stem
from gateway.hallucination.tokens import STOPWORDS

# Pairs of words that flip a statement when one replaces the other. Stems are compared, so listing
# base forms is enough; and so "lose" also stands for "losses", which is why verbs that only oppose
# the verb ("recover", "earn", "succeed") are not paired with it: "recovered $20 million of
# provisions for credit losses" restates its source.
_ANTONYM_PAIRS = """
increase decrease; increase decline; increase drop; increase fall; increase reduce; increase cut;
rise fall; rise decline; rise drop; grow shrink; grow fall; grow decline; grow drop; climb fall;
climb drop; climb decline; gain fall; gain drop; gain loss; gain lose; profit loss; up down;
higher lower; high low; more less; more fewer; larger smaller; large small; big small; bigger smaller;
greater lesser; above below; over under; before after; early late; earlier later; first last;
start finish; open close; accept reject; approve reject; allow prohibit;
allow ban; agree disagree; support oppose; win lose; success failure; succeed fail; positive negative;
strong weak; stronger weaker; good bad; improve worsen; improve deteriorate;
expand contract; expand shrink; buy sell; purchase sell; add remove; include exclude; hire fire;
hire lay; import export; internal external; inside outside; maximum minimum; max min; always never;
all none; everyone nobody; true false; correct incorrect; possible impossible; likely unlikely;
legal illegal; public private; majority minority; north south; east west; left right; new old;
young old; same different; similar different; easy difficult; easy hard; fast slow; quick slow;
cheap expensive; rich poor; full empty; heavy light; long short; safe dangerous; present absent;
pass fail; surge plunge; surge shrink; surge slump; soar plunge; boost reduce; boost hinder;
help hinder; help hurt; help harm; raise lower; above beneath; within outside; within beyond;
strengthen weaken; strength weakness; perfect worst; prior current; previous current; past future;
extract ignore; partial complete; partial full; cheap costly; expensive affordable;
benefit harm; benefit cost; advantage disadvantage; asset liability; credit debit; income expense;
surplus deficit; inflow outflow; upgrade downgrade; outperform underperform; bullish bearish;
optimistic pessimistic; confident uncertain; certain uncertain; clear unclear; sufficient insufficient;
able unable; available unavailable; known unknown; like dislike; love hate; praise criticize;
encourage discourage; enable prevent; enable disable; allow prevent; easy challenging; simple complex;
simple complicated; rare common; frequent rare; often rarely; always rarely; most least; many few;
everyone none; everything nothing; major minor; primary secondary; maximum minimal; dead alive;
arrive depart; enter exit; import export; win defeat; victory defeat; attack defend; guilty innocent;
convict acquit; peace war; ally enemy; friend enemy; agree refuse; confirm deny; admit deny;
remember forget; continue stop; join leave; include omit; keep sell;
male female; man woman; men women; husband wife; father mother; son daughter; brother sister;
domestic international; domestic foreign; local national; local global;
sink surge; sink rise; sink soar; growth shrinkage; growth decline; growth contraction;
prior later; prior subsequent; pre post; wide limited; wide narrow; broad narrow; advanced basic;
advanced mediocre; remove include; build prevent; now later; separate combine; combine split;
hike cut; upside downside; tailwind headwind; acceleration deceleration; accelerate slow;
overweight underweight; overestimate underestimate; inflow outflow; beat miss; exceed miss;
""".strip()

# Closed classes whose members exclude each other: one put in another's place changes the fact
# ("within days" -> "within years", "yellow and blue paint" -> "pink and green"), though WordNet
# makes them two-step relatives, which otherwise count as a paraphrase. Words with a common other
# sense are left out ("second", "fall", "spring", "may", "march"), and so are classes that also name
# tiers or materials ("gold", "silver": a "Gold plan" beside a "Silver plan") and frequencies, which
# the stemmer folds into the units ("monthly" is "month", so "annual" would oppose "per month").
# Members stand side by side in lists and ranges ("Monday to Friday", "yellow and blue"), so one
# counts against another only where the aligned sentences lack it (`claim_features._anchored_flips`).
_EXCLUSIVE_CLASSES = """
red orange yellow green blue purple violet pink brown black white grey gray;
minute hour day week month year decade century;
monday tuesday wednesday thursday friday saturday sunday;
january february april june july august september october november december;
summer autumn winter;
north south east west;
northern southern eastern western;
morning afternoon evening;
breakfast lunch dinner;
mother father son daughter brother sister wife husband grandmother grandfather uncle aunt niece nephew;
boy girl;
""".strip()


def _opposites(groups: str, size: int | None = None) -> dict[str, set[str]]:
    """Each stem of the ";"-separated groups with the other stems of its group(s)."""
    table: dict[str, set[str]] = {}
    for group in groups.replace("\n", " ").split(";"):
        words = group.split()
        if not words or size is not None and len(words) != size:
            continue
        stems = {stem(w) for w in words}
        for a in stems:
            table.setdefault(a, set()).update(stems - {a})
    return table


@lru_cache(maxsize=1)
def hand_antonyms() -> dict[str, frozenset[str]]:
    """The hand list's antonyms of each stem."""
    return {k: frozenset(v) for k, v in _opposites(_ANTONYM_PAIRS, size=2).items()}


@lru_cache(maxsize=1)
def class_mates() -> dict[str, frozenset[str]]:
    """The other members of each stem's closed class, less its hand-listed antonyms ("husband" has
    "wife" among its antonyms, and the rest of its kin here)."""
    pairs = hand_antonyms()
    return {
        k: frozenset(v - pairs.get(k, frozenset())) for k, v in _opposites(_EXCLUSIVE_CLASSES).items()
    }


def content_antonyms(lexicon: Lexicon, word: str) -> frozenset[str]:
    """WordNet's antonyms of a content word that are content words too: "offer" reads as the
    comparative of "off", whose antonym "on" stands in every other sentence."""
    return frozenset(a for a in lexicon.antonyms(word) if a not in STOPWORDS)
