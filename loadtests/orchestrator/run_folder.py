"""A run's results folder on the writing side: its id, its creation, and `run.json` (first as
"running", last and atomically as what happened). The format is results/README.md's."""

from __future__ import annotations

import json
import os
import platform
import secrets
import shutil
import socket
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from gala.contract.atomic import write_json_atomic
from gala.contract.results import RunInfo
from loadtests.target.launch import redact


def iso_utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def new_run_id(scenario_name: str, now: float) -> str:
    stamp = datetime.fromtimestamp(now, tz=timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{scenario_name}-{secrets.token_hex(3)}"


def create_run_dir(parent: Path, scenario_name: str, scenario_path: Path, now: float) -> Path:
    """Make `parent/<run-id>/` (never reusing one) with the scenario copied byte for byte."""
    parent.mkdir(parents=True, exist_ok=True)
    while True:
        run_dir = parent / new_run_id(scenario_name, now)
        try:
            run_dir.mkdir()
            break
        except FileExistsError:
            continue
    shutil.copyfile(scenario_path, run_dir / "scenario.yaml")
    return run_dir


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return ""


def versions() -> dict[str, str]:
    # read from package metadata: importing locust here would bring gevent into the gala process
    return {
        "gala": package_version("gala"),
        "python": platform.python_version(),
        "locust": package_version("locust"),
        "psutil": package_version("psutil"),
        "platform": platform.platform(),
    }


def read_json(path: Path) -> dict | None:
    """A JSON file another process writes, or None while it is absent or being replaced."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def merge_phases(planned: list, actual: dict | None) -> list[dict[str, Any]]:
    """The scenario's planned phases with the times they really ran (phases.json), by name."""
    ran = {p.get("name"): p for p in (actual or {}).get("phases", []) if isinstance(p, dict)}
    out = []
    for plan in planned:
        got = ran.get(plan.name, {})
        out.append({
            "name": plan.name,
            "planned_start_s": round(plan.start_s, 3),
            "planned_end_s": round(plan.end_s, 3),
            "started_s": got.get("started_s"),
            "ended_s": got.get("ended_s"),
            "intended_rps": dict(plan.intended_rps),
        })
    return out


def write_run_json(run_dir: Path, info: dict[str, Any]) -> RunInfo:
    """Validate against the contract's model, then write atomically: readers never see half a file."""
    model = RunInfo.model_validate(info)
    write_json_atomic(run_dir / "run.json", model.model_dump(mode="json"))
    return model


def target_record(opts, sc, url: str | None, builtin: bool, limit=None) -> dict[str, Any]:
    """run.json's `target`: what was measured, how it was started, and the CPU limit it ran under."""
    return {
        "url": url or "builtin", "builtin": builtin, "pids": opts.target_pids,
        "nodes": opts.target_nodes, "processes": max(1, len(opts.target_pids)),
        "injected_faults": [*sc.target.inject, *opts.inject] if builtin else [],
        **({"store": redact(opts.target_store), "target_processes": opts.target_processes}
           if builtin and opts.target_store else {}),
        **({"cores_per_node": opts.target_cores_per_node} if opts.target_cores_per_node is not None else {}),
        **(limit.as_run_json() if limit is not None else {}),
    }


def machine_record(speed_start, speed_end) -> dict[str, Any]:
    """run.json's `machine`: the host and its speed reference at the run's start and end."""
    return {"hostname": socket.gethostname(), "cpus": os.cpu_count(),
            "cpu_model": speed_start.cpu_model if speed_start else "",
            "speed_ref_start": speed_start.as_run_json() if speed_start else None,
            "speed_ref_end": speed_end.as_run_json() if speed_end else None}


def scenario_record(sc, opts, shown_path: str) -> dict[str, Any]:
    """run.json's `scenario`: which file, its hash and seed, and how the command line scaled it."""
    return {"name": sc.name, "path": shown_path, "sha256": sc.sha256, "seed": sc.seed,
            **({"users_scale": sc.users_scale} if sc.users_scale != 1 else {}),
            **({"spawn_rate": opts.spawn_rate} if opts.spawn_rate else {}),
            **({"run_time_s": opts.run_time_s} if opts.run_time_s else {})}


def generator_record(opts, mode: str) -> dict[str, Any]:
    """run.json's `generator` as known before the load (its CPU and exit code are added after)."""
    return {"mode": mode, "processes": 1 + opts.workers + opts.remote_workers,
            "workers": opts.workers or opts.remote_workers,
            "locust_version": versions()["locust"], "hostname": socket.gethostname()}
