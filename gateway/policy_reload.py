"""Hot reload: the policy directory is watched, and reloaded on SIGHUP and by the admin API.

A change is validated completely (every file, every overlay) before anything takes effect; an
invalid change leaves the last good policy in force and is reported in the log, a metric and an
audit event. Requests in flight keep the policy object they started with.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from gateway.audit.writer import system_event
from gateway.policy_diff import changed_sections, diff_sets
from gateway.policy_loader import TENANT_DIR, PolicyError, load_policy_set
from gateway.telemetry import POLICY_RELOADS

log = logging.getLogger("bulkhead.policy")


@dataclass
class ReloadResult:
    applied: bool
    version: str
    changes: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def fingerprint(directory: Path) -> tuple:
    paths = [directory / "default.yaml", *sorted((directory / TENANT_DIR).glob("*.yaml"))]
    out = []
    for p in paths:
        try:
            st = p.stat()
            out.append((str(p), st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((str(p), None, None))
    return tuple(out)


class PolicyReloader:
    def __init__(self, gw, directory: Path, interval: float = 1.0) -> None:
        self._gw = gw
        self._dir = directory
        self._interval = interval
        self._lock = asyncio.Lock()
        self._seen = fingerprint(directory)
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="policy-watch")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            current = await asyncio.to_thread(fingerprint, self._dir)
            if current != self._seen:
                self._seen = current
                await self.reload("watch")

    async def reload(self, trigger: str, actor: str | None = None) -> ReloadResult:
        async with self._lock:
            old = self._gw.policies
            try:
                new = await asyncio.to_thread(load_policy_set, self._dir)
            except PolicyError as exc:
                errors = [str(e) for e in exc.errors]
                POLICY_RELOADS.labels("rejected").inc()
                log.warning("policy change rejected (%s); keeping %s:\n  %s", trigger, old.default.version[:12],
                            "\n  ".join(errors))
                self._gw.audit.submit(system_event(
                    "policy.rejected", {"trigger": trigger, "actor": actor, "errors": errors,
                                        "files": sorted({e.file for e in exc.errors})},
                    key_id=actor, status=422, error_code="policy_invalid", policy_version=old.default.version))
                return ReloadResult(False, old.default.version, errors=errors)
            changes = diff_sets(old, new)
            if not changes:
                return ReloadResult(True, new.default.version)
            self._gw.adapters.sync(new.all_backends())
            self._gw.policies = new
            POLICY_RELOADS.labels("applied").inc()
            sections = sorted({s for t in changes for s in changed_sections(old.for_tenant(t), new.for_tenant(t))})
            log.info("policy %s -> %s applied (%s): %s", old.default.version[:12], new.default.version[:12],
                     trigger, "; ".join(f"{t}: {', '.join(c)}" for t, c in changes.items()))
            self._gw.audit.submit(system_event(
                "policy.applied", {"trigger": trigger, "actor": actor, "old_version": old.default.version,
                                   "new_version": new.default.version, "changed_sections": sections,
                                   "changes": changes},
                key_id=actor, policy_version=new.default.version))
            return ReloadResult(True, new.default.version, changes)
