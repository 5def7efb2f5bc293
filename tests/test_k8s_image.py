"""The image and the package: what can be checked here without a container engine (none runs on
this machine, so `docker build` is never run by the tests; the README says so)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

from conftest import REPO
from k8s.render import load_base, pod_templates

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
    assert "/opt/gala/locustfile.py" in worker["containers"][0]["args"] and "/opt/gala/locustfile.py" in DOCKERFILE


def test_dockerignore_keeps_the_context_small():
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", ".venv", "tests"} <= set(ignored)


def test_the_package_ships_the_kustomize_files(tmp_path):
    """`pip install .` (what the Dockerfile runs) carries k8s/base and the overlays as package data."""
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
    shipped = {p.relative_to(build / "k8s").as_posix() for p in (build / "k8s").rglob("*.yaml")}
    expected = {p.relative_to(REPO / "k8s").as_posix() for p in (REPO / "k8s").rglob("*.yaml")}
    assert expected and shipped == expected
    assert (build / "k8s" / "entrypoint.py").exists()
