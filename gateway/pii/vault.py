"""The per-request vault: numbered placeholders for original values, and putting them back.

A vault lives only in memory for one request. The same value always gets the same placeholder
within it (`<PERSON_1>` every time "Ana Dias" appears), so the model can still tell people
apart and refer back to them.
"""

from __future__ import annotations

import json
import re

PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]*?)_(\d{1,6})>")

# JSON string-scanning state carried between pieces of one JSON text: (inside a string, the
# previous character was an unescaped backslash).
JsonState = tuple[bool, bool]
JSON_START: JsonState = (False, False)


class Vault:
    def __init__(self, reserved: list[str] | tuple[str, ...] = ()) -> None:
        self._by_value: dict[str, str] = {}
        self._by_placeholder: dict[str, str] = {}
        self._counters: dict[str, int] = {}
        self._taken: set[str] = set()
        for text in reserved:
            self.reserve(text)

    def reserve(self, text: str) -> None:
        """Placeholder-looking strings the client itself sent are never issued, so restoring cannot
        turn the client's own literal `<PERSON_1>` into somebody's name."""
        for m in PLACEHOLDER.finditer(text):
            self._taken.add(m.group(0))

    def placeholder(self, entity_type: str, value: str) -> str:
        found = self._by_value.get(value)
        if found is not None:
            return found
        n = self._counters.get(entity_type, 0)
        while True:
            n += 1
            candidate = f"<{entity_type}_{n}>"
            if candidate not in self._taken:
                break
        self._counters[entity_type] = n
        self._by_value[value] = candidate
        self._by_placeholder[candidate] = value
        return candidate

    def original(self, placeholder: str) -> str | None:
        return self._by_placeholder.get(placeholder)

    @property
    def placeholders(self) -> list[str]:
        return list(self._by_placeholder)

    def values(self) -> set[str]:
        return set(self._by_value)

    def __len__(self) -> int:
        return len(self._by_placeholder)

    def __bool__(self) -> bool:
        return bool(self._by_placeholder)

    def could_start_placeholder(self, suffix: str) -> bool:
        """True when `suffix` (starting with "<") is the beginning of a placeholder we issued."""
        return any(p.startswith(suffix) for p in self._by_placeholder)

    # -- restoring ---------------------------------------------------------------------------

    def restore(self, text: str) -> str:
        if not self._by_placeholder or "<" not in text:
            return text
        return PLACEHOLDER.sub(lambda m: self._by_placeholder.get(m.group(0), m.group(0)), text)

    def restore_json(self, text: str, state: JsonState = JSON_START) -> tuple[str, JsonState]:
        """Restore inside JSON text (tool-call arguments), keeping it valid JSON.

        Inside a JSON string the original is inserted escaped (quotes, backslashes, newlines);
        outside one it is inserted as a JSON string. `state` carries string/escape state across
        pieces of a streamed JSON text.
        """
        out: list[str] = []
        pos = 0
        for m in PLACEHOLDER.finditer(text) if self._by_placeholder and "<" in text else ():
            value = self._by_placeholder.get(m.group(0))
            if value is None:
                continue
            out.append(text[pos : m.start()])
            state = _scan(text, pos, m.start(), state)
            encoded = json.dumps(value, ensure_ascii=False)
            out.append(encoded[1:-1] if state[0] else encoded)
            pos = m.end()
        out.append(text[pos:])
        return "".join(out), _scan(text, pos, len(text), state)


def _scan(text: str, start: int, end: int, state: JsonState) -> JsonState:
    in_string, escaped = state
    if not in_string and '"' not in text[start:end]:
        return state
    for i in range(start, end):
        ch = text[i]
        if escaped:
            escaped = False
        elif in_string and ch == "\\":
            escaped = True
        elif ch == '"':
            in_string = not in_string
    return in_string, escaped
