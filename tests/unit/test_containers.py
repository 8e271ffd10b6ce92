"""The image and the compose stack as an operator gets them, read from the Dockerfile, .dockerignore,
docker-compose.yml and the files they mount (tests/e2e/test_compose_stack.py builds and runs them
where a Docker daemon answers): no local state or virtualenv in the image, the demo model that
policies/default.yaml names built into it, state on a volume, the gateway on the database as
`bulkhead_app`, and traces reaching a viewer."""

from __future__ import annotations

import posixpath
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    out, pending = [], ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def _env(args: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in shlex.split(args))


def _pattern(pattern: str) -> re.Pattern:
    """A .dockerignore pattern as Docker matches it: relative to the context root, `*` and `?` within
    one path segment, `**` across any number of them."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + "$")


def ignore_rules() -> list[tuple[bool, re.Pattern]]:
    rules = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        cleaned = posixpath.normpath(line.lstrip("!").strip()).lstrip("/")
        rules.append((negate, _pattern(cleaned)))
    return rules


def ignored(path: str, rules: list[tuple[bool, re.Pattern]]) -> bool:
    """Whether the build context leaves `path` out: it or a directory above it matches, the last
    matching rule deciding (`!` brings a path back)."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    verdict = False
    for negate, rx in rules:
        if any(rx.match(p) for p in prefixes):
            verdict = not negate
    return verdict


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _under(path: str, directory: str) -> bool:
    return posixpath.commonpath([posixpath.normpath(path), posixpath.normpath(directory)]) == posixpath.normpath(
        directory)


def test_the_build_context_leaves_out_local_state_and_the_virtualenv():
    assert (ROOT / ".dockerignore").exists(), "no .dockerignore: COPY . . ships data/ and .venv"
    rules = ignore_rules()
    for path in ("data/secret", "data/audit-signing-key.pem", "data/audit-checkpoints/ten_1/000001.json",
                 "data/bulkhead.db", "data/audit-spool.jsonl", "data/demo-moe/model.safetensors",
                 ".venv/bin/python", ".venv/lib/python3.11/site-packages/x.py", ".git/config", ".env"):
        assert ignored(path, rules), f"{path} would be copied into the image"


def test_the_build_context_keeps_everything_the_gateway_runs():
    rules = ignore_rules()
    shipped = [p for d in ("gateway", "adapters", "local_moe", "migrations", "policies") for p in (ROOT / d).rglob("*")
               if p.is_file() and "__pycache__" not in p.parts]
    assert any("/data/" in str(p) for p in shipped)  # the packages' own data directories are among them
    shipped += [ROOT / name for name in ("pyproject.toml", "README.md", "alembic.ini", "requirements.lock")]
    dropped = [str(p.relative_to(ROOT)) for p in shipped if ignored(str(p.relative_to(ROOT)), rules)]
    assert not dropped, f"left out of the image: {dropped[:10]}"
    for instruction, args in dockerfile():
        if instruction == "COPY":
            *sources, _ = shlex.split(args)
            assert not [s for s in sources if s != "." and ignored(s.rstrip("/"), rules)], args


def test_the_image_builds_the_demo_model_the_default_policy_names():
    policy = yaml.safe_load((ROOT / "policies" / "default.yaml").read_text())
    [local] = [b for b in policy["backends"] if b.get("adapter") == "local_moe"]
    steps = dockerfile()
    workdir = next(args for instruction, args in steps if instruction == "WORKDIR")
    wanted = posixpath.join(workdir, local["model_dir"])
    trained = []
    for instruction, args in steps:
        if instruction == "RUN" and "train-demo" in args:
            words = shlex.split(args)
            trained.append(posixpath.join(workdir, words[words.index("--out") + 1]))
    assert wanted in trained, f"the image never builds {wanted} (local-moe's model_dir); it trains {trained}"
    volumes = [v for instruction, args in steps if instruction == "VOLUME" for v in shlex.split(args)]
    assert not [v for v in volumes if _under(wanted, v)], "a volume over the model would hide the image's copy"


def test_state_lives_on_a_volume_the_compose_stack_keeps():
    steps = dockerfile()
    env = {k: v for instruction, args in steps if instruction == "ENV" for k, v in _env(args).items()}
    data_dir = env.get("BULKHEAD_DATA_DIR", posixpath.join(next(a for i, a in steps if i == "WORKDIR"), "data"))
    volumes = [v for instruction, args in steps if instruction == "VOLUME" for v in shlex.split(args)]
    assert data_dir in volumes, f"{data_dir} (secret, signing key, checkpoints, spool) is not a VOLUME"
    users = [args for instruction, args in steps if instruction == "USER"]
    assert users and users[-1] not in ("root", "0"), "the gateway runs as root"
    assert any(instruction == "RUN" and "chown" in args and data_dir in args for instruction, args in steps)

    stack = compose()
    gateway = stack["services"]["gateway"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in gateway.get("volumes", []) if isinstance(m, str)}
    assert data_dir in mounts, f"the compose gateway mounts nothing at {data_dir}"
    assert mounts[data_dir] in (stack.get("volumes") or {}), "the data directory's volume is not a named volume"
    environment = gateway.get("environment", {})
    assert environment.get("BULKHEAD_DATA_DIR", data_dir) == data_dir
    for name in ("BULKHEAD_AUDIT_CHECKPOINT_DIR", "BULKHEAD_AUDIT_SIGNING_KEY", "BULKHEAD_AUDIT_SPOOL"):
        if name in environment:
            assert any(_under(environment[name], m) for m in mounts), f"{name} is outside every volume"


def test_the_compose_gateway_connects_as_bulkhead_app_and_migrates_as_the_owner():
    environment = compose()["services"]["gateway"]["environment"]
    serving = make_url(environment["DATABASE_URL"])
    admin = make_url(environment.get("BULKHEAD_ADMIN_DATABASE_URL", environment["DATABASE_URL"]))
    assert serving.username == "bulkhead_app", f"the gateway connects as {serving.username}"
    assert admin.username != "bulkhead_app" and admin.database == serving.database
    init = (ROOT / "scripts" / "postgres-init.sql").read_text()
    statements = " ".join(line for line in init.splitlines() if not line.lstrip().startswith("--"))
    # the owner cannot create roles, so the init script creates the app role the migrations grant to
    assert re.search(r"CREATE ROLE bulkhead_app LOGIN NOSUPERUSER NOBYPASSRLS", statements)
    assert re.search(rf"CREATE ROLE {admin.username} LOGIN", statements)
    assert re.search(rf"CREATE DATABASE {serving.database} OWNER {admin.username}", statements)


def test_traces_go_from_the_gateway_through_the_collector_to_jaeger():
    services = compose()["services"]
    [jaeger] = [name for name, s in services.items() if str(s.get("image", "")).startswith("jaegertracing/")]
    assert any("16686" in str(p) for p in services[jaeger].get("ports", [])), "Jaeger's UI is not published"
    endpoint = services["gateway"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
    collector = urlsplit(endpoint).hostname
    mounts = [m.split(":") for m in services[collector]["volumes"]]
    [config_path] = [ROOT / src for src, dst, *_ in mounts if dst.endswith(".yaml")]
    config = yaml.safe_load(config_path.read_text())
    exporters = config["service"]["pipelines"]["traces"]["exporters"]
    to_jaeger = [name for name in exporters if urlsplit("//" + str((config["exporters"].get(name) or {}).get(
        "endpoint", "")).split("//")[-1]).hostname == jaeger]
    assert to_jaeger, f"the collector's traces go to {exporters}, none to {jaeger}"
