"""The results folder: typed models of its files, and the reader (histograms: `gala.contract.histogram`).

This module is the contract between the parts (documented in results/README.md). It imports
neither Locust nor gevent: the rehearsal writes through it, the capacity model and the gate read
through it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gala.contract.errors import InputError
from gala.contract.yamlfile import describe_error, field_path, pydantic_loc

FORMAT_VERSION = 1
ALL = "_all"

PHASE_LINK_COLUMNS = [
    "phase", "link", "requests", "failures", "error_ratio", "duration_s", "rps", "intended_rps",
    "achieved_ratio", "mean_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms",
]
TIMESERIES_COLUMNS = ["t_s", "ts", "phase", "link", "requests", "failures", "p50_ms", "p95_ms", "p99_ms"]
CPU_COLUMNS = ["t_s", "ts", "role", "pid", "name", "cpu_percent", "cpu_s", "rss_mb"]
# link_cpu.csv (optional): the target's own cumulative CPU per link (GET /admin/cpu), polled during the run;
# a row with link PROCESS_ROW holds the process's whole CPU and the requests of all its links
LINK_CPU_COLUMNS = ["t_s", "ts", "pid", "link", "requests", "cpu_s"]
PROCESS_ROW = "_process"
# a row with link SPEED_ROW holds the speed reference's work units done in-run (requests) and their CPU (cpu_s)
SPEED_ROW = "_speed"


class ResultsError(InputError):
    """A results folder that cannot be read; the message names the file and what is wrong."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class ScenarioRef(_Model):
    name: str
    path: str | None = None
    sha256: str
    seed: int | None = None


class TargetInfo(_Model):
    url: str
    builtin: bool = False
    pids: list[int] = Field(default_factory=list)
    nodes: int = 1
    processes: int = 1
    injected_faults: list[str] = Field(default_factory=list)
    # `gala run --target-cpu-limit`: the target confined to a fraction of a core (node emulation)
    cpu_limit_cores: float | None = None
    cpu_limit_mechanism: Literal["cgroup-v2", "cgroup-v1"] | None = None
    cpu_limit_cgroup: str | None = None  # the cgroup it ran in (removed after the run)
    cpu_limit_periods: int | None = None  # CFS periods in which the target ran ...
    cpu_limit_throttled_periods: int | None = None  # ... and in which it used up its quota
    cpu_limit_throttled_s: float | None = None  # time it waited for its quota


class PhaseRecord(_Model):
    name: str
    planned_start_s: float
    planned_end_s: float
    started_s: float | None = None
    ended_s: float | None = None
    intended_rps: dict[str, float] = Field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        if self.started_s is None or self.ended_s is None:
            return None
        return self.ended_s - self.started_s


class GeneratorInfo(_Model):
    mode: Literal["local", "distributed", "kubernetes"] = "local"
    processes: int = 1
    workers: int = 0
    locust_version: str = ""
    peak_cpu_percent: float | None = None
    saturated: bool = False
    hostname: str = ""


class AuditSummary(_Model):
    available: bool = False
    passed: bool | None = None


class DegradedEvent(_Model):
    t_s: float | None = None
    what: str
    detail: str = ""


class MachineInfo(_Model):
    """The machine the run measured on, and its speed reference at the run's start and end
    (loadtests/orchestrator/speed.py: work units per CPU-second, with their spread)."""

    hostname: str = ""
    cpus: int | None = None
    cpu_model: str = ""
    speed_ref_start: dict | None = None
    speed_ref_end: dict | None = None


