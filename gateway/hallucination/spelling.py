"""British spellings read as American ones, so that a context written in one and an answer in the
other share their stems: "maximise"/"maximize", "organisation"/"organization", "centre"/"center",
"colour"/"color", "analyse"/"analyze", "defence"/"defense".

Applied to both sides before stemming, so a word that merely looks British ("promise" ->
"promize") is rewritten the same way wherever it appears and still matches itself. The only risk is
two different words meeting in one spelling, and the roots below were chosen so that none do.
"""

from __future__ import annotations

import re

# Roots whose British form can't be told by its ending alone; any word starting with one is
# rewritten ("colourful", "labourers", "favourite", "defences").
_ROOTS = {
    "colour": "color", "favour": "favor", "honour": "honor", "labour": "labor", "behaviour": "behavior",
    "neighbour": "neighbor", "harbour": "harbor", "rumour": "rumor", "humour": "humor", "flavour": "flavor",
    "vapour": "vapor", "armour": "armor", "endeavour": "endeavor", "savour": "savor", "vigour": "vigor",
    "odour": "odor", "parlour": "parlor", "clamour": "clamor", "saviour": "savior", "licence": "license",
    "defence": "defense", "offence": "offense", "pretence": "pretense", "programme": "program",
    "catalogue": "catalog", "analogue": "analog", "grey": "gray", "jewellery": "jewelry",
    "aluminium": "aluminum", "mould": "mold", "plough": "plow", "sceptic": "skeptic", "judgement": "judgment",
    "ageing": "aging", "enrolment": "enrollment", "fulfil": "fulfill", "skilful": "skillful",
    "manoeuvr": "maneuver", "paediatric": "pediatric", "anaesthe": "anesthe", "haemo": "hemo",
    "foetus": "fetus", "orthopaedic": "orthopedic", "encyclopaedia": "encyclopedia", "oestrogen": "estrogen",
    "tumour": "tumor", "cosy": "cozy", "draught": "draft", "kerb": "curb",
}
_ROOT = re.compile("^(?:" + "|".join(sorted(_ROOTS, key=len, reverse=True)) + ")")
# -re for -er, with its inflections: "centred"/"centered", "metres"/"meters", "centring"/"centering".
_RE = re.compile(r"^(centr|theatr|metr|litr|fibr|calibr|sombr|spectr|lustr|meagr)(e|es|ed|ing)$")
_RE_ENDINGS = {"e": "", "es": "s", "ed": "ed", "ing": "ing"}
# -ise/-isation and -yse: "realised", "organisations", "analysing"; the stem before it has at least
# three letters, so "rise", "raise" and "wise" are left alone.
_ISE = re.compile(r"^(\w{3,})is(e|es|ed|ing|ation|ations|ational|er|ers)$")
_YSE = re.compile(r"^(\w{2,}[^a])ys(e|es|ed|ing|er|ers)$")


def american(word: str) -> str:
    """`word` (lower case) in American spelling; unchanged when it has no British form."""
    m = _ROOT.match(word)
    if m:
        return _ROOTS[m.group(0)] + word[m.end() :]
    m = _RE.match(word)
    if m:
        return f"{m.group(1)[:-1]}er{_RE_ENDINGS[m.group(2)]}"
    m = _ISE.match(word)
    if m:
        return f"{m.group(1)}iz{m.group(2)}"
    m = _YSE.match(word)
    if m:
        return f"{m.group(1)}yz{m.group(2)}"
    return word
