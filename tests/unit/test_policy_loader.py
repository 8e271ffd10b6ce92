"""Policy files: located errors, overlays, and hostile YAML that must fail cleanly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.policy.loader import PolicyError, check_files, load_policy_set

ROOT = Path(__file__).resolve().parents[2]

BASE = """\
backends:
  - name: a
    model: openai/gpt-4o-mini
  - name: b
    model: openai/gpt-4o
limits:
  rpm_per_key: 100
"""


# "billion laughs": 12 levels of 9 aliases each would expand to 9**12 items
BOMB = "l0: &l0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 13)
)


def write(tmp: Path, default: str, **tenants: str) -> Path:
    (tmp / "default.yaml").write_text(default)
    if tenants:
        (tmp / "tenants").mkdir()
        for name, text in tenants.items():
            (tmp / "tenants" / f"{name}.yaml").write_text(text)
    return tmp


def errors_of(tmp: Path) -> list:
    with pytest.raises(PolicyError) as info:
        load_policy_set(tmp)
    return info.value.errors


def test_error_names_file_line_column_and_expectation(tmp_path):
    write(tmp_path, BASE.replace("    model: openai/gpt-4o\n", "    model: openai/gpt-4o\n    trust: outside\n"))
    [err] = errors_of(tmp_path)
    assert err.file.endswith("default.yaml") and (err.line, err.column) == (6, 12)
    assert "backends[1].trust" in err.message and "internal" in err.message and "external" in err.message


def test_unknown_field_points_at_the_key(tmp_path):
    write(tmp_path, BASE + "limts:\n  rpm_per_key: 5\n")
    [err] = errors_of(tmp_path)
    assert (err.line, err.column) == (8, 1) and "unknown field" in err.message


def test_overlay_inherits_overrides_and_is_located_in_its_own_file(tmp_path):
    overlay = "backends:\n  - name: b\n    region: eu\naccess:\n  models: [b]\nlimits:\n  rpm_per_key: 5\n"
    write(tmp_path, BASE, acme=overlay)
    policies = load_policy_set(tmp_path)
    acme = policies.for_tenant("acme")
    assert acme.backend("b").region == "eu" and acme.backend("b").model == "openai/gpt-4o"
    assert acme.backend("a") is not None and acme.limits.rpm_per_key == 5
    assert acme.tenant_may_use("b") and not acme.tenant_may_use("a")
    assert policies.for_tenant("other") is policies.default
    assert acme.version != policies.default.version
    write_bad = tmp_path / "tenants" / "acme.yaml"
    write_bad.write_text("backends:\n  - name: b\n    max_retries: 9\n")
    [err] = errors_of(tmp_path)
    assert err.file.endswith("acme.yaml") and err.line == 3 and "max_retries" in err.message


def test_one_bad_overlay_rejects_the_whole_set(tmp_path):
    write(tmp_path, BASE, good="limits: {rpm_per_key: 1}\n", bad="limits: {rpm_per_key: -1}\n")
    errs = errors_of(tmp_path)
    assert len(errs) == 1 and errs[0].file.endswith("bad.yaml")


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        (BOMB, "aliases"),
        ("x: " + "[" * 200 + "]" * 200 + "\n", "nested"),
        ("backends: [\n", "expected"),
        ("- just\n- a list\n", "mapping"),
        ("\xff\xfe", "UTF-8"),
    ],
)
def test_hostile_or_broken_yaml_gives_a_located_error(tmp_path, text, expect):
    path = tmp_path / "default.yaml"
    path.write_bytes(text.encode("latin-1") if text.startswith("\xff") else text.encode())
    errs = errors_of(tmp_path)
    assert expect.lower() in str(errs[0]).lower()


def test_huge_file_is_refused(tmp_path):
    (tmp_path / "default.yaml").write_text("# " + "x" * (1024 * 1024 + 1))
    assert "larger" in str(errors_of(tmp_path)[0])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=400) | st.binary(max_size=400).map(lambda b: b.decode("latin-1")))
def test_fuzz_never_crashes(tmp_path, text):
    (tmp_path / "default.yaml").write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_policy_set(tmp_path)
    except PolicyError as exc:
        assert exc.errors and all(e.file for e in exc.errors)


@pytest.mark.parametrize("key", ["0[", "a[b]", "function-x"])
def test_an_unknown_top_level_key_with_brackets_is_located(tmp_path, key):
    # found by the fuzz test: a key like `0[` was taken for one of pydantic's own location steps,
    # leaving an empty location that crashed the line lookup
    (tmp_path / "default.yaml").write_text(f"limits: {{rpm_per_key: 5}}\n'{key}':\n")
    error = errors_of(tmp_path)[0]
    assert error.file and "unknown field" in error.message
    if key == "0[":  # not shaped like a pydantic step: the message and the line name it
        assert (error.line, error.message.split(":")[0]) == (2, "0[")


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(["backends", "limits", "access", "other"]), yaml_values, max_size=3))
def test_fuzz_wrong_types_are_located(tmp_path, doc):
    import yaml

    (tmp_path / "default.yaml").write_text(yaml.safe_dump(doc))
    try:
        load_policy_set(tmp_path)
    except PolicyError as exc:
        assert all(e.line >= 0 and e.message for e in exc.errors)


def test_check_cli(tmp_path):
    write(tmp_path, BASE)
    ok = subprocess.run([sys.executable, "-m", "gateway.cli", "policy", "check", str(tmp_path)], cwd=ROOT,
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    (tmp_path / "default.yaml").write_text(BASE.replace("100", "-3"))
    bad = subprocess.run([sys.executable, "-m", "gateway.cli", "policy", "check", str(tmp_path / "default.yaml")],
                         cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 1 and "default.yaml:7:16" in bad.stdout
    assert check_files([ROOT / "policies"]) == []


def test_schema_json_is_current():
    import json

    from gateway.policy import json_schema

    shipped = json.loads((ROOT / "policies" / "schema.json").read_text())
    assert shipped == json.loads(json.dumps(json_schema())), (
        "policies/schema.json is stale: run `bulkhead policy schema --write policies/schema.json`")


@pytest.mark.parametrize("value", [
    "api_base: https://admin:S3cr3tPassw0rd9@llm.internal.example:8443/v1",
    "region: sk-proj-4fJ8kQ2xR7mN1pL9vT3wY6zB0cD5eH8gA2sK7uX1",
])
def test_inline_credentials_are_refused_with_their_location(tmp_path, value):
    (tmp_path / "default.yaml").write_text(f"backends:\n  - name: a\n    model: m\n    {value}\n")
    [err] = errors_of(tmp_path)
    assert err.line == 4 and "credential" in err.message
    assert value.split(": ", 1)[1][6:] not in str(err)  # the value itself is not echoed
