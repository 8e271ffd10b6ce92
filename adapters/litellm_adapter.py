"""External providers through litellm, which translates OpenAI-shaped calls for Anthropic, Bedrock,
Vertex, Azure and the rest.

Providers that already speak the OpenAI protocol are served by `OpenAIHTTPAdapter` instead (see
`build`), because a litellm call costs several milliseconds of CPU on its own (bench/overhead.py).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from typing import Any

from adapters.base import CallResult, UpstreamError, Usage
from adapters.openai_http import OpenAIHTTPAdapter

OPENAI_COMPATIBLE = {"openai", "hosted_vllm"}
# Providers to which litellm hands image links on as links. For the others (Anthropic, Bedrock,
# Vertex, Ollama, ...) it may download them itself, from the gateway's host, before the call.
LINK_PASSING = {"openai", "azure", "hosted_vllm"}
DEFAULT_BASES = {"openai": "https://api.openai.com/v1"}


def gateway_fetches_links(backend) -> bool:
    """Would sending this backend an image link make the gateway's host fetch it?"""
    return backend.adapter == "litellm" and backend.model.partition("/")[0] not in LINK_PASSING


def _litellm():
    # Offline price map: the gateway must never fetch anything at run time.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    # litellm logs each call at INFO, model names and all; the gateway does its own logging.
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    # litellm takes ~2 s to import and reads the variables above when it does; only litellm backends pay it
    import litellm

    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
        logging.getLogger(name).setLevel(logging.ERROR)

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    litellm.turn_off_message_logging = True
    litellm.drop_params = False
    return litellm


def _map_exception(exc: Exception) -> UpstreamError:
    status = getattr(exc, "status_code", None)
    name = type(exc).__name__
    if name in ("Timeout", "APITimeoutError") or status in (408, 504):
        return UpstreamError("timeout", "upstream timed out", status=status)
    if name == "RateLimitError" or status == 429:
        headers = getattr(getattr(exc, "response", None), "headers", None) or {}
        raw = headers.get("retry-after") if hasattr(headers, "get") else None
        try:
            retry_after = float(raw) if raw else None
        except ValueError:
            retry_after = None
        return UpstreamError("rate_limited", "upstream rate limit", status=429, retry_after=retry_after)
    if name in ("APIConnectionError", "ServiceUnavailableError", "InternalServerError") or (status or 0) >= 500:
        return UpstreamError("unavailable", f"upstream unavailable ({name})", status=status)
    if name in ("AuthenticationError", "PermissionDeniedError"):
        return UpstreamError("bad_response", "upstream refused the gateway's credentials", status=status)
    if status and 400 <= status < 500:
        return UpstreamError("rejected", f"upstream rejected the request ({status})", status=status)
    return UpstreamError("bad_response", f"upstream call failed ({name})", status=status)


class LiteLLMAdapter:
    def __init__(self, name: str, provider_model: str, *, api_base: str | None, api_key_env: str | None) -> None:
        self.name = name
        self.provider_model = provider_model
        self._api_base = api_base
        self._api_key_env = api_key_env
        self._lib = _litellm()

    def _kwargs(self, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        kwargs = {k: v for k, v in body.items() if k != "model"}
        kwargs.update(model=self.provider_model, timeout=timeout, num_retries=0)
        if self._api_base:
            kwargs["api_base"] = self._api_base
        if self._api_key_env:
            kwargs["api_key"] = os.environ.get(self._api_key_env)
            if not kwargs["api_key"]:
                raise UpstreamError("unconfigured", f"{self._api_key_env} is not set")
        return kwargs

    async def _run(self, fn, body: dict[str, Any], timeout: float) -> CallResult:
        try:
            response = await fn(**self._kwargs(body, timeout))
        except UpstreamError:
            raise
        except Exception as exc:  # litellm raises many types; every one becomes an UpstreamError
            raise _map_exception(exc) from exc
        data = response.model_dump(exclude_none=True)
        return CallResult(body=data, usage=Usage.from_openai(data.get("usage")), provider_model=self.provider_model)

    async def chat(self, body: dict[str, Any], *, timeout: float) -> CallResult:
        return await self._run(self._lib.acompletion, body, timeout)

    async def completion(self, body: dict[str, Any], *, timeout: float) -> CallResult:
        return await self._run(self._lib.atext_completion, body, timeout)

    async def embeddings(self, body: dict[str, Any], *, timeout: float) -> CallResult:
        return await self._run(self._lib.aembedding, body, timeout)

    async def stream_chat(self, body: dict[str, Any], *, timeout: float) -> AsyncIterator[dict[str, Any]]:
        kwargs = self._kwargs(body, timeout)
        kwargs["stream"] = True
        kwargs["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        try:
            response = await self._lib.acompletion(**kwargs)
            async for chunk in response:
                yield chunk.model_dump(exclude_none=True)
        except UpstreamError:
            raise
        except Exception as exc:
            raise _map_exception(exc) from exc

    async def health(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None


def build(backend) -> Any:
    """The adapter for a `litellm` backend: our pooled client where the provider speaks OpenAI."""
    provider, _, rest = backend.model.partition("/")
    if backend.via != "litellm" and rest and provider in OPENAI_COMPATIBLE:
        base = backend.api_base or DEFAULT_BASES.get(provider)
        if base:
            return OpenAIHTTPAdapter(backend.name, rest, base, api_key_env=backend.api_key_env)
    return LiteLLMAdapter(backend.name, backend.model, api_base=backend.api_base, api_key_env=backend.api_key_env)
