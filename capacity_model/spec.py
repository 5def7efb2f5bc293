"""Reading a capacity spec (YAML) into a `CapacitySpec`, with errors that name the file, line and field.

`load_spec(None)` reads the default, `capacity_model/specs/gala-2016.yaml`. Errors are one line:
`FILE:LINE: field.path: expected ...` (line numbers from `yaml.compose` node marks), raised as
`gala.contract.errors.InputError`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from capacity_model.contracts import CapacitySpec
from gala.contract.errors import InputError
from gala.contract.yamlfile import parse_marked, read_text, validate_marked

DEFAULT_SPEC = Path(__file__).resolve().parent / "specs" / "gala-2016.yaml"


def _fields_at(loc: tuple) -> list[str]:
    """The field names a spec accepts at `loc` (for "unknown field" errors)."""
    model = CapacitySpec
    for part in loc[:-1]:
        info = getattr(model, "model_fields", {}).get(part)
        ann = getattr(info, "annotation", None)
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        model = ann
    return list(getattr(model, "model_fields", {}))


def _expected(err: dict, loc: tuple) -> str:
    """Pydantic's error, phrased as `expected ...`."""
    kind, ctx, msg = err["type"], err.get("ctx") or {}, err["msg"]
    if kind == "missing":
        return "expected this field (it is required)"
    if kind == "extra_forbidden":
        known = _fields_at(loc)
        return "unknown field" + (f"; expected one of: {', '.join(known)}" if known else "")
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        op = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}[kind]
        return f"expected a number {op} {next(iter(ctx.values()), '')}, got {err.get('input')!r}"
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    text = msg.removeprefix("Input should be ")
    return f"expected {text}, got {err.get('input')!r}"


def parse_spec(text: str, origin: str = "<spec>") -> CapacitySpec:
    """Validate a spec given as YAML text; `origin` names it in errors."""
    data, lines = parse_marked(text, origin)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(f"{origin}:{lines.get((), 1)}: expected a mapping of spec fields, got {type(data).__name__}")
    spec = validate_marked(CapacitySpec, data, lines, origin, _expected)
    spec._origin = origin
    spec._lines = lines
    return spec


def load_spec(path: str | Path | None = None) -> CapacitySpec:
    """Read a capacity spec file (None: the default gala-2016 spec)."""
    path = Path(path) if path is not None else DEFAULT_SPEC
    text = read_text(path, "capacity spec")
    return parse_spec(text, str(path))
