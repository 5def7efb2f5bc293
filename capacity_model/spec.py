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
    if data is None:
        data = {}
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
