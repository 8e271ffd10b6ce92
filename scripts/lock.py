"""Regenerates requirements.lock and requirements-dev.lock from pyproject.toml's direct pins:
pip resolves the closure (without installing) and every package is written with its exact version
and sha256, so `pip install --require-hashes` refuses anything that was swapped upstream."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = """# {what}, transitive ones included, at an exact version and hash (pip --require-hashes).
# Regenerate with `make lock` after changing a direct dependency in pyproject.toml.
# torch's hash is that of the CPU wheel (torch 2.13.0+cpu) this project's machines carry on disk."""


def resolve(requirements: list[str]) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        req, report = Path(tmp, "req.txt"), Path(tmp, "report.json")
        req.write_text("\n".join(requirements) + "\n")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--dry-run", "--ignore-installed",
                        "--report", str(report), "-r", str(req)], check=True)
        return json.loads(report.read_text())["install"]


def write(path: Path, what: str, installs: list[dict]) -> None:
    lines = [HEADER.format(what=what)]
    for item in sorted(installs, key=lambda i: i["metadata"]["name"].lower()):
        name, version = item["metadata"]["name"], item["metadata"]["version"]
        version = version.split("+")[0]  # 2.13.0+cpu satisfies ==2.13.0; the hash pins the build
        digest = item["download_info"]["archive_info"]["hashes"]["sha256"]
        lines.append(f"{name}=={version} \\\n    --hash=sha256:{digest}")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = project["dependencies"]
    dev = runtime + project["optional-dependencies"]["dev"]
    write(ROOT / "requirements.lock", "Every package", resolve(runtime))
    write(ROOT / "requirements-dev.lock", "Every package of the test environment", resolve(dev))


if __name__ == "__main__":
    main()
