"""Reading a capacity spec (YAML) into a `CapacitySpec`, with errors that name the file, line and field.

`load_spec(None)` reads the default, `capacity_model/specs/gala-2016.yaml`. Errors are one line:
`FILE:LINE: field.path: expected ...` (line numbers from `yaml.compose` node marks), raised as
`gala.contract.errors.InputError`.
"""

from __future__ import annotations

from pathlib import Path

from capacity_model.contracts import CapacitySpec
from gala.contract.errors import InputError
from gala.contract.yamlfile import parse_marked, read_text, validate_marked

DEFAULT_SPEC = Path(__file__).resolve().parent / "specs" / "gala-2016.yaml"


def parse_spec(text: str, origin: str = "<spec>") -> CapacitySpec:
    """Validate a spec given as YAML text; `origin` names it in errors."""
    data, lines = parse_marked(text, origin)
    if data is None:  # an empty file is a mistake (a wrong path, a truncated copy), not "all defaults"
        raise InputError(f"{origin}:1: (top level): the file is empty; expected a mapping of spec fields "
                         "(see capacity_model/specs/gala-2016.yaml; write `{}` for every default)")
    if not isinstance(data, dict):
        raise InputError(f"{origin}:{lines.get((), 1)}: expected a mapping of spec fields, got {type(data).__name__}")
    spec = validate_marked(CapacitySpec, data, lines, origin)
    spec._origin = origin
    spec._lines = lines
    return spec


def load_spec(path: str | Path | None = None) -> CapacitySpec:
    """Read a capacity spec file (None: the default gala-2016 spec)."""
    path = Path(path) if path is not None else DEFAULT_SPEC
    text = read_text(path, "capacity spec")
    return parse_spec(text, str(path))


def spec_findings(spec: CapacitySpec, links: list[str], critical_links: list[str],
                  phases: list[str]) -> tuple[list[str], list[str]]:
    """Hold a spec against a scenario before any load: (faults that would stop the plan, notes).

    Faults: planned `links` or `grab_only.phases` the scenario does not have (the plan would refuse
    them after the run), and a `grab_only.link` it does not have, written in a spec other than the default. Notes: budgets and priorities for links the scenario lacks (unused), and
    planned links without a latency budget (sized on utilization alone).
    """
    faults, notes = [], []
    known = ", ".join(links)
    for i, link in enumerate(spec.links or []):
        if link not in links:
            faults.append(f"{spec.where('links', i)}: unknown link {link!r}; expected one of {known}")
    for i, phase in enumerate(spec.grab_only.phases or []):
        if phase not in phases:
            faults.append(f"{spec.where('grab_only', 'phases', i)}: unknown phase {phase!r}; "
                          f"expected one of {', '.join(phases)}")
    unused = [link for link in [*spec.latency_budgets, *spec.priorities] if link not in links]
    if unused:
        notes.append(f"{spec.where('latency_budgets')}: budgets for {', '.join(dict.fromkeys(unused))} are not "
                     f"used: the scenario has no such link ({known})")
    planned = spec.links or critical_links
    no_budget = [link for link in planned if link in links and link not in spec.latency_budgets]
    if no_budget:
        notes.append(f"{spec.where('latency_budgets')}: no latency budget for {', '.join(no_budget)}: sized on "
                     "the utilization ceiling alone")
    written = "link" in spec.grab_only.model_fields_set and spec._origin != str(DEFAULT_SPEC)
    if written and spec.grab_only.link not in links:
        # written in a spec of one's own, so meant: a what-if about a link the scenario lacks cannot be made
        faults.append(f"{spec.where('grab_only', 'link')}: unknown link {spec.grab_only.link!r}; expected one of {known}")
    elif spec.grab_only.link not in links and not spec.grab_only.declared:
        notes.append(f"{spec.where('grab_only', 'link')}: the scenario has no {spec.grab_only.link!r} link; "
                     "the what-if plans the first planned link alone instead")
    return faults, notes
