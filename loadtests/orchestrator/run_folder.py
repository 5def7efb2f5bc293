"""A run's results folder on the writing side: its id, its creation, and `run.json` (first as
"running", last and atomically as what happened). The format is results/README.md's."""

from __future__ import annotations

import json
import platform
import secrets
import shutil
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from gala.contract.atomic import write_json_atomic
from gala.contract.results import RunInfo


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
