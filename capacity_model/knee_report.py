"""A knee search's folder: `knee.json` (the `KneeSearch` contract) and `knee.md` (the same for people),
written atomically, and read back for `gala plan --validate`."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from capacity_model.contracts.knee import KneeSearch, MixKnee
from gala.contract.atomic import write_text_atomic
from gala.contract.errors import InputError
from gala.contract.yamlfile import describe_error, field_path, pydantic_loc

KNEE_FILE = "knee.json"


def is_knee_search(folder: Path) -> bool:
    return (Path(folder) / KNEE_FILE).is_file()


def blind_step_runs(folder: Path, search: KneeSearch) -> list[Path]:
    """The step runs a plan reads from a knee search that could not read the target's CPU (the black-box
    probe: its steps are step-load runs); none when the search measured the CPU."""
    if any(st.target_cpu_cores is not None for k in search.mixes for st in k.steps):
        return []
    return [Path(folder) / "steps" / st.run_id for k in search.mixes for st in k.steps]


def load_knee(folder: Path) -> KneeSearch:
    path = Path(folder) / KNEE_FILE
    try:
        return KneeSearch.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise InputError(f"{folder}: no {KNEE_FILE}; expected a knee search folder (gala probe)") from None
    except ValidationError as exc:  # (a ValueError too: caught first)
        err = exc.errors()[0]
        raise InputError(f"{path}: {field_path(pydantic_loc(err))}: {describe_error(err, KneeSearch)}") from None
    except ValueError as exc:
        raise InputError(f"{path}: not a knee search: not valid JSON ({exc})") from None


def _f(x: float | None, fmt: str = ".0f", none: str = "—") -> str:
    return none if x is None else format(x, fmt)


def mix_table(k: MixKnee) -> list[str]:
    links = list(k.fractions)
    head = ["step", "offered req/s", "carried req/s", "target cores", "utilization", "CPU-ms/req",
            *[f"{l} latency ms" for l in links], "generator %", "verdict"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in sorted(k.steps, key=lambda s: s.intended_rps):
        rows.append("| " + " | ".join([
            str(s.index), _f(s.intended_rps), _f(s.achieved_rps), _f(s.target_cpu_cores, ".3f"),
            _f(s.utilization, ".0%"), _f(s.cpu_ms_per_request, ".3f"),
            *[_f(s.link_latency_ms.get(l)) for l in links], _f(s.generator_cpu_percent),
            ("broken: " + ", ".join(s.broken_links)) if s.broken_links else
            ("collapsed: carried < 90% of offered" if s.achieved_ratio < 0.9 and (s.utilization or 0) >= 0.93
             else "within"),
        ]) + " |")
    return rows


def knee_markdown(search: KneeSearch) -> str:
    node = f"{search.node_cores:g} core(s)" if search.node_cores else "cores unknown"
    out = [f"# Knee search {search.search_id}", "",
           f"Scenario `{search.scenario}`, target {search.target}"
           + (f" held to {search.cpu_limit_cores:g} core(s)" if search.cpu_limit_cores else "")
           + f"; node = {node}; ceiling {search.ceiling:.0%}; {search.wall_s:.0f} s"
           + (f"; speed reference {search.speed_units_per_cpu_s:,.0f} units per CPU-second"
              if search.speed_units_per_cpu_s else "") + ".", ""]
    if search.stopped:
        out += [f"**Stopped early: {search.stopped}.**", ""]
    out += ["| mix | req/s per node at the ceiling | within budget | at saturation | CPU-ms/req at the ceiling | stopped |",
            "|---|---:|---:|---:|---:|---|"]
    for k in search.mixes:
        out.append(f"| {k.mix} | {_f(k.rps_at_ceiling)} | {'≥ ' if k.budget_lower_bound else ''}{_f(k.rps_at_budget)} "
                   f"| {_f(k.rps_at_saturation)} | {_f(k.cpu_ms_at_ceiling, '.3f')} | {k.stop_reason} |")
    for k in search.mixes:
        out += ["", f"## {k.mix}", "", "Mix: " + ", ".join(f"{l} {f:.0%}" for l, f in k.fractions.items()) + ".", ""]
        if k.note:
            out += [k.note + ".", ""]
        out += mix_table(k)
    return "\n".join(out) + "\n"


def write_knee(folder: Path, search: KneeSearch) -> None:
    write_text_atomic(Path(folder) / "knee.md", knee_markdown(search))
    write_text_atomic(Path(folder) / KNEE_FILE, search.model_dump_json(indent=2))  # last: the folder is whole