class RunInfo(_Model):
    """`run.json`."""

    format_version: int = FORMAT_VERSION
    run_id: str
    status: Literal["running", "complete", "interrupted", "degraded", "failed"]
    interrupted: bool = False
    interrupt_reason: str | None = None
    degraded: list[DegradedEvent] = Field(default_factory=list)
    scenario: ScenarioRef
    duration_scale: float = 1.0
    links: list[str]
    critical_links: list[str] = Field(default_factory=list)
    target: TargetInfo
    started_at: str
    ended_at: str | None = None
    duration_s: float | None = None
    phases: list[PhaseRecord]
    generator: GeneratorInfo = Field(default_factory=GeneratorInfo)
    machine: MachineInfo = Field(default_factory=MachineInfo)
    versions: dict[str, str] = Field(default_factory=dict)
    audit: AuditSummary = Field(default_factory=AuditSummary)
    command: list[str] = Field(default_factory=list)


# ---------------------------------------------------------------- reading

@dataclass
class Run:
    """A finished results folder, read into typed metadata and pandas frames."""

    path: Path
    info: RunInfo
    phase_link: pd.DataFrame
    timeseries: pd.DataFrame
    cpu: pd.DataFrame
    histograms: dict = field(default_factory=dict)
    audit: dict | None = None

    @property
    def run_id(self) -> str:
        return self.info.run_id

    def histogram(self, link: str, phase: str | None = None) -> dict[int, int]:
        """The latency histogram of a link, for one phase or (phase None) the whole run."""
        src = self.histograms.get("all", {}) if phase is None else self.histograms.get("phases", {}).get(phase, {})
        return {int(k): int(v) for k, v in src.get(link, {}).items()}


def _read_csv(path: Path, columns: list[str]) -> pd.DataFrame:
    if not path.exists():
        raise ResultsError(f"{path}: missing (a results folder needs it; see results/README.md)")
    try:
        df = pd.read_csv(path, keep_default_na=True)
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=columns)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: not a readable CSV ({exc})") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ResultsError(f"{path}: missing column(s) {', '.join(missing)}; expected {','.join(columns)}")
    return df


def load_run_info(folder: str | Path) -> RunInfo:
    folder = Path(folder)
    path = folder / "run.json"
    if not folder.is_dir():
        raise ResultsError(f"{folder}: not a results folder (no such directory)")
    if not path.exists():
        raise ResultsError(f"{path}: missing; {folder} is not a results folder")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: not valid JSON ({exc})") from None
    try:
        info = RunInfo.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ResultsError(f"{path}: {field_path(pydantic_loc(err))}: {describe_error(err, RunInfo)}") from None
    if info.format_version != FORMAT_VERSION:
        raise ResultsError(f"{path}: format_version {info.format_version}, this gala reads {FORMAT_VERSION}")
    return info


def load_link_cpu(folder: str | Path) -> pd.DataFrame | None:
    """A run's link_cpu.csv (the target's own CPU per link), or None when the run has none."""
    path = Path(folder) / "link_cpu.csv"
    if not path.exists():
        return None
    return _read_csv(path, LINK_CPU_COLUMNS)


def load_run(folder: str | Path, *, allow_running: bool = False) -> Run:
    """Read a results folder; raise ResultsError with one clear line when it is not a finished run."""
    folder = Path(folder)
    info = load_run_info(folder)
    if info.status == "running" and not allow_running:
        raise ResultsError(f"{folder / 'run.json'}: status is 'running': the run has not finished (or its writer died)")
    hist_path = folder / "histograms.json"
    try:
        histograms = json.loads(hist_path.read_text(encoding="utf-8")) if hist_path.exists() else {}
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{hist_path}: not valid JSON ({exc})") from None
    audit = None
    audit_path = folder / "audit.json"
    if audit_path.exists():
        try:
            audit = json.loads(audit_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ResultsError(f"{audit_path}: not valid JSON ({exc})") from None
    return Run(
        path=folder,
        info=info,
        phase_link=_read_csv(folder / "phase_link_stats.csv", PHASE_LINK_COLUMNS),
        timeseries=_read_csv(folder / "timeseries.csv", TIMESERIES_COLUMNS),
        cpu=_read_csv(folder / "cpu.csv", CPU_COLUMNS),
        histograms=histograms,
        audit=audit,
    )
