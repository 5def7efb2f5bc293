"""The run's side of the target: start the built-in one, check a given URL, make the scenario's
after-run admin calls and fetch the audit. Plain urllib: this runs in the `gala` process."""

from __future__ import annotations

import ipaddress
import json
import secrets
import socket
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from gala.contract.errors import InputError
from loadtests.orchestrator.procs import Child, python_env, spawn


class TargetError(RuntimeError):
    """The target could not be started or reached."""


def check_loopback(url: str, *, allow_remote: bool, where: str) -> None:
    """Load goes only to 127.0.0.1 unless the scenario explicitly allows a remote target."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"{where}: {url!r} is not an http(s) URL (expected e.g. http://127.0.0.1:8080)")
    if allow_remote:
        return
    try:
        addrs = {info[4][0] for info in socket.getaddrinfo(parts.hostname, parts.port or 80)}
    except socket.gaierror as exc:
        raise InputError(f"{where}: cannot resolve {parts.hostname!r} ({exc})") from None
    if not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs):
        raise InputError(
            f"{where}: {url} is not a loopback address; load goes only to 127.0.0.1 unless the "
            f"scenario's target sets allow_remote_target: true"
        )


@dataclass
class BuiltinTarget:
    url: str
    admin_token: str
    child: Child


def start_builtin(run_dir: Path, *, config: Path | None, inject: list[str], timeout_s: float = 30.0) -> BuiltinTarget:
    """Start `gala target serve` on a free loopback port; its first stdout line names the URL."""
    token = "gala-admin-" + secrets.token_hex(16)
    argv = [sys.executable, "-m", "gala", "target", "serve", "--host", "127.0.0.1", "--port", "0"]
    if config is not None:
        argv += ["--config", str(config)]
    for spec in inject:
        argv += ["--inject", spec]
    log_path = run_dir / "target.log"
    child = spawn("target", argv, log_path, env=python_env(GALA_ADMIN_TOKEN=token))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = log_path.read_text(encoding="utf-8", errors="replace")
        for line in text.splitlines():
            if "http://" in line:
                return BuiltinTarget(url=line.strip().split()[-1], admin_token=token, child=child)
        if not child.alive():
            break
        time.sleep(0.1)
    child.stop(grace_s=2)
    tail = log_path.read_text(encoding="utf-8", errors="replace")[-1500:]
    if child.proc.returncode == 2 and tail.strip():
        # the target refused its own input (a bad --config or --inject): that is the user's input
        raise InputError(tail.strip().splitlines()[-1].removeprefix("gala: "))
    raise TargetError(f"the built-in target did not start within {timeout_s:.0f} s; see {log_path}:\n{tail}")


@dataclass
class AdminCall:
    method: str
    path: str
    body: dict | None = None


@dataclass
class AdminOutcome:
    calls: list[dict] = field(default_factory=list)
    audit: dict | None = None
    error: str | None = None


def http_json(method: str, url: str, *, token: str | None, body: dict | None = None, timeout_s: float = 15.0):
    data = None if body is None and method == "GET" else json.dumps(body or {}).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            payload = json.loads(exc.read() or b"null")
        except ValueError:
            payload = None
        return exc.code, payload


def after_run(url: str, token: str | None, calls: list[AdminCall], audit_path: str | None) -> AdminOutcome:
    """The scenario's after-run admin calls in order (e.g. the five-card draw), then the audit."""
    out = AdminOutcome()
    try:
        for call in calls:
            status, reply = http_json(call.method, urljoin(url, call.path), token=token, body=call.body)
            out.calls.append({"method": call.method, "path": call.path, "status": status, "reply": reply})
        if audit_path:
            status, reply = http_json("GET", urljoin(url, audit_path), token=token)
            if status == 200 and isinstance(reply, dict):
                out.audit = reply
            else:
                out.error = f"GET {audit_path} answered {status}: {reply}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        out.error = f"{type(exc).__name__}: {exc}"
    return out
