"""The architecture holds: import-linter's contracts (pyproject.toml) pass on the code, and they do
fail when a part reaches into another (a copy of the code with one such import added)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

LINT = [str(Path(sys.executable).with_name("lint-imports"))]
PACKAGES = ("gala", "loadtests", "capacity_model")


def lint(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*LINT, "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(cwd)})


def test_the_contracts_hold():
    proc = lint(REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


@pytest.mark.parametrize("module, line, broken", [
    ("capacity_model/usl.py", "import loadtests.orchestrator.runner", "Layers"),          # two parts
    ("gala/contract/atomic.py", "import gala.cli", "Layers"),                              # the bottom reaching up
    ("gala/gate/measure.py", "import locust", "never import Locust"),                     # gevent in the gala process
    ("loadtests/target/split.py", "import gevent", "no Locust or gevent"),
    ("loadtests/locust_plugin/stats.py", "import loadtests.target.state", "start or configure"),
])
def test_a_forbidden_import_breaks_a_contract(tmp_path, module, line, broken):
    for pkg in PACKAGES:
        shutil.copytree(REPO / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    path = tmp_path / module
    path.write_text(path.read_text() + f"\n{line}  # the violation under test\n")
    proc = lint(tmp_path)
    assert proc.returncode == 1, proc.stdout[-3000:]
    summary = " ".join(proc.stdout.split("Broken contracts")[0].split())  # contract names wrap over lines
    verdicts = [chunk.strip() for chunk in summary.replace(" KEPT", " KEPT|").replace(" BROKEN", " BROKEN|").split("|")]
    assert any(broken in v for v in verdicts if v.endswith("BROKEN")), verdicts
