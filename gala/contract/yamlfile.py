"""Reading YAML input files so that every error can name the file, the line and the field.

The scenario, the capacity spec, the budgets file and the target's config all go through here: the text is read (a
missing or unreadable file is one clear line), composed into nodes, and turned into plain Python
while the 1-based line of every field path is recorded; pydantic then validates the plain data
and its errors become lines `FILE:LINE: field.path: expected ...`, worded one way (`describe_error`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from gala.contract.errors import InputError

Lines = dict[tuple, int]


def read_bytes(path: Path, what: str) -> bytes:
    """The file's bytes, or InputError naming the file and what it was meant to be."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such {what} file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: a directory; expected a YAML {what} file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None


def read_text(path: Path, what: str) -> str:
    """The file's text (UTF-8), or InputError naming the file and what it was meant to be."""
    try:
        return read_bytes(path, what).decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}:1: not UTF-8 text; expected a YAML {what}") from None


def field_path(loc: tuple) -> str:
    """`phases[1].users.GrabUser` from ('phases', 1, 'users', 'GrabUser')."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _plain(node: yaml.Node, path: tuple, lines: Lines, origin: str, constructor) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = constructor.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                raise InputError(f"{origin}:{line}: {field_path(path)}: expected text keys, got {key!r}")
            if key in out:
                # PyYAML keeps the last of two equal keys silently; an input file with both is a mistake
                raise InputError(f"{origin}:{line}: {field_path(path + (key,))}: duplicate key")
            lines[path + (key,)] = line  # a field's line is its key's line
            out[key] = _plain(value_node, path + (key,), lines, origin, constructor)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_plain(item, path + (i,), lines, origin, constructor) for i, item in enumerate(node.value)]
    return constructor.construct_object(node)


def parse_marked(text: str, origin: str) -> tuple[Any, Lines]:
    """YAML text → (plain data, field path → line). Syntax errors are one line with their line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        ctx, ctx_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if ctx and ctx_mark is not None and ctx_mark.line + 1 != line:
            problem += f"; {ctx} from line {ctx_mark.line + 1}"
        raise InputError(f"{origin}:{line}: not valid YAML ({problem})") from None
    if node is None:
        return None, {}
    lines: Lines = {}
    return _plain(node, (), lines, origin, yaml.constructor.SafeConstructor()), lines


def line_of(lines: Lines, loc: tuple) -> int:
    """The line of the deepest known prefix of a field path (1 when nothing is known)."""
    loc = tuple(loc)
    while loc and loc not in lines:
        loc = loc[:-1]
    return lines.get(loc, 1)


def pydantic_loc(err: dict) -> tuple:
    """A pydantic error's field path without its union/validator tags, so it matches the YAML's paths."""
    return tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))


def _submodel(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model an annotation holds directly or as dict values / list items, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _submodel(arg)
        if found is not None:
            return found
    return None


def known_fields(model: type[BaseModel] | None, loc: tuple) -> list[str]:
    """The field names `model` accepts at the place an unknown field `loc` was written."""
    current: type[BaseModel] | None = model
    for part in loc[:-1]:
        if current is None:
            return []
        if isinstance(part, str) and part in current.model_fields:
            current = _submodel(current.model_fields[part].annotation) or current
    return [info.alias or name for name, info in current.model_fields.items()] if current is not None else []


_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}


def describe_error(err: dict, model: type[BaseModel] | None = None) -> str:
    """A pydantic error said one way for every loader: what was expected, and what was found."""
    kind, ctx, got = err["type"], err.get("ctx") or {}, err.get("input")
    if kind == "missing":
        return "missing; expected this field (it is required)"
    if kind == "extra_forbidden":
        known = known_fields(model, pydantic_loc(err))
        return "unknown field; check its spelling" + (f" (expected one of: {', '.join(known)})" if known else "")
    if kind in _BOUNDS:
        bound = next(iter(ctx.values()), "")
        return f"expected a number {_BOUNDS[kind]} {bound:g}, got {got!r}" if isinstance(bound, (int, float)) \
            else f"expected a number {_BOUNDS[kind]} {bound}, got {got!r}"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"])).removeprefix("Value error, ")
    if kind in ("float_type", "float_parsing", "int_type", "int_parsing", "int_from_float", "finite_number"):
        return f"expected {'a whole number' if kind.startswith('int') else 'a number'}, got {got!r}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping, got {got!r}"
    if kind == "list_type":
        return f"expected a list, got {got!r}"
    if kind == "string_pattern_mismatch":
        return f"expected text matching {ctx.get('pattern')}, got {got!r}"
    if kind in ("string_too_short", "string_too_long", "too_short", "too_long"):
        return f"{err['msg'].removeprefix('Value error, ')[0].lower()}{err['msg'][1:]}, got {got!r}"
    if kind == "string_type":
        return f"expected text, got {got!r}"
    if kind == "literal_error":
        return f"expected {ctx.get('expected')}, got {got!r}"
    msg = err["msg"].removeprefix("Input should be ")
    return f"expected {msg[0].lower()}{msg[1:]}, got {got!r}" if msg else f"unexpected {got!r}"


def fault(origin: str, lines: Lines, loc: tuple, message: str) -> str:
    """One fault as the line every loader prints: `origin:LINE: field.path: message`."""
    return f"{origin}:{line_of(lines, loc)}: {field_path(loc)}: {message}"


def validation_faults(model: type[BaseModel], data: Any, lines: Lines, origin: str) -> tuple[BaseModel | None, list[str]]:
    """`model.model_validate(data)` and every fault as a line (misspelt keys first: they explain "missing" ones)."""
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        errs = sorted(exc.errors(), key=lambda e: e["type"] == "missing")
        return None, [fault(origin, lines, pydantic_loc(e), describe_error(e, model)) for e in errs]


def validate_marked(model: type[BaseModel], data: Any, lines: Lines, origin: str,
                    error: type[InputError] = InputError) -> BaseModel:
    """`model.model_validate(data)`, its first fault raised as `origin:LINE: field.path: expected ...`."""
    parsed, faults = validation_faults(model, data, lines, origin)
    if faults:
        raise error(faults[0])
    return parsed


def load_marked(path: Path, what: str) -> tuple[Any, Lines]:
    """Read and parse a YAML input file: (plain data, field path -> line)."""
    return parse_marked(read_text(path, what), str(path))
