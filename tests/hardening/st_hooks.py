"""Schemathesis hooks (loaded through SCHEMATHESIS_HOOKS by test_schemathesis.py): half of the
model calls name a backend that exists, so generated bodies travel the whole pipeline (PII, risk,
routing, the stand-in upstream, restore) instead of stopping at 404 `model_not_found`."""

from __future__ import annotations

import zlib

import schemathesis

MODELS = {"/v1/chat/completions": "echo", "/v1/completions": "echo", "/v1/embeddings": "embed"}


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    model = MODELS.get(case.operation.path)
    body = case.body
    # Only a model name that is valid already is swapped (the schema's only rule for it is 1-200
    # characters), so a case generated to be invalid stays invalid.
    if model and isinstance(body, dict) and isinstance(body.get("model"), str) and 1 <= len(body["model"]) <= 200 \
            and zlib.crc32(body["model"].encode("utf-8", "surrogatepass")) % 2:
        body["model"] = model
