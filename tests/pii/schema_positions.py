"""Every position of a request schema that can hold a string, and the smallest valid body with a
chosen string at a chosen position. Shared by the schema test (tests/pii/test_fields.py) and the
property test that sends such bodies through the gateway (tests/e2e/test_every_field_scrubbed.py)."""

from __future__ import annotations

from typing import Any

from gateway.pii.fields import ANY, KEY

Position = tuple[str, ...]


def _resolve(root: dict, node: dict) -> dict:
    while "$ref" in node:
        node = root["$defs"][node["$ref"].split("/")[-1]]
    return node


def _branches(node: dict) -> list[dict]:
    inner = node.get("anyOf") or node.get("oneOf")
    return [b for branch in inner for b in _branches(branch)] if inner else [node]


def string_positions(root: dict) -> set[Position]:
    """Paths (property names, ANY for an item or a free-form value, KEY for a free-form key) of
    every place a string may go: string-typed fields, free-form values and free-form keys."""
    found: set[Position] = set()

    def walk(node: dict, path: Position, seen: frozenset[str]) -> None:
        ref = node.get("$ref")
        if ref in seen:
            return
        seen = seen | {ref} if ref else seen
        node = _resolve(root, node)
        for branch in _branches(node):
            branch = _resolve(root, branch)
            kind = branch.get("type")
            if kind == "string" or ("const" in branch and isinstance(branch["const"], str)) or (
                    "enum" in branch and any(isinstance(v, str) for v in branch["enum"])):
                found.add(path)
            if kind is None and not {"properties", "anyOf", "oneOf", "$ref", "const", "enum"} & set(branch):
                found.add(path)  # free-form (Any): a string may go here
            if kind == "array" or "items" in branch:
                walk(branch.get("items") or {}, (*path, ANY), seen)
            for name, sub in (branch.get("properties") or {}).items():
                walk(sub, (*path, name), seen)
            extra = _free_values(branch)
            if extra is not None:
                found.add((*path, KEY))
                walk(extra, (*path, ANY), seen)

    walk(root, (), frozenset())
    return found


def _free_values(branch: dict) -> dict | None:
    """The schema of an object's free-form values (any key may appear), or None when it has none."""
    if "patternProperties" in branch:
        return next(iter(branch["patternProperties"].values()))
    extra = branch.get("additionalProperties")
    if isinstance(extra, dict):
        return extra
    if extra is True or (branch.get("type") == "object" and "properties" not in branch and extra is None):
        return {}
    return None


def minimal(root: dict, node: dict) -> Any:
    node = _resolve(root, node)
    branch = next((b for b in map(lambda b: _resolve(root, b), _branches(node)) if b.get("type") != "null"), node)
    if "const" in branch:
        return branch["const"]
    if "enum" in branch:
        return branch["enum"][0]
    kind = branch.get("type")
    if kind == "object" or "properties" in branch:
        props = branch.get("properties") or {}
        return {name: minimal(root, props[name]) for name in branch.get("required", [])}
    if kind == "array":
        return [minimal(root, branch["items"])] * branch.get("minItems", 0)
    return {"string": "x", "integer": 1, "number": 1, "boolean": False}.get(kind, "x")


def build(root: dict, node: dict, path: Position, value: str) -> Any:
    """A minimal instance of `node` with `value` at `path`; None when no branch has that path."""
    node = _resolve(root, node)
    if not path:
        return value
    head, rest = path[0], path[1:]
    for branch in map(lambda b: _resolve(root, b), _branches(node)):
        extra = _free_values(branch)
        if head == KEY and not rest and extra is not None:
            return {**minimal(root, branch), value: minimal(root, extra)}
        if head == ANY and (branch.get("type") == "array" or "items" in branch):
            inner = build(root, branch.get("items") or {}, rest, value)
            if inner is not None:
                return [inner]
        elif head == ANY and extra is not None:
            inner = build(root, extra, rest, value)
            if inner is not None:
                return {**minimal(root, branch), "free": inner}
        elif head in (branch.get("properties") or {}):
            inner = build(root, branch["properties"][head], rest, value)
            if inner is not None:
                return {**minimal(root, branch), head: inner}
        elif head not in (ANY, KEY) and branch.get("type") is None and "properties" not in branch:
            return {head: build(root, {}, rest, value)}
    return None
