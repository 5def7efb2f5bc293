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
REDIS_URL = os.environ.get("GALA_TEST_REDIS", "redis://127.0.0.1:6379/0")


def redis_absent(url: str = REDIS_URL) -> str | None:
    """Why Redis at `url` cannot be used, or None when it answers PING."""
    try:
        import redis
    except ImportError as exc:
        return f"redis-py is not installed ({exc})"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        client.ping()
        client.close()
    except redis.RedisError as exc:
        return f"Redis at {url} does not answer ({exc})"
    return None


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis the multi-process target tests use; skipped, with the reason, only where none answers."""
    reason = redis_absent()
    if reason:
        pytest.skip(f"{reason}: the multi-process target over Redis cannot be tested here")
    return REDIS_URL


# Ways to run the target in tests: one in-memory process, or two processes sharing Redis.
STORES = ["memory", "redis-2"]


def store_args(kind: str, request) -> tuple[str, ...]:
    """`gala target serve` options for a store kind (requests the redis_url fixture when needed)."""
    if kind == "memory":
        return ()
    return ("--processes", kind.split("-")[1], "--store", request.getfixturevalue("redis_url"))


def start_target(*extra: str, log_dir: Path, timeout_s: float = 20.0, preexec_fn=None) -> launch.RunningTarget:
    """Start the built-in target (`gala target serve --port 0`) the one way gala does."""
    return launch.start(log_dir / f"target-{secrets.token_hex(3)}.log", extra=extra, timeout_s=timeout_s,
                        admin_token="admin-" + secrets.token_hex(8),
                        popen_kwargs={"preexec_fn": preexec_fn} if preexec_fn else None)


@pytest.fixture
def target_factory(tmp_path):
    """Call it with `gala target serve` options; every target started is stopped after the test."""
    started: list[launch.RunningTarget] = []

    def factory(*extra: str, **kw) -> launch.RunningTarget:
        t = start_target(*extra, log_dir=tmp_path, **kw)
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
