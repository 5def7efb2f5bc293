"""Shared fixtures: real target processes on 127.0.0.1, started and stopped per test."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from loadtests.target import launch

REPO = Path(__file__).resolve().parent.parent
GALA = [sys.executable, "-m", "gala"]


def start_target(*extra: str, log_dir: Path, timeout_s: float = 20.0) -> launch.RunningTarget:
    """Start the built-in target (`gala target serve --port 0`) the one way gala does."""
    return launch.start(log_dir / f"target-{secrets.token_hex(3)}.log", extra=extra, timeout_s=timeout_s,
                        admin_token="admin-" + secrets.token_hex(8))


@pytest.fixture
def target_factory(tmp_path):
    """Call it with `gala target serve` options; every target started is stopped after the test."""
    started: list[launch.RunningTarget] = []

    def factory(*extra: str) -> launch.RunningTarget:
        t = start_target(*extra, log_dir=tmp_path)
        started.append(t)
        return t

    yield factory
    for t in started:
        t.stop()


@pytest.fixture
def target(target_factory) -> launch.RunningTarget:
    """A built-in target with its default configuration."""
    return target_factory()


def gala(*args: str, timeout_s: float = 240, env: dict | None = None, check: bool = False) -> subprocess.CompletedProcess:
    """Run the real `gala` command line in a subprocess, bounded in time."""
    proc = subprocess.run(
        [*GALA, *args], capture_output=True, text=True, timeout=timeout_s, cwd=REPO,
        env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})),
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"gala {' '.join(args)} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="session")
def short_run(tmp_path_factory) -> Path:
    """One real short rehearsal of the default scenario against the built-in target, shared by
    every test that only reads a results folder (the plan, the gate, swarm sizing)."""
    out = tmp_path_factory.mktemp("short-run")
    proc = gala("run", "--duration-scale", "0.2", "--no-plan", "--out", str(out), timeout_s=240)
    if proc.returncode != 0:
        raise AssertionError(f"gala run failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    folders = [p for p in out.iterdir() if (p / "run.json").exists()]
    assert len(folders) == 1, f"expected one results folder in {out}, found {folders}"
    return folders[0]
