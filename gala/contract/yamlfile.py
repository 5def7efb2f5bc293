"""Reading YAML input files so that every error can name the file, the line and the field.

The scenario, the capacity spec and the budgets file all go through here: the text is read (a
missing or unreadable file is one clear line), composed into nodes, and turned into plain Python
while the 1-based line of every field path is recorded; pydantic then validates the plain data
and the loader turns its error's path back into a line with `line_of`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import yaml
from pydantic import BaseModel, ValidationError

from gala.contract.errors import InputError

Lines = dict[tuple, int]


def read_text(path: Path, what: str) -> str:
    """The file's text, or InputError naming the file and what it was meant to be."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such {what} file") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}:1: not UTF-8 text; expected a YAML {what}") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None


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


def validate_marked(model: type[BaseModel], data: Any, lines: Lines, origin: str,
                    describe: Callable[[dict, tuple], str], error: type[InputError] = InputError) -> BaseModel:
    """`model.model_validate(data)`, its first fault raised as `origin:LINE: field.path: <describe(err, loc)>`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # a misspelt key explains a "missing" one, so say it first
        err = sorted(exc.errors(), key=lambda e: e["type"] == "missing")[0]
        loc = pydantic_loc(err)
        raise error(f"{origin}:{line_of(lines, loc)}: {field_path(loc)}: {describe(err, loc)}") from None
