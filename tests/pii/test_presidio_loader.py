"""Presidio is imported without Hugging Face transformers (gateway/pii/presidio_loader.py): the
gateway's PII stage never loads it, and whoever needs transformers later still gets it."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

PROBE = """
import json, sys
from gateway.pii.analyzer import analyzer_for
from gateway.pii.config import PiiPolicy
analyzer = analyzer_for(PiiPolicy())
found = [e.type for e in analyzer.analyze(["Write to ana.kovacevic@example.org about the invoice"])[0]]
loaded = "transformers" in sys.modules
import presidio_analyzer.nlp_engine.huggingface_token_pipe as pipe
import transformers  # still importable afterwards
print(json.dumps({"found": found, "loaded": loaded, "hf_engine": pipe.is_available(),
                  "later": bool(transformers.__version__)}))
"""


def test_the_pii_stage_loads_presidio_without_transformers():
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=180,
                         env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"found": ["EMAIL_ADDRESS"], "loaded": False, "hf_engine": False, "later": True}
