"""Builds one adapter per policy backend and keeps it for the life of the process (one connection
pool each). Rebuilt only when a backend's definition changes."""

from __future__ import annotations

from typing import Any

from adapters import litellm_adapter
from adapters.openai_http import OpenAIHTTPAdapter


def build_adapter(backend) -> Any:
    if backend.adapter == "litellm":
        return litellm_adapter.build(backend)
    if backend.adapter == "openai":
        if not backend.api_base:
            raise ValueError(f"backend {backend.name!r}: the openai adapter needs api_base")
        return OpenAIHTTPAdapter(backend.name, backend.model, backend.api_base, api_key_env=backend.api_key_env)
    if backend.adapter == "local_moe":
        from adapters.local_moe_adapter import LocalMoEAdapter

        return LocalMoEAdapter(backend.name, backend.model_dir or backend.model)
    raise ValueError(f"unknown adapter {backend.adapter!r}")


class AdapterRegistry:
    def __init__(self) -> None:
        self._adapters: dict[str, tuple[Any, Any]] = {}
        # Adapters of changed backends may still serve in-flight requests; closed at shutdown.
        self._retired: list[Any] = []

    def sync(self, backends) -> None:
        wanted = {b.name: b for b in backends}
        for name in list(self._adapters):
            if name not in wanted or self._adapters[name][0] != wanted[name]:
                self._retired.append(self._adapters.pop(name)[1])
        for name, backend in wanted.items():
            if name not in self._adapters:
                self._adapters[name] = (backend, build_adapter(backend))

    def get(self, name: str):
        entry = self._adapters.get(name)
        return entry[1] if entry else None

    async def aclose(self) -> None:
        for _, adapter in self._adapters.values():
            await adapter.aclose()
        for adapter in self._retired:
            await adapter.aclose()
        self._adapters.clear()
        self._retired.clear()
