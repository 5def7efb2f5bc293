"""Child processes of a run (target, Locust master, workers): started in their own process group,
tied to the life of `gala`, and stopped without leaving orphans."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

_PR_SET_PDEATHSIG = 1
try:
    _LIBC = ctypes.CDLL("libc.so.6", use_errno=True) if sys.platform.startswith("linux") else None
except OSError:
    _LIBC = None


def die_with_parent() -> None:
    # runs in the child between fork and exec: if gala dies (even by SIGKILL), the child gets SIGTERM
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        # a shell's background job inherits SIGINT ignored; Locust needs it to stop cleanly
        _LIBC.signal(signal.SIGINT, 0)  # 0 = SIG_DFL


@dataclass
class Child:
    """One child process and what it is for ("target", "master", "worker-1", "local")."""

    role: str
    proc: subprocess.Popen
    log_path: Path
    started_at: float = field(default_factory=time.time)
    exited_at: float | None = None
    noted: bool = False  # its exit has been accounted for by the runner

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        code = self.proc.poll()
        if code is not None and self.exited_at is None:
            self.exited_at = time.time()
        return code

    def alive(self) -> bool:
        return self.poll() is None

    def send(self, sig: int) -> None:
        if self.alive():
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def wait(self, timeout_s: float) -> bool:
        """Wait up to timeout_s for the process to exit; True if it did."""
        try:
            self.proc.wait(timeout=max(timeout_s, 0))
        except subprocess.TimeoutExpired:
            return False
        self.poll()
        return True

    def kill_group(self) -> None:
        """SIGKILL the child's whole process group (it and anything it forked)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.poll()

    def stop(self, sig: int = signal.SIGTERM, grace_s: float = 10.0) -> int | None:
        """Ask the child to stop with `sig`, then kill its group if it is still there after grace_s."""
        self.send(sig)
        if not self.wait(grace_s):
            self.kill_group()
        else:
            self.kill_group()  # the leader exited: take any stragglers of its group with it
        return self.proc.returncode


def spawn(role: str, argv: list[str], log_path: Path, *, env: dict[str, str] | None = None,
          cwd: Path | None = None) -> Child:
    """Start argv in a new session (so a terminal's Ctrl-C reaches only gala, which forwards it),
    stdout and stderr appended to log_path."""
    log = open(log_path, "ab")
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=env, cwd=cwd, start_new_session=True, preexec_fn=die_with_parent,
        )
    finally:
        log.close()
    return Child(role=role, proc=proc, log_path=log_path)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def python_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.update(extra)
    return env
