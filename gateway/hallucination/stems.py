"""The crude, consistent stemmer that the grounding check and the WordNet lexicon compare words by.

`stem(word)` folds inflections ("increased", "increasing", "increases" -> "increas"), irregular forms
("rose" -> "rise", "spoke" -> "speak", "children" -> "child") and British spellings (`spelling.py`)
onto one key. It only has to be consistent, not linguistically right: both sides of every comparison
go through it.
"""

from __future__ import annotations

import re
from functools import lru_cache

from gateway.hallucination.spelling import american

_IRREGULAR = {
    "shrank": "shrink", "shrunk": "shrink", "sank": "sink", "sunk": "sink", "lost": "lose", "won": "win",
    "rose": "rise", "risen": "rise", "fell": "fall", "fallen": "fall", "grew": "grow", "grown": "grow",
    "bought": "buy", "sold": "sell", "began": "begin", "begun": "begin", "gave": "give", "given": "give",
    "took": "take", "taken": "take", "paid": "pay", "spent": "spend", "met": "meet", "held": "hold",
    "led": "lead", "left": "leave", "went": "go", "gone": "go", "saw": "see", "seen": "see", "said": "say",
    "told": "tell", "thought": "think", "brought": "bring", "built": "build", "kept": "keep",
    "found": "find", "became": "become", "chose": "choose", "chosen": "choose", "drove": "drive",
    "driven": "drive", "wrote": "write", "written": "write", "beat": "beat", "hit": "hit", "cut": "cut",
    "better": "good", "best": "good", "worse": "bad", "worst": "bad", "men": "man", "women": "woman",
    "children": "child", "people": "person", "data": "data", "media": "media", "news": "news",
}
# More irregular verbs, each base then its forms: "spoke" must meet WordNet's "speak" ("talked" for "spoke"
# is a synonym, not a swapped word).
_IRREGULAR_VERBS = """
speak spoke spoken; run ran; come came; know knew known; draw drew drawn; fly flew flown
throw threw thrown; forget forgot forgotten; freeze froze frozen; hide hid hidden
ride rode ridden; ring rang rung; sing sang sung; swim swam; steal stole stolen; strike struck
swear swore sworn; tear tore torn; wear wore worn; wake woke woken; break broke broken
fight fought; catch caught; teach taught; seek sought; send sent; lend lent; bend bent
deal dealt; feel felt; mean meant; sleep slept; sweep swept; weep wept; sit sat; stand stood
understand understood; withdraw withdrew withdrawn; undertake undertook undertaken
overcome overcame; forgive forgave forgiven; shake shook shaken; lay laid; hang hung; dig dug
feed fed; flee fled; breed bred; bleed bled; hear heard; bear bore borne; bite bitten
drink drank drunk; eat ate eaten; forbid forbade forbidden; mistake mistook; shoot shot
shine shone; slide slid; spin spun; stick stuck; sting stung; swing swung; arise arose arisen
overtake overtook overtaken; oversee oversaw overseen; undergo underwent undergone; uphold upheld
withhold withheld; mislead misled; outgrow outgrew
"""
_IRREGULAR.update(
    {form: words[0] for words in map(str.split, re.split(r"[;\n]", _IRREGULAR_VERBS)) for form in words[1:]}
)


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A crude, consistent stem: 'increased', 'increasing', 'increases', 'increase' -> 'increas'."""
    w = american(word.lower().replace("’", "'"))
    w = _IRREGULAR.get(w, w)
    if w.endswith("'s"):
        w = w[:-2]
    w = w.strip("'")
    if len(w) <= 3:
        return w
    for suffix, repl in (("ies", "y"), ("ied", "y"), ("sses", "ss"), ("ing", ""), ("ed", ""), ("es", "e")):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            w = w[: len(w) - len(suffix)] + repl
            break
    else:
        if w.endswith("ly") and len(w) > 5:
            w = w[:-2]
        elif w.endswith("s") and not w.endswith(("ss", "us", "is")) and len(w) > 3:
            w = w[:-1]
    if w.endswith("e") and len(w) > 3:
        w = w[:-1]
    if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "aeiou":
        w = w[:-1]
    return w
