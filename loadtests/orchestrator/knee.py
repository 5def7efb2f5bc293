"""The knee search's bench (`gala probe`): one target, started (or named) once and confined to a CPU
limit for the whole search, and one short `gala run` per step against it.

A step offers one phase's mix of the scenario at one rate: the phase's users, every class scaled by
the same factor (each user keeps its own pace, so the mix of links is the phase's), a warm-up phase
in which they start (their set-up traffic) and then the measured phase. Each step is a results
folder of its own (`<search>/steps/<run-id>/`), readable by `gala plan` like any run. Which rate to
offer next is decided by the capacity model (`capacity_model.knee`); the CLI joins the two.
"""

from __future__ import annotations

import contextlib
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from gala.contract.atomic import write_text_atomic
from gala.contract.errors import InputError
from gala.contract.yamlfile import load_marked
from loadtests.orchestrator.cpulimit import CpuLimit
from loadtests.orchestrator.options import RunOptions, builtin_config, check_options
from loadtests.orchestrator.run_folder import new_run_id
from loadtests.orchestrator.runner import run
from loadtests.orchestrator.target_control import start_builtin
from loadtests.scenario import Scenario, load_scenario

WARM_PHASE = "warm"  # the step's users start here (their set-up requests); not measured
STEP_PHASE = "step"  # the measured part of a step


@dataclass(frozen=True)
class Mix:
    """A phase of the scenario as a mix: its users per class and what its critical links carry."""

    name: str
    users: dict[str, int]
    intended_rps: dict[str, float]  # critical links only

    @property
    def total_rps(self) -> float:
        return sum(self.intended_rps.values())

    @property
    def fractions(self) -> dict[str, float]:
        return {k: v / self.total_rps for k, v in self.intended_rps.items()}


def scenario_mixes(sc: Scenario, names: list[str] | None = None) -> list[Mix]:
    """The scenario's phases that load a critical link, as mixes (those named, in the scenario's order)."""
    critical = set(sc.critical_links)
    out = []
    for spec, plan in zip(sc.phases, sc.planned_phases()):
        # what the phase's users offer while they all run (a phase's intended_rps is spread over the
        # part of it that no later phase overlaps)
        rps: dict[str, float] = {}
        for user, n in spec.users.items():
            for link, share in sc.users[user].shares().items():
                if link in critical and n > 0:
                    rps[link] = rps.get(link, 0.0) + n * plan.user_rate_per_s.get(user, 0.0) * share
        rps = {k: v for k, v in rps.items() if v > 0}
        if rps and (names is None or spec.name in names):
            out.append(Mix(spec.name, {u: n for u, n in spec.users.items() if n > 0}, rps))
    missing = sorted(set(names or []) - {m.name for m in out})
    if missing:
        known = ", ".join(p.name for p in sc.phases)
        raise InputError(f"--phase {missing[0]}: no phase of {sc.source_path} by that name loads a critical link "
                         f"(phases: {known})")
    if not out:
        raise InputError(f"{sc.source_path}: no phase loads a critical link at a known rate (paced users or "
                         "arrival_rps): nothing to search")
    return out


