"""What the audit trail keeps of a request's text: per-tenant HMACs, never the text.

A compliance officer who holds a text (a complaint quoting a prompt, a leaked answer) can prove
whether the gateway saw it, and in which request, without the trail ever storing it: the same
HMAC is computed over the presented text and compared (`POST /v1/bulkhead/audit/prove`).

The key is derived per tenant from the server secret, so equal texts of two tenants give unrelated
digests and one tenant's digests say nothing about another's. The stored shape in
`audit_events.content` is `{"hmac": {"messages": [hex, ...], "answer": hex}}`.
"""

from __future__ import annotations

import hashlib
import hmac


def content_key(secret: bytes, tenant_id: str) -> bytes:
    """The tenant's content-HMAC key: HMAC-SHA256(secret, b"audit-content:" + tenant_id)."""
    return hmac.new(secret, b"audit-content:" + tenant_id.encode(), hashlib.sha256).digest()


def content_hmac(secret: bytes, tenant_id: str, text: str) -> str:
    """Hex HMAC-SHA256 of the exact text (UTF-8) under the tenant's content key."""
    return hmac.new(content_key(secret, tenant_id), text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def content_record(secret: bytes, tenant_id: str, messages: list[str], answer: str | None) -> dict:
    """The `audit_events.content` value for one request's message texts and answer."""
    key = content_key(secret, tenant_id)

    def mac(text: str) -> str:
        return hmac.new(key, text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()

    out: dict = {"messages": [mac(m) for m in messages]}
    if answer is not None:
        out["answer"] = mac(answer)
    return {"hmac": out}


def matches(content: dict | None, digest: str) -> list[str]:
    """Where `digest` occurs in a stored content record: "messages[i]" and/or "answer"."""
    if not isinstance(content, dict) or not isinstance(content.get("hmac"), dict):
        return []
    stored = content["hmac"]
    found = []
    messages = stored.get("messages")
    if isinstance(messages, list):
        found += [f"messages[{i}]" for i, m in enumerate(messages)
                  if isinstance(m, str) and hmac.compare_digest(m, digest)]
    answer = stored.get("answer")
    answers = answer if isinstance(answer, list) else [answer]
    for i, a in enumerate(answers):
        if isinstance(a, str) and hmac.compare_digest(a, digest):
            found.append("answer" if not isinstance(answer, list) else f"answer[{i}]")
    return found
