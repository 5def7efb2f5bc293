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
    workers: list[int] = field(default_factory=list)  # with a store: the worker processes (children of child)


def start_builtin(run_dir: Path, *, config: Path | None, inject: list[str], processes: int = 1,
                  store: str | None = None, timeout_s: float = 30.0) -> BuiltinTarget:
    """Start the built-in target (loadtests.target.launch) in its own session, tied to the life of gala;
    with `store`, as `processes` workers under a supervisor sharing their state in that Redis."""
    extra = ["--processes", str(processes), "--store", store] if store else []
    try:
        target = launch.start(run_dir / "target.log", config=config, inject=inject, extra=extra, timeout_s=timeout_s,
                              popen_kwargs={"start_new_session": True, "preexec_fn": die_with_parent})
    except launch.TargetStartError as exc:
        # a target refusing its own input (a bad --config or --inject) is the user's input
        raise (InputError(str(exc)) if exc.refused_input else TargetError(str(exc))) from None
    child = Child(role="target", proc=target.proc, log_path=target.log_path)
    return BuiltinTarget(url=target.url, admin_token=target.admin_token, child=child, workers=target.worker_pids)


def store_server_pid(url: str) -> int | None:
    """The pid of the Redis server at `url` (on this machine), to sample its CPU as a service; None if unknown."""
    try:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        try:
            return int(client.info("server")["process_id"])
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - sampling the store is a bonus; the target already checked it answers
        return None


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
