"""Import Presidio without Hugging Face transformers.

`import presidio_analyzer` loads its optional transformers NER engine, which imports transformers
and through it torch.distributed, sympy and more: 4.3 s and 141 MiB of resident memory per process,
measured (2.2 s and 328 MiB instead of 6.4 s and 469 MiB for Presidio with spaCy). The gateway
uses Presidio's spaCy engine only. transformers is installed all the same (sentence-transformers,
which ships the MiniLM weights, requires it), so it cannot just be left out.

`install()` (run by `gateway/pii/__init__.py`, before any of its modules imports Presidio) adds an
import hook: while `presidio_analyzer` itself is being executed, `transformers` reads as not
installed, which Presidio handles (its engine then reports itself unavailable). Afterwards
transformers imports normally for whoever needs it.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys

_PACKAGE = "presidio_analyzer"
_HIDDEN = "transformers"


class _Loader(importlib.abc.Loader):
    def __init__(self, real: importlib.abc.Loader) -> None:
        self.real = real

    def __getattr__(self, name: str):
        # everything else (resource readers, get_data, is_package) is the real loader's
        return getattr(self.real, name)

    def create_module(self, spec):
        return self.real.create_module(spec)

    def exec_module(self, module) -> None:
        if _HIDDEN in sys.modules:  # already loaded by someone: nothing left to save
            self.real.exec_module(module)
            return
        sys.modules[_HIDDEN] = None  # `import transformers` raises ImportError meanwhile
        try:
            self.real.exec_module(module)
        finally:
            if sys.modules.get(_HIDDEN, 0) is None:
                del sys.modules[_HIDDEN]


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != _PACKAGE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader)
        return spec


def install() -> None:
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
