"""Shared fixtures: real target processes on 127.0.0.1, started and stopped per test."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GALA = [sys.executable, "-m", "gala"]


@dataclass
class TargetProcess:
    url: str
    admin_token: str
    proc: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def start_target(*extra: str, log_dir: Path, timeout_s: float = 20.0) -> TargetProcess:
    """Start `gala target serve --port 0` and wait for its first line, the URL it serves on."""
    token = "admin-" + secrets.token_hex(8)
    log_path = log_dir / f"target-{secrets.token_hex(3)}.log"
    env = dict(os.environ, GALA_ADMIN_TOKEN=token, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [*GALA, "target", "serve", "--host", "127.0.0.1", "--port", "0", *extra],
        stdout=subprocess.PIPE, stderr=open(log_path, "w"), text=True, env=env, cwd=REPO,
    )
    deadline = time.monotonic() + timeout_s
    line = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line or proc.poll() is not None:
            break
    if "http://" not in line:
        proc.kill()
        raise RuntimeError(f"target did not start: first line {line!r}; log: {log_path.read_text()[-2000:]}")
    url = line.strip().split()[-1]
    return TargetProcess(url=url, admin_token=token, proc=proc, log_path=log_path)


@pytest.fixture
def target_factory(tmp_path):
    """Call it with `gala target serve` options; every target started is stopped after the test."""
    started: list[TargetProcess] = []

    def factory(*extra: str) -> TargetProcess:
        t = start_target(*extra, log_dir=tmp_path)
        started.append(t)
        return t

    yield factory
    for t in started:
        t.stop()


@pytest.fixture
def target(target_factory) -> TargetProcess:
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
