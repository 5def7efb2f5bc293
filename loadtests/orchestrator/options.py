"""What `gala run` is asked to do (`RunOptions`), what it did (`RunOutcome`), and the checks on the
options that must fail as bad input (exit 2) before any folder or process exists."""

from __future__ import annotations

import importlib.util
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import psutil

from gala.contract.errors import InputError
from gala.contract.loopback import require_loopback
from gala.contract.results import RunInfo
from loadtests.scenario import DEFAULT_SCENARIO, Scenario

@dataclass
class RunOptions:
    scenario: Path = DEFAULT_SCENARIO
    host: str | None = None
    target_pids: list[int] = field(default_factory=list)
    target_nodes: int = 1
    target_cores_per_node: float | None = None
    target_cpu_limit: float | None = None  # cores: the target confined by a cgroup (node emulation)
    out: Path = Path("results")
    duration_scale: float = 1.0
    seed: int | None = None
    workers: int = 0
    remote_workers: int = 0
    master_bind_port: int | None = None
    workers_wait_s: int | None = None
    target_config: Path | None = None
    target_processes: int = 1  # the built-in target as N processes sharing `target_store` (Redis)
    target_store: str | None = None
    inject: list[str] = field(default_factory=list)
    abort_check: Callable[[dict], str | None] | None = None  # once a second, on live.json
    quiet: bool = False
    command: list[str] = field(default_factory=list)
    users_scale: float | None = None     # -u: every phase's users multiplied (gala.cli.check.users_scale_for)
    spawn_rate: float | None = None      # -r: every phase's ramp, users/s
    run_time_s: float | None = None      # -t: the run stops here, like Locust's --run-time
    metrics_port: int | None = None      # Prometheus on 127.0.0.1:PORT from the generator
    otel: bool = False                   # Locust's --otel, with gala's phase and link
    web_port: int | None = None          # Locust's web UI on 127.0.0.1:PORT, driven by the shape


@dataclass
class RunOutcome:
    run_dir: Path
    info: RunInfo
    exit_code: int  # 0 done (complete or degraded), 1 failed, 130 stopped by a signal

    @property
    def aborted(self) -> bool:
        return (self.info.interrupt_reason or "").startswith("abort-on-fail")


def builtin_config(opts: RunOptions, sc: Scenario) -> Path | None:
    """--target-config, else the scenario's target.config (relative to the scenario file)."""
    if opts.target_config is not None:
        return opts.target_config
    return sc.source_path.parent / sc.target.config if sc.target.config else None


def check_target_store(opts: RunOptions) -> None:
    """--target-processes N needs --target-store (in-memory state is one process's); the store must
    be a loopback redis:// URL (its traffic is load too). Reachability is the target's own check."""
    if not 1 <= opts.target_processes <= 64:
        raise InputError(f"--target-processes {opts.target_processes}: expected 1..64")
    if opts.target_processes > 1 and not opts.target_store:
        raise InputError(f"--target-processes {opts.target_processes} needs --target-store redis://127.0.0.1:6379/0: "
                         "the in-memory target is one process")
    if opts.target_store:
        from urllib.parse import urlsplit

        from gala.contract.loopback import is_loopback_host
        from loadtests.target.launch import check_store_url

        check_store_url(opts.target_store, where="--target-store")
        if not is_loopback_host(urlsplit(opts.target_store).hostname or ""):
            raise InputError(f"--target-store {opts.target_store!r}: expected a Redis on this machine (127.0.0.1)")


def check_options(opts: RunOptions, sc: Scenario) -> tuple[str | None, bool]:
    """Bad combinations are input errors (exit 2) before anything starts; returns (url, builtin)."""
    if opts.workers < 0 or opts.remote_workers < 0:
        raise InputError("--workers/--remote-workers: expected a count >= 0")
    if opts.workers and opts.remote_workers:
        raise InputError("--workers and --remote-workers: expected one or the other (local or remote workers)")
    if opts.target_nodes < 1:
        raise InputError(f"--target-nodes: expected a count >= 1, got {opts.target_nodes}")
    if opts.target_cores_per_node is not None and not opts.target_cores_per_node > 0:
        raise InputError(f"--target-cores-per-node: expected a number > 0, got {opts.target_cores_per_node}")
    for pid in opts.target_pids:
        if not psutil.pid_exists(pid):
            raise InputError(f"--target-pid {pid}: no such process")
    if opts.run_time_s is not None and not opts.run_time_s > 0:
        raise InputError(f"-t/--run-time: expected a time > 0 (e.g. 30s, 2m, 1h30m), got {opts.run_time_s:g} s")
    for option, port in (("--metrics-port", opts.metrics_port), ("--web-ui", opts.web_port)):
        if port is not None:
            require_free_port(option, port)
    if opts.metrics_port is not None and opts.metrics_port == opts.web_port:
        raise InputError("--metrics-port and --web-ui: expected two different ports")
    if opts.otel and importlib.util.find_spec("opentelemetry.sdk") is None:
        raise InputError("--otel: the OpenTelemetry SDK is not installed; pip install 'gala[otel]' "
                         "(or opentelemetry-sdk and an exporter)")
    url = opts.host or (None if sc.target.builtin else sc.target.url)
    if opts.target_cpu_limit is not None and url is not None and not opts.target_pids:
        raise InputError("--target-cpu-limit: limits the built-in target or the --target-pid processes; "
                         "with --host, name your target's processes with --target-pid")
    if url is not None:
        require_loopback(url, allow_remote=sc.target.allow_remote_target, where="--host" if opts.host else f"{opts.scenario}: target.url")
        if opts.target_config or opts.inject or opts.target_processes != 1 or opts.target_store:
            raise InputError("--target-config/--inject/--target-processes/--target-store: only for the built-in target "
                             "(drop --host, or use the scenario's target: builtin)")
    else:
        check_target_store(opts)
        # the target would refuse them too, but only after a results folder exists: check them now
        from loadtests.target.config import load_config
        from loadtests.target.faults import merge_faults

        merge_faults(load_config(builtin_config(opts, sc)).faults, [*sc.target.inject, *opts.inject])
    return url, url is None


def require_free_port(option: str, port: int) -> None:
    """A port gala will serve on (127.0.0.1 only): in range and free now, else bad input."""
    if not 1 <= port <= 65535:
        raise InputError(f"{option} {port}: expected a port in 1..65535")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise InputError(f"{option} {port}: cannot listen on 127.0.0.1:{port} ({exc.strerror or exc})") from None
