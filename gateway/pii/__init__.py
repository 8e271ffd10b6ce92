"""PII and secrets: detection (Presidio + our recognizers), per-zone treatment with a per-request
vault, restore (whole responses and SSE streams), output scanning. Nothing here logs a value.

Names are imported lazily: the policy model needs only `gateway.pii.config`, and the CLI must not
pay for loading spaCy and Presidio to validate a YAML file."""

from importlib import import_module

from gateway.pii import presidio_loader

presidio_loader.install()  # before any module here imports Presidio: see presidio_loader

_EXPORTS = {
    "PiiAnalyzer": "analyzer", "analyzer_for": "analyzer", "PiiPolicy": "config",
    "Entity": "entities", "PiiAnalysisError": "entities", "PiiBlockedError": "entities",
    "PiiOutputBlockedError": "entities", "OutputScan": "outputscan", "ascan_output": "outputscan",
    "scan_output": "outputscan", "StreamRestorer": "restore", "restore_response": "restore",
    "Inspection": "transform", "Transformed": "transform", "inspect_request": "transform",
    "inspect_request_sync": "transform", "transform_request": "transform", "Vault": "vault",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"gateway.pii.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'gateway.pii' has no attribute {name!r}")