@dataclass
class KneeBench:
    """The target of a knee search, and the steps run against it. Use as a context manager."""

    scenario: Path
    out_dir: Path                                    # the search's folder
    host: str | None = None
    target_pids: list[int] = field(default_factory=list)
    cpu_limit: float | None = None
    target_processes: int = 1
    target_store: str | None = None
    target_config: Path | None = None
    warm_s: float = 2.5
    step_s: float = 6.0
    quiet: bool = True

    def __post_init__(self) -> None:
        self.sc = load_scenario(self.scenario)
        opts = RunOptions(scenario=self.scenario, host=self.host, target_pids=self.target_pids,
                          target_cpu_limit=self.cpu_limit, target_processes=self.target_processes,
                          target_store=self.target_store, target_config=self.target_config)
        self.url, self.builtin = check_options(opts, self.sc)  # bad input before anything starts
        self.raw, _ = load_marked(self.scenario, "scenario")
        self.limit: CpuLimit | None = None
        self.target = None
        self.pids: list[int] = list(self.target_pids)

    # ------------------------------------------------------------ the target

    def __enter__(self) -> "KneeBench":
        try:
            if self.cpu_limit is not None:  # before the folder: what cannot be limited is bad input, nothing left
                self.limit = CpuLimit(self.cpu_limit, label="--target-cpu-limit")
                self.limit.create()
                for pid in self.target_pids:
                    self.limit.apply(pid)
            self.out_dir.mkdir(parents=True, exist_ok=True)
            if self.builtin:
                store = self.target_store if self.target_processes > 1 or self.target_store else None
                self.target = start_builtin(self.out_dir, config=builtin_config(
                    RunOptions(scenario=self.scenario, target_config=self.target_config), self.sc), inject=[],
                    processes=self.target_processes, store=store)
                self.url = self.target.url
                self.pids = [self.target.child.pid]  # its workers are its children: sampled and limited with it
                if self.limit is not None:
                    self.limit.apply(self.target.child.pid)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.target is not None:
            self.target.child.stop(signal.SIGTERM, grace_s=10)
            self.target.child.kill_group()
            self.target = None
        if self.limit is not None:
            self.limit.remove()

    def alive(self) -> bool:
        return self.target is None or self.target.child.alive()

    @property
    def mechanism(self) -> str | None:
        rec = self.limit.record() if self.limit is not None else None
        return rec.mechanism if rec else None

    # ------------------------------------------------------------ a step

    def step_scenario(self, mix: Mix, index: int, rate_rps: float) -> tuple[Path, float]:
        """Write the step's scenario: the mix's users scaled to offer `rate_rps` on its critical links.
        Returns the file and the rate it really offers (users are whole)."""
        factor = rate_rps / mix.total_rps
        users = {u: max(1, round(n * factor)) for u, n in mix.users.items()}
        offered = sum(mix.intended_rps.values()) * sum(users.values()) / sum(mix.users.values())
        raw = dict(self.raw)
        target = {k: v for k, v in (raw.get("target") or {}).items()
                  if k in ("admin_token_env", "allow_remote_target")}
        raw["target"] = {**target, "url": self.url}
        raw["users"] = {name: self._absolute(dict(u)) for name, u in (raw.get("users") or {}).items()}
        total = sum(users.values())
        spawn = max(1.0, total / max(0.5, self.warm_s * 0.6))  # all started well before the measured phase
        raw["phases"] = [
            {"name": WARM_PHASE, "duration_s": self.warm_s, "users": users, "spawn_rate": round(spawn, 3)},
            {"name": STEP_PHASE, "duration_s": self.step_s, "users": users},
        ]
        # "probe-…": `gala plan` reads a step as a step-load run (the black-box probe's steps) when it is given one
        raw["name"] = f"probe-knee-{mix.name}-{index}"
        raw["description"] = f"knee search step {index} of phase {mix.name}: {rate_rps:.1f} req/s offered"
        path = self.out_dir / "scenarios" / f"{mix.name}-{index}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))
        return path, offered

    def _absolute(self, user: dict) -> dict:
        """A feeder's CSV is relative to the scenario file: keep it found from the step's copy."""
        feeder = user.get("feeder")
        if isinstance(feeder, dict) and feeder.get("csv") and not Path(feeder["csv"]).is_absolute():
            user["feeder"] = {**feeder, "csv": str((self.scenario.parent / feeder["csv"]).resolve())}
        return user

    def run_step(self, mix: Mix, index: int, rate_rps: float) -> Path:
        """One step: a short run of the mix at `rate_rps` into `steps/`; returns its folder."""
        path, _ = self.step_scenario(mix, index, rate_rps)
        # each step's own table and warnings go to steps.log: the search prints one line per step
        with open(self.out_dir / "steps.log", "a", encoding="utf-8") as log, \
                contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            outcome = self._run(path, mix, rate_rps)
        if outcome.info.interrupted and (outcome.info.interrupt_reason or "").startswith("SIG"):
            raise KeyboardInterrupt
        return outcome.run_dir

    def _run(self, path: Path, mix: Mix, rate_rps: float):
        return run(RunOptions(
            scenario=path, host=self.url, target_pids=self.pids, target_nodes=1,
            target_cores_per_node=self.cpu_limit, out=self.out_dir / "steps", quiet=self.quiet,
            command=["gala", "probe", "(step)", mix.name, f"{rate_rps:.1f}"],
        ))


def search_id(scenario_name: str) -> str:
    return new_run_id(f"knee-{scenario_name}", time.time())


def step_budget_s(warm_s: float, step_s: float) -> float:
    """A step's wall time, start-up and folder included (measured: about 4 s more than its phases)."""
    return warm_s + step_s + 4.0

