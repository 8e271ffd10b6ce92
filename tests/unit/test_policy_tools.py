"""`policy explain`, `policy diff` and the directory watcher."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from adapters.registry import AdapterRegistry
from gateway.policy.loader import load_policy_set
from gateway.policy.reload import PolicyReloader

ROOT = Path(__file__).resolve().parents[2]
# Models litellm's price map names, so that the CLI prices them from the prebuilt table instead of
# importing litellm (seconds per run).
BASE = """\
backends:
  - {name: small, adapter: openai, model: gpt-4o-mini, api_base: "http://127.0.0.1:9/v1", trust: external}
  - {name: local, adapter: openai, model: gpt-4o, api_base: "http://127.0.0.1:9/v1", trust: internal}
  - {name: embed, adapter: openai, model: text-embedding-3-small, api_base: "http://127.0.0.1:9/v1",
     modes: [embeddings]}
limits: {rpm_per_key: 60}
"""


def bulkhead(*args: str, env_dir: Path | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = None
    if env_dir is not None:
        import os

        env = {**os.environ, "BULKHEAD_POLICIES": str(env_dir)}
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          input=stdin, env=env)


def test_explain_shows_every_candidate_and_the_decision(tmp_path):
    (tmp_path / "default.yaml").write_text(BASE)
    (tmp_path / "tenants").mkdir()
    (tmp_path / "tenants" / "acme.yaml").write_text("access: {models: [local]}\n")
    request = json.dumps({"model": "local", "messages": [{"role": "user", "content": "hi"}]})
    out = bulkhead("policy", "explain", "--tenant", "acme", "--request", "-", env_dir=tmp_path, stdin=request)
    assert out.returncode == 0, out.stderr
    assert "ACCEPT  local" in out.stdout and "decision: local" in out.stdout and "trust internal" in out.stdout
    assert "reject  small" in out.stdout and "rpm_per_key=60" in out.stdout
    request = json.dumps({"model": "small", "messages": [{"role": "user", "content": "hi"}]})
    out = bulkhead("policy", "explain", "--tenant", "acme", "--request", "-", env_dir=tmp_path, stdin=request)
    assert out.returncode == 1 and "access list excludes it" in out.stdout and "refused" in out.stdout
    out = bulkhead("policy", "explain", "--tenant", "other", "--mode", "embeddings", "--request", "-",
                   env_dir=tmp_path, stdin=json.dumps({"model": "embed", "input": "x"}))
    assert out.returncode == 0 and "decision: embed" in out.stdout


def test_diff_speaks_in_effects(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    for d in (old, new):
        d.mkdir()
    (old / "default.yaml").write_text(BASE)
    (new / "default.yaml").write_text(BASE.replace("trust: external", "trust: internal").replace("60", "30")
                                      .replace("  - {name: embed", "  - {name: embed2"))
    out = bulkhead("policy", "diff", "--allow-weaker", str(old), str(new))  # external -> internal weakens
    assert out.returncode == 0, out.stderr
    assert "backend 'small' trust: external -> internal" in out.stdout
    assert "backend 'embed' removed" in out.stdout and "backend 'embed2' added" in out.stdout
    assert "limits.rpm_per_key: 60 -> 30" in out.stdout
    same = bulkhead("policy", "diff", str(old / "default.yaml"), str(old / "default.yaml"))
    assert "no change in effect" in same.stdout


class _Audit:
    def __init__(self) -> None:
        self.events: list[dict] = []

    def submit(self, row: dict) -> None:
        self.events.append(row)


class _Gateway:
    def __init__(self, directory: Path) -> None:
        self.policies = load_policy_set(directory)
        self.adapters = AdapterRegistry()
        self.adapters.sync(self.policies.all_backends())
        self.audit = _Audit()


async def test_watcher_applies_good_edits_and_ignores_broken_ones(tmp_path):
    (tmp_path / "default.yaml").write_text(BASE)
    gw = _Gateway(tmp_path)
    reloader = PolicyReloader(gw, tmp_path, interval=0.05)
    reloader.start()
    try:
        first = gw.policies
        (tmp_path / "default.yaml").write_text(BASE.replace("60", "61"))
        for _ in range(100):
            await asyncio.sleep(0.05)
            if gw.policies is not first:
                break
        assert gw.policies.default.limits.rpm_per_key == 61
        good = gw.policies
        (tmp_path / "default.yaml").write_text(BASE + "nonsense: [\n")
        for _ in range(100):
            await asyncio.sleep(0.05)
            if any(e["kind"] == "policy.rejected" for e in gw.audit.events):
                break
        assert gw.policies is good
        kinds = [e["kind"] for e in gw.audit.events]
        assert kinds == ["policy.applied", "policy.rejected"]
        assert gw.audit.events[0]["detail"]["trigger"] == "watch"
        assert gw.audit.events[0]["detail"]["changed_sections"] == ["limits"]
    finally:
        await reloader.stop()
        await gw.adapters.aclose()
