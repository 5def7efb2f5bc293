"""The load generator as subprocesses: one local Locust, or a master and its workers (ZeroMQ).

gevent never enters the `gala` process: Locust runs as `python -m locust` children, started with
the package's locustfile and gala's custom arguments (see loadtests/locustfile.py).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

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


def locust_argv(*, scenario: Path, host: str | None = None, duration_scale: float | None = None,
                seed: int | None = None, out: Path | None = None, logfile: Path | None = None,
                headless: bool = True, run_time_s: int | None = None, master: bool = False,
                expect_workers: int = 0, workers_wait_s: int | None = None, master_port: int | None = None,
                master_bind_host: str | None = None, worker: bool = False, master_host: str = "127.0.0.1",
                locustfile: Path | str = LOCUSTFILE, extra: Sequence[str] = ()) -> list[str]:
    """The one builder of Locust's command line for gala's locustfile: `gala run`'s processes, the
    tests and the benchmarks. `out` makes it the writing process (gala's files, Locust's CSVs and
    HTML report, its log); a worker writes nothing but its log."""
    argv = [sys.executable, "-m", "locust", "-f", str(locustfile), "--scenario", str(scenario)]
    if duration_scale is not None:
        argv += ["--duration-scale", repr(duration_scale)]
    if seed is not None:
        argv += ["--seed", str(seed)]
    if host is not None:
        argv += ["--host", host]
    if worker:
        argv += ["--worker", "--master-host", master_host]
        if master_port is not None:
            argv += ["--master-port", str(master_port)]
    elif headless:
        argv += ["--headless", "--only-summary",
                 # failed requests are results, not a failed run: keep exit codes for real breakage
                 "--exit-code-on-error", "0"]
    if out is not None and not worker:
        argv += ["--gala-out", str(out), "--csv", str(out / "locust"), "--html", str(out / "locust_report.html")]
    if logfile is not None:
        argv += ["--logfile", str(logfile)]
    if run_time_s is not None:
        # a safety bound; gala also enforces its own (a shape in headless mode may ignore --run-time)
        argv += ["--run-time", f"{run_time_s}s"]
    if master:
        argv += ["--master", "--expect-workers", str(expect_workers)]
        if workers_wait_s is not None:
            argv += ["--expect-workers-max-wait", str(workers_wait_s)]
        if master_port is not None:
            argv += ["--master-bind-port", str(master_port)]
        if master_bind_host is not None:
            argv += ["--master-bind-host", master_bind_host]
    return [*argv, *extra]


def main_argv(plan: GeneratorPlan, master_port: int | None) -> list[str]:
    """The local process, or the master: it runs the shape and writes every file of the run."""
    expect = plan.workers or plan.remote_workers
    return locust_argv(scenario=plan.scenario, host=plan.host, duration_scale=plan.duration_scale, seed=plan.seed,
                       out=plan.run_dir, logfile=plan.run_dir / "locust.log", run_time_s=plan.run_time_s,
                       master=bool(expect), expect_workers=expect, workers_wait_s=plan.connect_wait_s,
                       master_port=master_port, master_bind_host="127.0.0.1" if plan.workers else None)


def worker_argv(plan: GeneratorPlan, index: int, master_port: int) -> list[str]:
    # workers get the scenario too (their users need it) but no --gala-out: only the master writes
    return locust_argv(scenario=plan.scenario, host=plan.host, duration_scale=plan.duration_scale, seed=plan.seed,
                       worker=True, master_port=master_port,
                       logfile=plan.run_dir / f"locust-worker-{index}.log")


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
