"""Signed checkpoints of each chain's head, kept outside the database.

Every `interval` seconds the gateway appends, per chain that moved, one line to
`<dir>/<chain>.jsonl`: the head (seq, hash), the time, the hash of the previous checkpoint line and
an Ed25519 signature over all of it. Someone who can rewrite the database cannot rewrite these
without the signing key, so verification against them catches a rewritten, truncated or rolled-back
chain even when the chain itself is internally consistent. The directory may be a mounted object
store or a disk the database's operators cannot write.

The signing key is `BULKHEAD_AUDIT_SIGNING_KEY` (a PEM file path) or, by default, a key generated
once under the data directory with owner-only permissions. Verifiers should pin the public key
(`bulkhead audit pubkey` prints it) rather than trust the copy written next to the checkpoints.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway.audit.chain import GENESIS
from gateway.keyfiles import write_once
from gateway.models import utcnow

log = logging.getLogger("bulkhead.audit")

_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class CheckpointError(Exception):
    """The checkpoint file itself is damaged: a bad signature, a broken link, unreadable JSON."""

    def __init__(self, chain: str, index: int, message: str) -> None:
        super().__init__(message)
        self.chain, self.index = chain, index


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """Read the PEM key at `path`, creating it (0600) the first time; workers starting together on
    a fresh data directory all get the first one's key (`gateway/keyfiles.py`)."""
    if path.exists():
        pem = path.read_bytes()
    else:
        pem = write_once(path, Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


def public_hex(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def parse_public_key(value: str) -> Ed25519PublicKey:
    """A raw 32-byte key in hex, or a path to a file holding one (or a PEM public key)."""
    text = value.strip()
    if not re.fullmatch(r"[0-9a-fA-F]{64}", text):
        data = Path(text).read_bytes()
        if data.startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(data)
            if not isinstance(key, Ed25519PublicKey):
                raise ValueError("not an Ed25519 public key")
            return key
        text = data.decode().strip()
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(text))


def _body_bytes(cp: dict) -> bytes:
    return orjson.dumps({k: v for k, v in cp.items() if k != "sig"}, option=orjson.OPT_SORT_KEYS)


def file_name(chain: str) -> str:
    if chain == "":
        return "_unauthenticated.jsonl"
    if _SAFE.match(chain):
        return chain + ".jsonl"
    return "h_" + hashlib.sha256(chain.encode()).hexdigest()[:32] + ".jsonl"


@dataclass
class CheckpointStore:
    directory: Path
    public_key: Ed25519PublicKey
    signing_key: Ed25519PrivateKey | None = None

    @classmethod
    def for_signing(cls, directory: Path, key_path: Path) -> CheckpointStore:
        key = load_signing_key(key_path)
        store = cls(Path(directory), key.public_key(), key)
        store.directory.mkdir(parents=True, exist_ok=True)
        pub = store.directory / "signing-key.pub"
        if not pub.exists():
            pub.write_text(public_hex(store.public_key) + "\n")
        return store

    def path(self, chain: str) -> Path:
        return self.directory / file_name(chain)

    def append(self, chain: str, seq: int, head_hash: str) -> dict | None:
        """Sign and append the head unless the file already holds it or a later one (replicas
        checkpoint what each wrote last; the file only moves forward). Returns the checkpoint."""
        if self.signing_key is None:
            raise RuntimeError("this checkpoint store has no signing key")
        path = self.path(chain)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)  # replicas sharing the directory take turns
            fh.seek(0)
            lines = [line for line in fh.read().splitlines() if line.strip()]
            last = orjson.loads(lines[-1]) if lines else None
            if last is not None and last["seq"] >= seq:
                return None
            cp = {"v": 1, "chain": chain, "seq": seq, "hash": head_hash, "ts": utcnow().isoformat(),
                  "prev": hashlib.sha256(lines[-1]).hexdigest() if lines else GENESIS,
                  "key": public_hex(self.public_key)}
            cp["sig"] = self.signing_key.sign(_body_bytes(cp)).hex()
            fh.write(orjson.dumps(cp) + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        return cp

    def sign(self, body: dict) -> dict:
        """`body` (JSON-able, no `key`/`sig`) with the signer's public key and an Ed25519 signature
        over both: what `bulkhead audit export` puts in each chain's header."""
        if self.signing_key is None:
            raise RuntimeError("this checkpoint store has no signing key")
        record = {**body, "key": public_hex(self.public_key)}
        record["sig"] = self.signing_key.sign(_body_bytes(record)).hex()
        return record

    def signed(self, record: dict) -> bool:
        """Whether `record` carries a valid signature by this store's (pinned) public key."""
        try:
            self.public_key.verify(bytes.fromhex(record["sig"]), _body_bytes(record))
        except (KeyError, TypeError, ValueError, InvalidSignature, orjson.JSONEncodeError):
            return False
        return True

    def read(self, chain: str) -> list[dict]:
        """Every checkpoint of the chain, each signature and link checked; raises CheckpointError."""
        path = self.path(chain)
        if not path.exists():
            return []
        out: list[dict] = []
        prev_line = None
        for i, line in enumerate(x for x in path.read_bytes().splitlines() if x.strip()):
            try:
                cp = orjson.loads(line)
                sig = bytes.fromhex(cp["sig"])
            except (orjson.JSONDecodeError, KeyError, ValueError, TypeError):
                raise CheckpointError(chain, i, f"checkpoint {i} of {path.name} is unreadable") from None
            try:
                self.public_key.verify(sig, _body_bytes(cp))
            except InvalidSignature:
                raise CheckpointError(chain, i, f"checkpoint {i} (seq {cp.get('seq')}) has an invalid signature "
                                      "(forged, edited, or signed with another key)") from None
            expected_prev = hashlib.sha256(prev_line).hexdigest() if prev_line is not None else GENESIS
            if cp.get("prev") != expected_prev or cp.get("chain") != chain:
                raise CheckpointError(chain, i, f"checkpoint {i} (seq {cp.get('seq')}) does not follow the one "
                                      "before it: checkpoints were deleted, reordered or moved between chains")
            if out and cp["seq"] <= out[-1]["seq"]:
                raise CheckpointError(chain, i, f"checkpoint {i} goes backwards (seq {cp['seq']})")
            out.append(cp)
            prev_line = line
        return out

    def chains(self) -> list[str]:
        names = []
        for path in sorted(self.directory.glob("*.jsonl")):
            first = path.open("rb").readline()
            if first.strip():
                names.append(orjson.loads(first)["chain"])
        return names


class Checkpointer:
    """Signs what the audit writer last committed, per chain, every `interval` seconds."""

    def __init__(self, store: CheckpointStore, heads: dict[str, tuple[int, str]], interval: float) -> None:
        self._store, self._heads, self._interval = store, heads, interval
        self._done: dict[str, int] = {}

    def run_once(self) -> int:
        written = 0
        for chain, (seq, head) in list(self._heads.items()):
            if self._done.get(chain) == seq:
                continue
            try:
                if self._store.append(chain, seq, head) is not None:
                    written += 1
                self._done[chain] = seq
            except OSError as exc:
                log.error("audit checkpoint for a chain failed (%s); retrying next interval", type(exc).__name__)
        return written

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await asyncio.to_thread(self.run_once)
