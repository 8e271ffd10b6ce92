"""Prompt-injection and jailbreak score in [0, 1].

Three kinds of evidence, combined by a logistic regression whose coefficients are fitted offline
(`bench/injection_eval.py`, coefficients and data split in `data/injection_model.json`):

- patterns: families of phrasings that attacks rely on (instruction override, "developer mode",
  refusal suppression, dual answers, ...). Each family is one binary feature, so a benign text that
  happens to contain one phrase ("stay in character as Sherlock Holmes") is not condemned by it alone;
- structure: how hard the text talks *at the model* (second-person density, commands about how to
  answer, persona definitions, mentions of AI/policies), saturating so that length alone earns nothing;
- embeddings: the nearest authored attack exemplar versus the nearest authored benign exemplar,
  over the text's chunks;
- wording: the probability from a word n-gram model (`text_model.py`), for the attack vocabulary
  that no family names.

Length is deliberately not a feature: on the evaluation data it separates the classes by itself
(attacks are long, ordinary tasks short), which says nothing about a long pasted document.
The model's intercept is set so that 0.5 is the operating point chosen in cross-validation.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from gateway.risk.prepare import Prepared
from gateway.risk.text_model import TextModel

DATA = Path(__file__).resolve().parent / "data"

_W = r"[^.!?\n]{0,40}"  # a short stretch inside one sentence

# One regex per attack family, matched against `text.normalize()` output (case-folded, straight quotes).
PATTERNS: dict[str, re.Pattern[str]] = {
    "override": re.compile(
        r"\b(ignore|disregard|forget)\s+(all of |everything "
        r"|anything )?(the |what's |what is )?(above|previous|prior|"
        r"preceding|said before)\b(?=\s*(and\b|[,.;:!]|$))"
        r"|\bforget (everything|all|anything) (you (have |'ve )?(learned|been told|were told|know)|before)\b"
        r"|\b(ignore|disregard|forget|skip|bypass|override|overwrite|discard|drop)\b"
        + _W
        + r"\b(previous|prior|above|earlier|preceding|initial|original|all|any|your|the|these|those|system)\b"
        + _W
        + r"\b(instructions?|prompts?|rules|guidelines|directives?|programming|directions|context|messages?|"
        r"training|policy|policies|restrictions|filters?)\b"
    ),
    "new_instructions": re.compile(
        r"\b(new|updated|real|actual|true|secret|hidden)\s+(instructions?|rules|directives?|task)\b"
        r"|\bsystem\s*(override|update|message)\b|\boverride code\b"
        r"|\badmin(istrator)? (mode|access|override)\b"
    ),
    "prompt_leak": re.compile(
        r"\byour (system prompt|system message|initial instructions"
        r"|hidden instructions|original instructions)\b"
        r"|\b(reveal|print|show|repeat|output|display|tell me|list|what (is|are|were)|what's)\b"
        + _W
        + r"(system (prompt|message|instructions)|(initial|original"
        r"|hidden|secret|confidential) (prompt|instructions|"
        r"rules)|pre-?prompt|everything (above|before)|the text above|words above)"
    ),
    "persona_name": re.compile(
        r"do anything now|\b(as|called|named|you are|you're|be|is)\s+(dan|stan|dude|aim|betterdan|anti-?dan|"
        r"mongo tom|evilbot|chaosgpt|devmode)\b|\[(dan|jailbreak"
        r"|classic|🔓|🔒)[^\]]{0,20}\]|(^|\n)\s*(dan|stan|dude)\s*:"
    ),
    "jailbreak_word": re.compile(r"\bjail ?break(s|ing|ed|en)?\b"),
    "mode": re.compile(
        r"\b(developer|dev|god|debug|admin|sudo|unrestricted"
        r"|unfiltered|uncensored|opposite|evil|chaos|jailbreak|"
        r"dan|freedom|unlocked|anti-?censorship)\s+mode\b"
    ),
    "unrestricted": re.compile(
        r"\b(no|without|free (from|of)|freed from|not bound by"
        r"|unbound by|doesn't have|does not have|don't have|"
        r"do not have|devoid of|void of|break(s)? free (of|from)|escaped|beyond|outside)\b"
        + r"[^.!?\n]{0,30}"
        + r"\b(restrictions?|limitations?|limits|filters?"
        r"|filtering|censorship|boundaries|ethics|ethical|morals?|"
        r"moral|principles|constraints|polic(y|ies)|safeguards|confines|programming|guidelines)\b"
    ),
    "amoral_words": re.compile(
        r"\b(unfiltered|uncensored|amoral|nonmoral|unrestricted"
        r"|unhinged|no-holds-barred|without (any )?remorse|"
        r"unethical|immoral)\b"
    ),
    "policy_ref": re.compile(
        r"\b(openai|anthropic|google)('s)?\s+(content\s+)?(polic(y"
        r"|ies)|guidelines|rules|restrictions|filters?)"
        r"|\bcontent (polic(y|ies)|filters?|moderation)\b"
        r"|\bsafety (rules|guidelines|filters?|layer|training)\b"
    ),
    "refusal_suppression": re.compile(
        r"\b(never|not|don't|do not|cannot|can't|won't|will not|must not|mustn't|shouldn't)\s+(ever\s+)?"
        r"(refuse|decline|deny|reject|say no|apologi[sz]e|censor|filter|warn)\b"
        r"|\b(never|don't|do not|not|without)\s+(say|use"
        r"|include|add|write|mention|giving|adding|including)\s+"
        r"[^.!?\n]{0,25}(sorry|apologi|as an ai|i cannot|i can't|warnings?|disclaimers?|caveats?|moral|ethic)"
    ),
    "character": re.compile(
        r"\b(stay|remain|keep|break(ing)?|out of|drop(ping)?)\s+(in\s+)?(the\s+)?(character|role|persona)\b"
    ),
    "dual_response": re.compile(
        r"\b(two|2|both|dual|separate|different)\s+(different\s+|separate\s+|distinct\s+)?(responses|answers|"
        r"ways|outputs|personalities|personas|replies)\b|\((normal|developer mode|🔒|🔓)[^)]{0,20}output\)"
    ),
    "ai_reference": re.compile(
        r"\b(as an ai|language model|ai model|chatgpt|gpt-?[34]|openai|your (programming|training|creators|"
        r"developers|guidelines)|an ai (that|who|which|called|named|without))\b"
    ),
    "persona_setup": re.compile(
        r"\b(you are|you're|you will be|act as|acting as"
        r"|pretend (to be|you are|that you)|role-?play|play the "
        r"(role|character|part)|simulate|embody|impersonate|take on the (role|persona))\b"
    ),
    "from_now_on": re.compile(
        r"\b(from now on|from this (point|moment)|for the rest of (this|the|our) conversation|henceforth|"
        r"until i (say|tell you)|throughout this conversation)\b"
    ),
    "token_game": re.compile(
        r"\b(tokens?|points?|lives)\b[^.!?\n]{0,60}\b(lose|deduct(ed)?|lost|die|dies|cease|shut down|deleted|"
        r"terminated|disabled)\b"
    ),
    "compliance_demand": re.compile(
        r"\byou (must|will|shall|have to|should) (always|never)\b"
        r"|\balways (answer|respond|comply|provide|reply)"
        r"|\b(answer|respond to|reply to|fulfil?l?) (any|every|all) (question|request|prompt|command)s?"
        r"|no matter (what|how)"
    ),
    "harm_words": re.compile(
        r"\b(illegal|harmful|explicit|offensive|nsfw|violent|hateful|racist|sexual|profanity|swear(s|ing)?|"
        r"curse words|malware|drugs?|weapons?|bombs?|explosives?)\b"
    ),
    "fiction_frame": re.compile(
        r"\b(hypothetical(ly)?|fictional|imaginary|parallel universe|in this (story|world|universe|game)|"
        r"let's (play|imagine|pretend)|thought experiment)\b"
    ),
    "encoding": re.compile(
        r"\b(base64|rot13|leetspeak|l33t|morse code|reversed? text|decode this|encrypted)\b"
    ),
    "confirm_ritual": re.compile(
        r"\b(confirm|acknowledge|reply|respond|answer)\b[^.!?\n]{0,30}\b(by saying|by replying|by stating|"
        r"with|only with)\s*[\"']|\bif you (understand|agree)\b"
    ),
    "persona_syntax": re.compile(
        r"\(\s*(user|assistant|character|personality|output|title|ai)[^)]{0,20}\)\s*=\s*\["
        r"|\b(personality|awareness|user class|assistant|character name|function)\s*=\s*\["
        r"|(\.\.\.|---|[.-]{1,5}) (?:[.-]{1,5} ){6,}"
    ),  # bracket-assignment persona scripts; morse code
    "indirect_marker": re.compile(
        r"\b(note|message|instructions?) (to|for) (the |any |all )?(ai|assistant|model|llm|chatbot|agent)s?\b"
        r"|\b(ai|assistant|model|llm|agent)s? (reading|processing|summari[sz]ing) this\b|<!--"
        r"|\[(system|admin|assistant)\]|(^|\n)\s*(system|assistant)\s*:"
    ),
}

# Families that, alone, are specific enough to call an attempt: the evaluation data holds few direct
# injections ("ignore previous instructions"), so a fitted weight alone would undervalue them.
STRONG = ("override", "new_instructions", "prompt_leak", "persona_name", "mode", "indirect_marker")
STRONG_FLOOR = 0.8

_YOU = re.compile(r"\byou(r|rs|rself)?\b|\byou're\b")
_COMMAND = re.compile(
    r"\byou (will|must|shall|are going to|have to|can't|cannot|won't|are not|are now|are no longer)\b"
)
_WORD = re.compile(r"\w+")
_DEFINE_NAME = re.compile(r"\b(named|called|known as|stands for|name is)\s+[\"']?[A-Z][A-Za-z0-9]+")

STRUCTURE = ("you_density", "command_density", "defines_name", "pattern_breadth")
EMBEDDING = ("attack_sim", "benign_sim", "sim_margin", "attack_sim_mean")
WORDING = ("text_prob",)
FEATURES: tuple[str, ...] = (*PATTERNS, *STRUCTURE, *EMBEDDING, *WORDING)


def _sat(x: float, half: float) -> float:
    """0 at 0, 0.5 at `half`, approaching 1: bounded so that more of the same counts less and less."""
    return x / (x + half) if x > 0 else 0.0


def pattern_hits(norm: str) -> dict[str, bool]:
    return {name: bool(rx.search(norm)) for name, rx in PATTERNS.items()}


@dataclass(frozen=True)
class Exemplars:
    attack: np.ndarray  # (n, DIM) unit rows
    benign: np.ndarray


def features(p: Prepared, ex: Exemplars | None, text: TextModel | None = None) -> np.ndarray:
    """The feature vector, in the order of `FEATURES`; every value is in [0, 1] or [-1, 1] (margin)."""
    hits = pattern_hits(p.norm)
    words = max(1, len(_WORD.findall(p.norm)))
    you = len(_YOU.findall(p.norm))
    commands = len(_COMMAND.findall(p.norm))
    structure = [
        _sat(100.0 * you / words, 4.0),  # "you" per 100 words; ordinary task prompts sit near 0-3
        _sat(100.0 * commands / words, 0.5),
        1.0 if _DEFINE_NAME.search(p.raw) else 0.0,
        _sat(float(sum(hits.values())), 3.0),
    ]
    if ex is not None and len(p.vectors):
        a = p.vectors @ ex.attack.T  # (chunks, attack exemplars)
        b = p.vectors @ ex.benign.T
        a_best, b_best = a.max(axis=1), b.max(axis=1)
        embedding = [
            float(a_best.max()),
            float(b_best.max()),
            float((a_best - b_best).max()),
            float(a_best.mean()),
        ]
    else:
        embedding = [0.0, 0.0, 0.0, 0.0]
    wording = [text.prob(p.norm) if text is not None else 0.0]
    return np.array([float(v) for v in hits.values()] + structure + embedding + wording, dtype=np.float32)


PATTERN_FEATURES: tuple[str, ...] = tuple(f for f in FEATURES if f not in EMBEDDING)


@dataclass(frozen=True)
class InjectionModel:
    """Logistic-regression weights over `features` (all of them, or `PATTERN_FEATURES` only)."""

    features: tuple[str, ...]
    coef: np.ndarray
    intercept: float
    meta: dict

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", np.array([FEATURES.index(f) for f in self.features]))

    def score_features(self, x: np.ndarray) -> float:
        z = float(x[self._index] @ self.coef) + self.intercept  # type: ignore[attr-defined]
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    @staticmethod
    def load(path: Path) -> InjectionModel:
        doc = json.loads(path.read_text())
        names = tuple(doc["features"])
        if not set(names) <= set(FEATURES) or len(doc["coef"]) != len(names):
            raise ValueError(
                f"{path} was fitted on other features; refit it with bench/injection_eval.py --write"
            )
        return InjectionModel(
            names, np.array(doc["coef"], dtype=np.float32), float(doc["intercept"]), doc.get("meta", {})
        )


MODEL_PATH = DATA / "injection_model.json"
PATTERN_MODEL_PATH = DATA / "injection_model_patterns.json"
TEXT_MODEL_PATH = DATA / "injection_text_model.json"


@cache
def text_model() -> TextModel | None:
    return TextModel.load(TEXT_MODEL_PATH) if TEXT_MODEL_PATH.exists() else None


@cache
def exemplar_texts() -> dict[str, list[str]]:
    doc = json.loads((DATA / "injection_exemplars.json").read_text())
    return {"attack": list(doc["attack"]), "benign": list(doc["benign"])}


class InjectionDetector:
    """Scores prepared texts. Build once per process: it embeds the exemplars on construction.

    Without an embedder it uses the pattern-and-structure model, fitted separately for that case.
    """

    def __init__(self, embedder, model: InjectionModel | None = None) -> None:
        self.exemplars: Exemplars | None = None
        if embedder is not None:
            texts = exemplar_texts()
            self.exemplars = Exemplars(embedder.encode(texts["attack"]), embedder.encode(texts["benign"]))
        self.model = model or InjectionModel.load(MODEL_PATH if embedder is not None else PATTERN_MODEL_PATH)
        # a model fitted before the wording feature existed gives it no weight, so skip computing it
        self.text = text_model() if "text_prob" in self.model.features else None
        self._strong = [FEATURES.index(f) for f in STRONG]

    def score(self, p: Prepared) -> float:
        x = features(p, self.exemplars, self.text)
        s = self.model.score_features(x)
        if math.isnan(s):
            s = 1.0  # fail closed: a number we cannot trust is treated as an attempt
        if x[self._strong].any():
            s = max(s, STRONG_FLOOR)
        return s

    def strong_families(self, p: Prepared) -> list[str]:
        """Names of the strong pattern families present (for reasons; never the matched text)."""
        return [f for f in STRONG if PATTERNS[f].search(p.norm)]
