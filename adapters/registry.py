"""One adapter per distinct backend definition, kept for the life of the process (one connection
pool each). Keyed by the definition itself, so a tenant overlay that changes a backend's
`api_base` gets its own adapter instead of sharing another tenant's."""

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
        # torch takes seconds to import; only gateways with a local_moe backend pay it
        from adapters.local_moe_adapter import LocalMoEAdapter

        return LocalMoEAdapter(backend.name, backend.model_dir or backend.model,
                               **{"model_name": backend.model, **backend.options})
    raise ValueError(f"unknown adapter {backend.adapter!r}")


def _key(backend) -> str:
    return backend.model_dump_json()


class AdapterRegistry:
    def __init__(self) -> None:
        self._adapters: dict[str, Any] = {}
        # Adapters of removed backends may still serve in-flight requests; closed at shutdown.
        self._retired: list[Any] = []

    def sync(self, backends) -> None:
        wanted = {_key(b): b for b in backends}
        for key in [k for k in self._adapters if k not in wanted]:
            self._retired.append(self._adapters.pop(key))
        for key, backend in wanted.items():
            if key not in self._adapters:
                self._adapters[key] = build_adapter(backend)

    def get(self, backend):
        return self._adapters.get(_key(backend))

    async def aclose(self) -> None:
        for adapter in [*self._adapters.values(), *self._retired]:
            await adapter.aclose()
        self._adapters.clear()
        self._retired.clear()
