"""policies/README.md documents every section of the policy, each with an example under its heading
that is a valid overlay of the shipped default policy."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.policy import Policy
from gateway.policy.loader import PolicyError, compile_documents, read_document

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "policies" / "README.md").read_text()


def test_every_section_is_documented_with_a_valid_example(tmp_path):
    overlay, problems = tmp_path / "example.yaml", []
    for name in Policy.model_fields:
        match = re.search(rf"^### `{name}`.*?$(.*?)(?=^##)", README, re.S | re.M)
        examples = re.findall(rf"```yaml\n((?:#.*\n)*{name}:.*?)```", match.group(1), re.S) if match else []
        if not examples:
            problems.append(f"{name}: no `### `{name}`` section with a `{name}:` example")
        for example in examples:
            overlay.write_text(example)
            try:
                policy = compile_documents([read_document(ROOT / "policies" / "default.yaml"),
                                            read_document(overlay)])
            except PolicyError as exc:
                problems.append(f"{name}: example invalid: {exc}")
                continue
            if policy.pii.treatment.for_entity("external", "SECRET") != "block":
                problems.append(f"{name}: example unblocks secrets")
    assert problems == []
