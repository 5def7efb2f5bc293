"""The image and the package: what can be checked here without a container engine (none runs on
this machine, so `docker build` is never run by the tests; the README says so)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

from conftest import REPO
from loadtests.swarm.render import load_base, pod_templates

DOCKERFILE = (REPO / "Dockerfile").read_text()


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE)  # join continuation lines
    return [(m[1].upper(), m[2].strip()) for m in re.finditer(r"^\s*([A-Za-z]+)\s+(.*)$", text, re.M) if not m[0].lstrip().startswith("#")]


def test_dockerfile_installs_at_build_time_and_runs_as_the_pods_numeric_user():
    ins = instructions()
    assert ins[0] == ("FROM", "python:3.11-slim")
    runs = [arg for op, arg in ins if op == "RUN"]
    assert any("pip install ." in r for r in runs)
    # Nothing is installed when a container starts: no pip in what the image runs.
    for op, arg in ins:
        if op in ("CMD", "ENTRYPOINT"):
            assert "pip" not in arg
    user = [arg for op, arg in ins if op == "USER"]
    assert len(user) == 1 and re.fullmatch(r"\d+:\d+", user[0]) and user[0] != "0:0"
    uid, gid = (int(x) for x in user[0].split(":"))
    for _, pod in pod_templates(load_base()):
        assert pod["securityContext"]["runAsUser"] == uid and pod["securityContext"]["runAsGroup"] == gid
        for c in pod["containers"]:
            assert "pip" not in " ".join(c.get("command", []) + c.get("args", []))
    # The workers' locustfile path is the one the image links.
    worker = next(pod for name, pod in pod_templates(load_base()) if name == "Job/gala-worker")
    env = {e["name"]: e.get("value") for e in worker["containers"][0]["env"]}
    assert "$(GALA_LOCUSTFILE)" in worker["containers"][0]["args"]
    assert env["GALA_LOCUSTFILE"] == "/opt/gala/locustfile.py" and "/opt/gala/locustfile.py" in DOCKERFILE


def test_dockerignore_keeps_the_context_small():
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", ".venv", "tests"} <= set(ignored)


def test_the_package_ships_what_the_pods_run_and_no_generic_import_name(tmp_path):
    """`pip install .` (what the Dockerfile runs) carries the master's entry point, the locustfile and the
    packaged scenarios; the kustomize files stay in k8s/ (read from the checkout by `gala swarm`), and the
    install creates no `k8s` import name."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for pkg in ("gala", "loadtests", "capacity_model", "k8s"):
        shutil.copytree(REPO / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    build = tmp_path / "build"
    proc = subprocess.run([sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build_py", "--build-lib", str(build)],
                          cwd=src, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in build.iterdir()) == ["capacity_model", "gala", "loadtests"]
    for rel in ("loadtests/swarm/entrypoint.py", "loadtests/locustfile.py", "loadtests/scenarios/feb1.yaml",
                "capacity_model/specs/gala-2016.yaml"):
        assert (build / rel).is_file(), rel
    assert not list(build.rglob("tests")), "test-only code must not ship"
