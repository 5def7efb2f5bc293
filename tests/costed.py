"""benchmarks/costed_target.py as a fixture's process, and a one-link scenario of declarative users for it
(shared by the knee search's and held-out validation's tests)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COSTED = REPO / "benchmarks" / "costed_target.py"


@contextmanager
def costed_target(*costs: str, growth: float = 0.0):
    """The costed target on a free loopback port: yields (url, pid); killed afterwards."""
    argv = [sys.executable, str(COSTED), "--port", "0", *[a for c in costs for a in ("--cost", c)],
            "--growth", str(growth)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        deadline = time.monotonic() + 30
        line = ""
        while time.monotonic() < deadline and "http://" not in line:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
        assert "http://" in line, f"costed target did not start: {line!r}"
        yield line.split()[-1], proc.pid
    finally:
        proc.kill()
        proc.wait(timeout=10)


def grab_scenario(path: Path, *, users: int = 40, rate_per_s: float = 2.0, duration_s: float = 5.0) -> Path:
    """One critical link `grab` (POST /grab), Poisson-paced declarative users, one phase."""
    path.write_text(textwrap.dedent(f"""\
        name: costed
        seed: 11
        target: {{url: "http://127.0.0.1:1"}}   # replaced by --host
        links:
          grab: {{critical: true}}
        users:
          Grabber:
            rate_per_s: {rate_per_s}
            pacing: poisson
            requests:
              - {{method: POST, path: /grab, link: grab}}
        phases:
          - {{name: grab, duration_s: {duration_s}, users: {{Grabber: {users}}}, spawn_rate: {max(users, 1)}}}
    """))
    return path
