"""The committed heads' file format (the injection and domain heads): named float arrays and a JSON
`meta` in one compressed .npz, and one error for a file that is missing, unreadable or misshapen,
naming the file and the script that rebuilds it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def save(path: Path, meta: dict, **arrays: np.ndarray) -> None:
    np.savez_compressed(path, meta=np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8),
                        **arrays)


def load(path: Path, fields: Sequence[str], what: str, rebuild: str) -> tuple[dict[str, np.ndarray], dict]:
    """`fields` as float32 arrays, and the meta; a missing file or field is a RuntimeError."""
    try:
        with np.load(path) as z:
            return {k: z[k].astype(np.float32) for k in fields}, json.loads(z["meta"].tobytes().decode())
    except (OSError, KeyError, ValueError) as exc:
        raise RuntimeError(f"{what} {path.name} is missing or unreadable ({exc}); rebuild it with {rebuild}") from None


def check_shape(ok: bool, path: Path, what: str, rebuild: str) -> None:
    if not ok:
        raise RuntimeError(f"{what} {path.name} has the wrong shape; rebuild it with {rebuild}")
