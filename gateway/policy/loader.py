"""Reading policy YAML the way a security engineer needs it read: every error names the file, the
line and the column and says what was expected; hostile input (alias bombs, deep nesting, huge
files) is refused with a located error instead of eating the process.

`policies/default.yaml` is the base; `policies/tenants/<tenant>.yaml` overlays it. Mappings merge
key by key, `backends` merge by `name` (an overlay adds a backend or overrides one field by field),
every other list is replaced whole.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gateway.pii.secrets import find_secrets
from gateway.policy import Policy

MAX_BYTES = 1024 * 1024
MAX_ALIASES = 100
MAX_DEPTH = 32
TENANT_DIR = "tenants"
KEY_ERRORS = ("extra_forbidden", "unknown_entity")  # errors about a mapping's key: point at the key


@dataclass(frozen=True, slots=True)
class LocatedError:
    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class PolicyError(Exception):
    def __init__(self, errors: list[LocatedError]) -> None:
        super().__init__("\n".join(map(str, errors)))
        self.errors = errors


class _GuardedLoader(yaml.SafeLoader):
    """SafeLoader that counts aliases and nesting while composing, before anything is expanded."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                event = self.peek_event()
                raise yaml.MarkedYAMLError(None, None, f"more than {MAX_ALIASES} aliases", event.start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                event = self.peek_event()
                raise yaml.MarkedYAMLError(None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _inline_secrets(name: str, text: str) -> list[LocatedError]:
    """Credentials never live in policy files (they are read, diffed, committed, shown in reviews):
    the policy names the environment variable that holds one."""
    errors, covered = [], -1
    for kind, start, end, score in sorted(find_secrets(text), key=lambda f: (f[1], -f[3])):
        if score < 0.7 or start < covered:  # one error per credential, however many rules saw it
            continue
        covered = end
        line = text.count("\n", 0, start) + 1
        column = start - (text.rfind("\n", 0, start) + 1) + 1
        errors.append(LocatedError(name, line, column, f"this looks like a credential ({kind}); put it in an "
                                   "environment variable and reference it by name (e.g. api_key_env)"))
    return errors


@dataclass
class Document:
    path: Path
    data: Any
    node: yaml.Node | None


def read_document(path: Path) -> Document:
    name = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PolicyError([LocatedError(name, 0, 0, f"cannot read: {exc.strerror or exc}")]) from None
    if len(raw) > MAX_BYTES:
        raise PolicyError([LocatedError(name, 0, 0, f"file is larger than {MAX_BYTES} bytes")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError([LocatedError(name, 0, 0, f"not UTF-8 (byte {exc.start})")]) from None
    inline = _inline_secrets(name, text)
    if inline:
        raise PolicyError(inline)
    loader = None
    try:
        loader = _GuardedLoader(text)
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        raise PolicyError([LocatedError(name, line, col, exc.problem or str(exc))]) from None
    except yaml.reader.ReaderError as exc:
        raise PolicyError([LocatedError(name, 0, exc.position + 1, f"unacceptable character {exc.character!r}")]
                          ) from None
    except (yaml.YAMLError, RecursionError, ValueError, TypeError) as exc:
        raise PolicyError([LocatedError(name, 0, 0, f"invalid YAML: {type(exc).__name__}")]) from None
    finally:
        if loader is not None:
            loader.dispose()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        line, col = (node.start_mark.line + 1, node.start_mark.column + 1) if node else (1, 1)
        raise PolicyError([LocatedError(name, line, col, "expected a mapping of policy sections at the top level")])
    return Document(path, data, node)


def _find(node: yaml.Node | None, loc: tuple) -> tuple[yaml.Node | None, bool]:
    """The deepest node along `loc`, and whether the whole path was found."""
    current = node
    for part in loc:
        if isinstance(current, yaml.MappingNode):
            match = next((v for k, v in current.value if getattr(k, "value", None) == part), None)
            if match is None:
                return current, False
            current = match
        elif isinstance(current, yaml.SequenceNode) and isinstance(part, int) and part < len(current.value):
            current = current.value[part]
        else:
            return current, False
    return current, True


def _key_node(node: yaml.Node | None, loc: tuple) -> yaml.Node | None:
    if not loc:
        return None
    parent, found = _find(node, loc[:-1])
    if found and isinstance(parent, yaml.MappingNode):
        for k, _ in parent.value:
            if getattr(k, "value", None) == loc[-1]:
                return k
    return None


def _loc_text(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out or "(top level)"


# The steps pydantic adds to an error's location (`function-after[...]`, `list[str]`, `function-wrap`):
# not keys of the file. A key the file does have, even one with a bracket ("0["), stays.
_VALIDATOR_STEP = re.compile(r"^(function-\w+|[\w-]+\[.*\])$")


def locate(exc: ValidationError, documents: list[Document], backend_index: dict[int, tuple[Document, int]]
           ) -> list[LocatedError]:
    """Turns pydantic's errors into file:line:column errors. `documents` are searched last first
    (an overlay's value wins); `backend_index` maps a merged backend's position to where it came from."""
    located = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and _VALIDATOR_STEP.match(p)))
        message = f"{_loc_text(loc)}: {err['msg']}"
        if err["type"] == "extra_forbidden":
            message = f"{_loc_text(loc)}: unknown field (not part of the policy schema)"
        candidates = []
        if len(loc) >= 2 and loc[0] == "backends" and isinstance(loc[1], int) and loc[1] in backend_index:
            doc, index = backend_index[loc[1]]
            candidates.append((doc, ("backends", index, *loc[2:])))
        candidates += [(doc, loc) for doc in reversed(documents)]
        best = None
        for doc, path in candidates:
            key = _key_node(doc.node, path) if err["type"] in KEY_ERRORS else None
            node, found = _find(doc.node, path)
            if key is not None or found:
                best = (doc, key or node)
                break
            if best is None and node is not None and node is not doc.node:
                best = (doc, node)
        if best is None:
            doc = documents[-1]
            best = (doc, doc.node)
        doc, node = best
        line, col = (node.start_mark.line + 1, node.start_mark.column + 1) if node is not None else (1, 1)
        located.append(LocatedError(str(doc.path), line, col, message))
    return located


def merge(base: dict, overlay: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if key == "backends" and isinstance(value, list) and isinstance(out.get(key), list):
            out[key] = _merge_backends(out[key], value)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _merge_backends(base: list, overlay: list) -> list:
    merged = [copy.deepcopy(b) for b in base]
    by_name = {b.get("name"): i for i, b in enumerate(merged) if isinstance(b, dict)}
    for item in overlay:
        name = item.get("name") if isinstance(item, dict) else None
        if name in by_name:
            merged[by_name[name]] = merge(merged[by_name[name]], item)
        else:
            merged.append(copy.deepcopy(item))
    return merged


def _backend_origins(docs: list[Document]) -> dict[int, tuple[Document, int]]:
    """Where each merged backend was last defined, to point errors at the right file."""
    origins: dict[int, tuple[Document, int]] = {}
    names: list[Any] = []
    for doc in docs:
        backends = doc.data.get("backends")
        for i, item in enumerate(backends if isinstance(backends, list) else []):
            name = item.get("name") if isinstance(item, dict) else None
            if name is not None and name in names:
                position = names.index(name)
            else:
                names.append(name)
                position = len(names) - 1
            origins[position] = (doc, i)
    return origins


def compile_documents(docs: list[Document]) -> Policy:
    data: dict = {}
    for doc in docs:
        data = merge(data, doc.data)
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(locate(exc, docs, _backend_origins(docs))) from None


@dataclass
class PolicySet:
    """The default policy and each tenant's compiled overlay; what the gateway enforces."""

    default: Policy
    tenants: dict[str, Policy]
    files: dict[str, str]
    base: Document | None = None  # default.yaml as read, so one overlay can be recompiled alone

    def for_tenant(self, tenant: str) -> Policy:
        return self.tenants.get(tenant, self.default)

    def all_backends(self) -> list:
        return [b for p in (self.default, *self.tenants.values()) for b in p.backends]


def load_policy_set(directory: Path) -> PolicySet:
    """All or nothing: every file is validated, and any error anywhere rejects the whole set."""
    errors: list[LocatedError] = []
    base = read_document(directory / "default.yaml")
    default = compile_documents([base])
    tenants: dict[str, Policy] = {}
    files = {"default": str(base.path)}
    tenant_dir = directory / TENANT_DIR
    for path in sorted(tenant_dir.glob("*.yaml")) if tenant_dir.is_dir() else []:
        try:
            tenants[path.stem] = compile_documents([base, read_document(path)])
            files[path.stem] = str(path)
        except PolicyError as exc:
            errors.extend(exc.errors)
    if errors:
        raise PolicyError(errors)
    return PolicySet(default, tenants, files, base)


def reload_tenant(current: PolicySet, directory: Path, tenant: str) -> PolicySet:
    """`current` with only `tenant`'s overlay re-read and compiled over the default in force: a
    tenant admin's reload, which neither applies another tenant's pending edit nor a platform edit of
    default.yaml, and fails only on its own file. A missing overlay means the tenant uses the default."""
    if current.base is None:
        raise ValueError("this policy set was not loaded from a directory")
    tenant_dir = directory / TENANT_DIR
    # found by listing, never by joining the name into a path
    path = next((p for p in tenant_dir.glob("*.yaml") if p.stem == tenant), None) if tenant_dir.is_dir() else None
    tenants, files = dict(current.tenants), dict(current.files)
    if path is None:
        tenants.pop(tenant, None)
        files.pop(tenant, None)
    else:
        tenants[tenant] = compile_documents([current.base, read_document(path)])
        files[tenant] = str(path)
    return PolicySet(current.default, tenants, files, current.base)


def check_files(paths: list[Path]) -> list[LocatedError]:
    """`bulkhead policy check`: a directory is checked as a whole set, a file on its own (an overlay
    file under tenants/ is checked merged over its default.yaml)."""
    errors: list[LocatedError] = []
    for path in paths:
        try:
            if path.is_dir():
                load_policy_set(path)
            elif path.parent.name == TENANT_DIR and (path.parent.parent / "default.yaml").exists():
                compile_documents([read_document(path.parent.parent / "default.yaml"), read_document(path)])
            else:
                compile_documents([read_document(path)])
        except PolicyError as exc:
            errors.extend(exc.errors)
    return errors
