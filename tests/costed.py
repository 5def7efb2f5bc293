"""Servers a test starts as processes (benchmarks/costed_target.py, or a script of its own) and waits for:
each prints `serving on http://127.0.0.1:PORT` once listening. Shared by the knee search's, the held-out
validation's and the other-system tests."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COSTED = REPO / "benchmarks" / "costed_target.py"

_spec = importlib.util.spec_from_file_location("costed_target", COSTED)
costed_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(costed_module)


@contextmanager
def serving(argv: list[str], what: str = "server"):
    """Start `argv`, wait for its URL line: yields (url, pid); killed afterwards."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        deadline = time.monotonic() + 30
        line = ""
        while time.monotonic() < deadline and "http://" not in line:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
        assert "http://" in line, f"{what} did not start: {line!r}"
        yield line.split()[-1], proc.pid
    finally:
        proc.kill()
        proc.wait(timeout=10)


def costed_target(*costs: str, growth: float = 0.0):
    """The costed target on a free loopback port (`costs` as PATH=CPU_MS): a context yielding (url, pid)."""
    return costed_module.started({p: float(ms) for p, ms in (c.split("=") for c in costs)}, growth=growth)


def grab_scenario(path: Path, phases: list[tuple[str, float, int]], *, rate_per_s: float = 2.0) -> Path:
    """A scenario of the costed target's `grab` link (benchmarks/costed_target.py scenario_yaml)."""
    path.write_text(costed_module.scenario_yaml(phases, rate_per_s=rate_per_s))
    return path
