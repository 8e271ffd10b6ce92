"""PII and secrets: detection (Presidio + our recognizers), per-zone treatment with a per-request
vault, restore (whole responses and SSE streams), output scanning. Nothing here logs a value."""

from gateway.pii.analyzer import PiiAnalyzer, analyzer_for
from gateway.pii.config import PiiPolicy
from gateway.pii.entities import Entity, PiiAnalysisError, PiiBlockedError, PiiOutputBlockedError
from gateway.pii.outputscan import OutputScan, ascan_output, scan_output
from gateway.pii.restore import StreamRestorer, restore_response
from gateway.pii.transform import (
    Inspection,
    Transformed,
    inspect_request,
    inspect_request_sync,
    transform_request,
)
from gateway.pii.vault import Vault

__all__ = [
    "Entity",
    "Inspection",
    "OutputScan",
    "PiiAnalysisError",
    "PiiAnalyzer",
    "PiiBlockedError",
    "PiiOutputBlockedError",
    "PiiPolicy",
    "StreamRestorer",
    "Transformed",
    "Vault",
    "analyzer_for",
    "ascan_output",
    "inspect_request",
    "inspect_request_sync",
    "restore_response",
    "scan_output",
    "transform_request",
]
