"""The run's side of the target: start the built-in one (through loadtests.target.launch), make the scenario's
after-run admin calls and fetch the audit. Plain urllib: this runs in the `gala` process."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

from gala.contract.errors import InputError
from loadtests.orchestrator.procs import Child, die_with_parent
from loadtests.target import launch


class TargetError(RuntimeError):
    """The target could not be started or reached."""


@dataclass
class BuiltinTarget:
    url: str
    admin_token: str
    child: Child


def start_builtin(run_dir: Path, *, config: Path | None, inject: list[str], timeout_s: float = 30.0) -> BuiltinTarget:
    """Start the built-in target (loadtests.target.launch) in its own session, tied to the life of gala."""
    try:
        target = launch.start(run_dir / "target.log", config=config, inject=inject, timeout_s=timeout_s,
                              popen_kwargs={"start_new_session": True, "preexec_fn": die_with_parent})
    except launch.TargetStartError as exc:
        # a target refusing its own input (a bad --config or --inject) is the user's input
        raise (InputError(str(exc)) if exc.refused_input else TargetError(str(exc))) from None
    child = Child(role="target", proc=target.proc, log_path=target.log_path)
    return BuiltinTarget(url=target.url, admin_token=target.admin_token, child=child)


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
