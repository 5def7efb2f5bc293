"""The one way to start the built-in target as a process, for `gala run`, the tests and the benchmarks.

`gala target serve --host 127.0.0.1 --port 0` with a fresh admin token in its environment; its
stdout and stderr go to a log file whose first "serving on" line names the URL. Runs in the
caller's process and imports neither aiohttp nor the app: the target is its own program.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit, urlunsplit

from gala.contract.errors import InputError

TARGET_REFUSED_INPUT = 2  # the target's exit code when it refuses its own input (a bad --config or --inject)


class TargetStartError(RuntimeError):
    """The target did not come up; `refused_input` when it rejected its config or options (exit 2)."""

    def __init__(self, message: str, *, refused_input: bool = False):
        super().__init__(message)
        self.refused_input = refused_input


@dataclass
class RunningTarget:
    url: str
    admin_token: str
    proc: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def worker_pids(self) -> list[int]:
        """A multi-process target's workers (its `processes: N … (pids …)` line); [] for one process."""
        for line in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("processes: "):
                return [int(p) for p in line.rpartition("(pids ")[2].rstrip(")").split()]
        return []

    def pids(self) -> list[int]:
        """Every process of the target: the one process, or the supervisor and its workers."""
        return [self.pid, *self.worker_pids]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace_s: float = 10.0) -> int | None:
        """SIGTERM (the target drains and exits), then SIGKILL if it is still there after grace_s."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode


def serve_argv(*, config: Path | None = None, inject: Sequence[str] = (), extra: Sequence[str] = ()) -> list[str]:
    argv = [sys.executable, "-m", "gala", "target", "serve", "--host", "127.0.0.1", "--port", "0"]
    if config is not None:
        argv += ["--config", str(config)]
    for spec in inject:
        argv += ["--inject", spec]
    return [*argv, *extra]


def start(log_path: Path, *, config: Path | None = None, inject: Sequence[str] = (), extra: Sequence[str] = (),
          prefix: Sequence[str] = (), admin_token: str | None = None, timeout_s: float = 30.0,
          popen_kwargs: dict[str, Any] | None = None) -> RunningTarget:
    """Start the target and wait for its URL. `prefix` wraps the command (e.g. taskset); `popen_kwargs`
    lets the orchestrator start it in its own session, tied to the life of gala."""
    token = admin_token or "gala-admin-" + secrets.token_hex(16)
    env = dict(os.environ, GALA_ADMIN_TOKEN=token, PYTHONUNBUFFERED="1")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([*prefix, *serve_argv(config=config, inject=inject, extra=extra)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                **(popen_kwargs or {}))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("serving on ") and "://" in line:
                running = RunningTarget(url=line.split()[-1], admin_token=token, proc=proc, log_path=log_path)
                # N processes: the supervisor names its workers on the line after (written at once)
                while "--store" in extra and not running.worker_pids and time.monotonic() < deadline:
                    time.sleep(0.02)
                return running
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    running = RunningTarget(url="", admin_token=token, proc=proc, log_path=log_path)
    code = running.stop(grace_s=2)
    tail = log_path.read_text(encoding="utf-8", errors="replace").strip()
    if code == TARGET_REFUSED_INPUT and tail:
        raise TargetStartError(tail.splitlines()[-1].removeprefix("gala: "), refused_input=True)
    raise TargetStartError(f"the built-in target did not start within {timeout_s:.0f} s (exit code {code}); "
                           f"see {log_path}:\n{tail[-1500:]}")


def check_store_url(url: str, where: str = "--store") -> None:
    """A redis://HOST:PORT/DB URL for `--store`, else InputError naming `where`."""
    parts = urlsplit(url)
    try:
        parts.port
    except ValueError:
        raise InputError(f"{where} {url!r}: the port must be a number 0..65535") from None
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise InputError(f"{where} {url!r}: expected redis://HOST:PORT/DB (e.g. redis://127.0.0.1:6379/0)")
    db = parts.path.strip("/") or "0"
    if not db.isascii() or not db.isdigit():
        raise InputError(f"{where} {url!r}: the database must be a number (redis://HOST:PORT/DB)")


def redact(url: str) -> str:
    """The store URL without a password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, f"{parts.username or ''}:***@{host}", parts.path, parts.query, parts.fragment))
