"""The load generator as subprocesses: one local Locust, or a master and its workers (ZeroMQ).

gevent never enters the `gala` process: Locust runs as `python -m locust` children, started with
the package's locustfile and gala's custom arguments (see loadtests/locustfile.py).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from loadtests.orchestrator.procs import Child, free_port, python_env, spawn

LOCUSTFILE = Path(__file__).resolve().parent.parent / "locustfile.py"
# how long a master waits for its workers before giving up: local processes start in seconds,
# pods may first pull an image
WORKERS_CONNECT_WAIT_S = {"local": 60, "remote": 300}


@dataclass(frozen=True)
class GeneratorPlan:
    """What to start: `workers` local worker processes (0: one local process), or a master that
    waits for `remote_workers` connecting from elsewhere on `master_bind_port`."""

    scenario: Path
    host: str
    run_dir: Path
    duration_scale: float
    seed: int
    run_time_s: int
    workers: int = 0
    remote_workers: int = 0
    master_bind_port: int | None = None
    workers_wait_s: int | None = None  # None: WORKERS_CONNECT_WAIT_S by where the workers are

    @property
    def connect_wait_s(self) -> int:
        if self.workers_wait_s is not None:
            return self.workers_wait_s
        return WORKERS_CONNECT_WAIT_S["remote" if self.remote_workers else "local"]

    @property
    def mode(self) -> str:
        return "distributed" if self.workers or self.remote_workers else "local"


def _gala_args(plan: GeneratorPlan) -> list[str]:
    return ["--scenario", str(plan.scenario), "--duration-scale", repr(plan.duration_scale),
            "--seed", str(plan.seed)]


def main_argv(plan: GeneratorPlan, master_port: int | None) -> list[str]:
    """The local process, or the master: it runs the shape and writes every file of the run."""
    d = plan.run_dir
    argv = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        *_gala_args(plan), "--gala-out", str(d),
        "--host", plan.host,
        "--csv", str(d / "locust"), "--html", str(d / "locust_report.html"),
        "--logfile", str(d / "locust.log"),
        # a safety bound; gala also enforces its own (a shape in headless mode may ignore --run-time)
        "--run-time", f"{plan.run_time_s}s",
        # failed requests are results, not a failed run: keep exit codes for real breakage
        "--exit-code-on-error", "0",
        "--only-summary",
    ]
    expect = plan.workers or plan.remote_workers
    if expect:
        argv += ["--master", "--expect-workers", str(expect),
                 "--expect-workers-max-wait", str(plan.connect_wait_s)]
        if master_port is not None:
            argv += ["--master-bind-port", str(master_port)]
        if plan.workers:
            argv += ["--master-bind-host", "127.0.0.1"]
    return argv


def worker_argv(plan: GeneratorPlan, index: int, master_port: int) -> list[str]:
    # workers get the scenario too (their users need it) but no --gala-out: only the master writes
    return [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker",
        "--master-host", "127.0.0.1", "--master-port", str(master_port),
        *_gala_args(plan), "--host", plan.host,
        "--logfile", str(plan.run_dir / f"locust-worker-{index}.log"),
    ]


def start(plan: GeneratorPlan) -> tuple[Child, list[Child]]:
    """Start the generator; returns the main process (local or master) and the local workers."""
    port = plan.master_bind_port
    if plan.workers and port is None:
        port = free_port()
    main_role = "master" if plan.mode == "distributed" else "local"
    # stdout/stderr go to the same file as Locust's log (both append): one log per process
    main = spawn(main_role, main_argv(plan, port), plan.run_dir / "locust.log", env=python_env())
    workers = [
        spawn(f"worker-{i}", worker_argv(plan, i, port), plan.run_dir / f"locust-worker-{i}.log", env=python_env())
        for i in range(1, plan.workers + 1)
    ]
    return main, workers
