"""Hot reload: the policy directory is watched, and reloaded on SIGHUP and by the admin API.

A change is validated completely (every file, every overlay) before anything takes effect; an
invalid change leaves the last good policy in force and is reported in the log, a metric and an
audit event. Requests in flight keep the policy object they started with.

A reload is global (the watcher, SIGHUP, the platform tenant's admin) or one tenant's (that
tenant's admin: only its overlay is re-read). Every tenant whose policy changed gets its own
`policy.applied` event on its own audit chain, where its compliance keys read it; a global reload
also leaves one summary of every tenant's changes on the untenanted chain, for the operators. A valid
change that weakens the protection (`diff.weakenings`) is applied too, but logged at warning and
listed under `weaker` in those events.
Overlays are named by tenant, and under row-level security the gateway cannot look a tenant's id up
by name: a tenant this process has not yet seen a key of gets its events when its first key comes.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from dataclasses import dataclass, field
from pathlib import Path

from gateway.audit.writer import system_event
from gateway.models import utcnow
from gateway.policy.diff import changed_sections, diff_sets, weakenings_sets
from gateway.policy.loader import TENANT_DIR, PolicyError, PolicySet, load_policy_set, reload_tenant
from gateway.telemetry import POLICY_RELOADS

log = logging.getLogger("bulkhead.policy")


@dataclass
class ReloadResult:
    applied: bool
    version: str
    changes: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    weaker: dict[str, list[str]] = field(default_factory=dict)  # the changes that protect less, per scope


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


@dataclass
class _Pending:
    """A tenant's policy event waiting for this process to learn the tenant's id (see KeyStore)."""
    detail: dict
    policy_version: str
    tenants: set[str] | None  # None: every tenant without an overlay (a change of the default)
    overlays: frozenset[str] = frozenset()

    def concerns(self, tenant: str) -> bool:
        return tenant in self.tenants if self.tenants is not None else tenant not in self.overlays


class PolicyReloader:
    PENDING_MAX = 256

    def __init__(self, gw, directory: Path, interval: float = 1.0) -> None:
        self._gw = gw
        self._dir = directory
        self._interval = interval
        self._lock = asyncio.Lock()
        self._seen = fingerprint(directory)
        self._task: asyncio.Task | None = None
        self._pending: collections.deque[_Pending] = collections.deque(maxlen=self.PENDING_MAX)
        keys = getattr(gw, "keys", None)
        self._tenant_ids: dict[str, str] = keys.tenant_ids if keys is not None else {}
        if keys is not None:
            keys.on_new_tenant = self._tenant_seen

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

    async def reload(self, trigger: str, actor: str | None = None,
                     tenant: tuple[str, str] | None = None) -> ReloadResult:
        """The whole directory, or with `tenant` (name, id) only that tenant's overlay, over the
        default in force; the result then holds that tenant's changes and errors and no other's."""
        async with self._lock:
            old = self._gw.policies
            try:
                if tenant is None:
                    new = await asyncio.to_thread(load_policy_set, self._dir)
                else:
                    new = await asyncio.to_thread(reload_tenant, old, self._dir, tenant[0])
            except PolicyError as exc:
                return self._rejected(old, exc, trigger, actor, tenant)
            changes = diff_sets(old, new)
            version = new.for_tenant(tenant[0]).version if tenant else new.default.version
            if not changes:
                return ReloadResult(True, version)
            weaker = {t: lines for t, lines in weakenings_sets(old, new).items() if t in changes}
            self._gw.adapters.sync(new.all_backends())
            self._gw.policies = new
            POLICY_RELOADS.labels("applied").inc()
            # each scope's own versions: an overlay's change leaves the default's version as it was
            log.info("policy applied (%s%s): %s", trigger, f", tenant {tenant[0]}" if tenant else "",
                     "; ".join(f"{t} {old.for_tenant(t).version[:12]} -> {new.for_tenant(t).version[:12]}: "
                               f"{', '.join(c)}" for t, c in changes.items()))
            for scope, lines in weaker.items():
                # applied (an operator may loosen a policy) but never quietly
                log.warning("policy applied with weaker protection (%s, %s): %s", trigger, scope, "; ".join(lines))
            if tenant is None:
                sections = sorted({s for t in changes for s in changed_sections(old.for_tenant(t),
                                                                                 new.for_tenant(t))})
                self._gw.audit.submit(system_event(
                    "policy.applied", {"trigger": trigger, "actor": actor, "scope": "all",
                                       "old_version": old.default.version, "new_version": new.default.version,
                                       "changed_sections": sections, "changes": changes, "weaker": weaker},
                    key_id=actor, policy_version=new.default.version))
            self._per_tenant(old, new, changes, weaker, trigger, actor, tenant)
            return ReloadResult(True, version, changes, weaker=weaker)

    def _rejected(self, old: PolicySet, exc: PolicyError, trigger: str, actor: str | None,
                  tenant: tuple[str, str] | None) -> ReloadResult:
        errors = [str(e) for e in exc.errors]
        POLICY_RELOADS.labels("rejected").inc()
        log.warning("policy change rejected (%s%s); keeping %s:\n  %s", trigger,
                    f", tenant {tenant[0]}" if tenant else "", old.default.version[:12], "\n  ".join(errors))
        version = old.for_tenant(tenant[0]).version if tenant else old.default.version
        # a tenant's own failed reload is its own business: on its chain, not the operators'
        self._gw.audit.submit(system_event(
            "policy.rejected", {"trigger": trigger, "actor": actor, "scope": "tenant" if tenant else "all",
                                "errors": errors, "files": sorted({e.file for e in exc.errors})},
            tenant_id=tenant[1] if tenant else None, key_id=actor, status=422, error_code="policy_invalid",
            policy_version=version))
        return ReloadResult(False, version, errors=errors)

    def _per_tenant(self, old: PolicySet, new: PolicySet, changes: dict[str, list[str]],
                    weaker: dict[str, list[str]], trigger: str, actor: str | None,
                    tenant: tuple[str, str] | None) -> None:
        """One `policy.applied` per tenant whose policy changed, with that tenant's changes only. A
        global reload's actor is the platform's key, which is not named in a tenant's trail."""
        overlays = frozenset(old.tenants) | frozenset(new.tenants)
        for name, lines in changes.items():
            before, after = old.for_tenant(name), new.for_tenant(name)
            pending = _Pending(
                {"trigger": trigger, "scope": "tenant" if tenant else "all", "actor": actor if tenant else None,
                 "applied_at": utcnow().isoformat(), "old_version": before.version, "new_version": after.version,
                 "changed_sections": changed_sections(before, after), "changes": {name: lines},
                 "weaker": {name: weaker[name]} if name in weaker else {}},
                after.version, None if name == "default" else {name}, overlays)
            if tenant is not None:
                self._submit(pending, tenant[1], actor)
                continue
            for known, tenant_id in list(self._tenant_ids.items()):
                if pending.concerns(known):
                    self._submit(pending, tenant_id)
                    if pending.tenants is not None:
                        pending.tenants.discard(known)
            if pending.tenants is None or pending.tenants:
                self._pending.append(pending)

    def _tenant_seen(self, name: str, tenant_id: str) -> None:
        """A tenant's first key in this process: the policy changes it missed go onto its chain now."""
        for pending in list(self._pending):
            if pending.concerns(name):
                self._submit(pending, tenant_id)
                if pending.tenants is not None:
                    pending.tenants.discard(name)
                    if not pending.tenants:
                        self._pending.remove(pending)

    def _submit(self, pending: _Pending, tenant_id: str, actor: str | None = None) -> None:
        self._gw.audit.submit(system_event("policy.applied", dict(pending.detail), tenant_id=tenant_id, key_id=actor,
                                           policy_version=pending.policy_version))
