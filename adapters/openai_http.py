"""Any OpenAI-compatible HTTP server: OpenAI itself, vLLM, SGLang, the standalone local MoE server.

One aiohttp session (one connection pool) per backend for the life of the process: bench/overhead.py
measured a per-call litellm.acompletion at roughly ten times the CPU of this path, so OpenAI-shaped
upstreams are served here and litellm keeps the providers that need translation.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from adapters.base import CallResult, UpstreamError, Usage


def _retry_after(headers) -> float | None:
    raw = headers.get("retry-after")
    try:
        return float(raw) if raw else None
    except ValueError:
        return None


def _status_error(status: int, headers) -> UpstreamError:
    if status == 429:
        return UpstreamError("rate_limited", "upstream rate limit", status=status, retry_after=_retry_after(headers))
    if status == 504 or status == 408:
        return UpstreamError("timeout", f"upstream timed out ({status})", status=status)
    if status >= 500:
        return UpstreamError("unavailable", f"upstream error {status}", status=status)
    if status in (401, 403):
        # Our credentials for the provider were refused: a gateway configuration fault, not the client's.
        return UpstreamError("bad_response", f"upstream refused the gateway's credentials ({status})", status=status)
    return UpstreamError("rejected", f"upstream rejected the request ({status})", status=status)


class OpenAIHTTPAdapter:
    def __init__(
        self,
        name: str,
        provider_model: str,
        api_base: str,
        *,
        api_key_env: str | None = None,
        pool_size: int = 256,
    ) -> None:
        self.name = name
        self.provider_model = provider_model
        self._base = api_base.rstrip("/")
        self._api_key_env = api_key_env
        self._pool_size = pool_size
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {"content-type": "application/json"}
            key = os.environ.get(self._api_key_env) if self._api_key_env else None
            if self._api_key_env and not key:
                raise UpstreamError("unconfigured", f"{self._api_key_env} is not set")
            if key:
                headers["authorization"] = f"Bearer {key}"
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size, ttl_dns_cache=300),
                headers=headers,
                json_serialize=lambda o: orjson.dumps(o).decode(),
                # The gateway's own proxy settings must never redirect provider traffic.
                trust_env=False,
                auto_decompress=True,
            )
        return self._session

    def _payload(self, body: dict[str, Any]) -> bytes:
        return orjson.dumps({**body, "model": self.provider_model})

    async def _post_json(self, path: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        try:
            async with self._client().post(
                self._base + path, data=self._payload(body), timeout=aiohttp.ClientTimeout(total=timeout)
            ) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    raise _status_error(resp.status, resp.headers)
        except TimeoutError as exc:
            raise UpstreamError("timeout", "upstream timed out") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError("unavailable", f"upstream connection failed: {type(exc).__name__}") from exc
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError("bad_response", "upstream returned malformed JSON") from exc
        if not isinstance(data, dict):
            raise UpstreamError("bad_response", "upstream returned a non-object body")
        return data

    async def _call(self, path: str, body: dict[str, Any], timeout: float) -> CallResult:
        data = await self._post_json(path, body, timeout)
        return CallResult(body=data, usage=Usage.from_openai(data.get("usage")), provider_model=self.provider_model)

    async def chat(self, body: dict[str, Any], *, timeout: float) -> CallResult:
        return await self._call("/chat/completions", body, timeout)

    async def completion(self, body: dict[str, Any], *, timeout: float) -> CallResult:
        return await self._call("/completions", body, timeout)

    async def embeddings(self, body: dict[str, Any], *, timeout: float) -> CallResult:
        return await self._call("/embeddings", body, timeout)

    def stream_chat(self, body: dict[str, Any], *, timeout: float) -> AsyncIterator[dict[str, Any]]:
        return self._stream("/chat/completions", body, timeout)

    def stream_completion(self, body: dict[str, Any], *, timeout: float) -> AsyncIterator[dict[str, Any]]:
        return self._stream("/completions", body, timeout)

    async def _stream(self, path: str, body: dict[str, Any], timeout: float) -> AsyncIterator[dict[str, Any]]:
        # Usage is always requested so the audit has token counts; the pipeline strips it again
        # when the client did not ask for it.
        options = {**(body.get("stream_options") or {}), "include_usage": True}
        payload = {**body, "stream": True, "stream_options": options}
        # `timeout` bounds the wait for each piece of the stream, not the whole answer, so a long
        # answer is fine and a stalled upstream is not.
        client_timeout = aiohttp.ClientTimeout(total=None, connect=timeout, sock_read=timeout)
        try:
            request = self._client().post(self._base + path, data=self._payload(payload), timeout=client_timeout)
            async with request as resp:
                if resp.status != 200:
                    await resp.read()
                    raise _status_error(resp.status, resp.headers)
                done = False
                async for line in resp.content:
                    if not line.startswith(b"data:"):
                        continue
                    data = line[5:].strip()
                    if data == b"[DONE]":
                        done = True
                        break
                    try:
                        chunk = orjson.loads(data)
                    except orjson.JSONDecodeError as exc:
                        raise UpstreamError("bad_response", "upstream sent a malformed stream event") from exc
                    if isinstance(chunk, dict) and "error" in chunk and "choices" not in chunk:
                        raise UpstreamError("bad_response", "upstream reported an error mid-stream")
                    yield chunk
                if not done:
                    raise UpstreamError("bad_response", "upstream stream ended before [DONE]")
        except TimeoutError as exc:
            raise UpstreamError("timeout", "upstream stream stalled") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError("unavailable", f"upstream connection failed: {type(exc).__name__}") from exc

    async def health(self) -> bool:
        try:
            async with self._client().get(self._base + "/models", timeout=aiohttp.ClientTimeout(total=5)) as resp:
                return resp.status < 500
        except (TimeoutError, aiohttp.ClientError):
            return False

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
