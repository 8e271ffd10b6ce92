#!/usr/bin/env python3
"""CI-ToD (Qin et al., EMNLP 2021) -> training/grounding/build/dlg_citod.jsonl

Task-oriented in-car assistant dialogues (KVRET / Stanford Multi-Domain: calendar, navigation,
weather), each with its knowledge base and human consistency labels for the final system reply:
KBI (reply contradicts the knowledge base), HI (reply contradicts the dialogue history), QI (reply
does not match the user's query). Files data/KBRetriever_DC/{calendar,navigate,weather_new}_*.json
(weather_new_train.json is over 4 MiB and absent from the snapshot; its dev/test are used).

    python3 training/grounding/sources/dlg_citod.py --mirrors DIR
"""
from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common

REPO = "yizhen20133868/CI-ToD"
COMMIT = "a8664aa8bb068df0345a127452821fa2989f9469"
DIR = "data/KBRetriever_DC/"
SPLITS = ["calendar_train", "calendar_dev", "calendar_test", "navigate_train", "navigate_dev",
          "navigate_test", "weather_new_dev", "weather_new_test"]
PATHS = [f"{DIR}{s}.json" for s in SPLITS]
LICENCE = ("MIT (README.md licence badge 'License: MIT'; the repo has no LICENSE file). Seed data "
           "KVRET (Eric et al. 2017, Stanford) is published without an explicit licence")
SPEAKER = {"driver": "user", "assistant": "assistant"}
NOTES = ("Task-oriented dialogue grounded in a structured knowledge base. context = the dialogue's "
         "KB rendered one row per line as 'field: value; ...' (empty '-' fields left out), "
         "prefixed with the domain; question = the dialogue history before the final reply, one "
         "turn per line as 'user: ...' / 'assistant: ...'; answer = the final assistant reply. "
         "Label mapping from the human annotations: kbi=1 or hi=1 -> hallucinated (reply "
         "contradicts the KB or the earlier dialogue); qi=hi=kbi=0 -> supported; qi=1 only (reply "
         "off the user's query but consistent with KB and history) -> dropped, since that is "
         "relevance not grounding. Dialogues whose last turn is the user's are dropped, and so are "
         "those with an empty KB (about 330, mostly calendar scheduling requests whose reply has no "
         "KB to be checked against; they fail the non-empty-context rule). Text is "
         "KVRET-style lower-case with underscores in entity names (the_11th, home_depot). The "
         "inconsistent replies were written by annotators (not model outputs), and many swap an "
         "entity (city, day, address) for another one, so they are short, entity-level "
         "contradictions. weather_new_train.json (>= 4 MiB) is absent, so weather comes from "
         "dev/test only. Licence caveat: MIT is stated only by a README badge and the KVRET seed "
         "carries no explicit licence.")


def render_kb(domain: str, items) -> str:
    lines = [f"Knowledge base ({domain}):"]
    for it in items or []:
        if not isinstance(it, dict):
            continue
        fields = [f"{k}: {v}" for k, v in it.items() if v not in (None, "", "-")]
        if fields:
            lines.append("; ".join(fields))
    return "\n".join(lines) if len(lines) > 1 else ""


def records(mirrors: str):
    for split, path in zip(SPLITS, PATHS, strict=False):
        domain = split.split("_")[0]
        for d in json.loads(common.git_text(mirrors, REPO, COMMIT, path)):
            turns = d.get("dialogue") or []
            if not turns or turns[-1].get("turn") != "assistant":
                continue
            sc = d["scenario"]
            qi, hi, kbi = (str(sc.get(k, "0")).strip() == "1" for k in ("qi", "hi", "kbi"))
            if kbi or hi:
                label = "hallucinated"
            elif qi:
                continue
            else:
                label = "supported"
            context = render_kb(domain, (sc.get("kb") or {}).get("items"))
            history = "\n".join(f"{SPEAKER.get(t['turn'], t['turn'])}: {t['utterance'].strip()}"
                                for t in turns[:-1])
            yield {"id": f"{split}:{d['id']}", "family": "dialogue", "context": context,
                   "question": history, "answer": turns[-1]["utterance"].strip(), "label": label}


def main() -> None:
    args = common.standard_args(__doc__.splitlines()[0], __file__).parse_args()
    common.convert(args, source="dlg_citod", records=records(args.mirrors), repo=REPO, commit=COMMIT,
                   paths=PATHS, licence=LICENCE, notes=NOTES)


if __name__ == "__main__":
    main()
