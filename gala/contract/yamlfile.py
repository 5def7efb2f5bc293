"""Reading YAML input files so that every error can name the file, the line and the field.

The scenario, the capacity spec, the budgets file and the target's config all go through here: the text is read (a
missing or unreadable file is one clear line), parsed into events (libyaml's C parser where it is
installed) and built into plain Python while the 1-based line of every field path is recorded; pydantic
then validates the plain data and its errors become lines `FILE:LINE: field.path: expected ...`, worded
one way (`describe_error`).

The input is hostile until proven otherwise (docs/scenario.md, "What the reader refuses"):
- a file over `MAX_BYTES` (1 MiB), binary (a NUL byte) or not UTF-8 is refused before it is parsed,
  and one of more than `MAX_VALUES` keys and values while it is (no 1 MiB file costs a second);
- the data is built from the parser's event stream without recursion, and nesting deeper than
  `MAX_DEPTH` is refused (no RecursionError, no C stack to overflow);
- an alias may repeat an anchored value, but all aliases together may add at most `MAX_ALIAS_VALUES`
  values (a "billion laughs" file is refused after a few hundred events, in microseconds);
- every explicit tag (`!!float x`, `!!python/object …`, `!custom`) and merge keys (`<<: *base`) are
  refused with their line: input files hold plain mappings, lists and scalars;
- scalars resolve as YAML 1.1 does (yes/no are booleans, 0x1f is a number) except that sexagesimal
  `12:30:00` and dates stay text (no silent 45000, no datetime), and `1e40` is a number (YAML 1.2).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from gala.contract.errors import InputError

Lines = dict[tuple, int]

MAX_BYTES = 1 << 20          # 1 MiB: the largest input file (the default scenario is ~6 KB)
MAX_DEPTH = 64               # mappings/lists inside each other (the default files nest 6 deep)
MAX_ALIAS_VALUES = 10_000    # values that aliases may add in all (each alias adds its anchor's size)
MAX_VALUES = 50_000          # values in one file (the default scenario holds ~150): bounds time and memory

# libyaml's parser where PyYAML was built with it (fast, and its memory stays near the file's size)
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Resolver(yaml.resolver.BaseResolver):
    """YAML 1.1's implicit types without sexagesimal numbers, dates, `=` and `<<` (merge keys)."""


_Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$"),
    list("yYnNtTfFoO"))
_Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))
_Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"""^(?:[-+]?0b[0-1_]+
                   |[-+]?0[0-7_]+
                   |[-+]?(?:0|[1-9][0-9_]*)
                   |[-+]?0x[0-9a-fA-F_]+)$""", re.X),
    list("-+0123456789"))
_Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])

_RESOLVER = _Resolver()
_STR = "tag:yaml.org,2002:str"
_CONSTRUCTOR = yaml.constructor.SafeConstructor()


def _too_big(path: Any, size: int, what: str, kind: str = "YAML") -> InputError:
    return InputError(f"{path}: {size:,} bytes or more; expected a {kind} {what} file of at most "
                      f"{MAX_BYTES:,} bytes (1 MiB)")


def shown_path(path: Path) -> str:
    """A file as a person gave it: relative to the working directory when inside it (shorter lines)."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def read_bytes(path: Path, what: str, kind: str = "YAML") -> bytes:
    """The file's bytes, or InputError naming the file and what it was meant to be (missing, a
    directory, unreadable, over `MAX_BYTES`, or binary). `kind` names its format in the messages
    (the feeder CSVs are read through here too)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)  # never more: /dev/zero or a 10 GB file costs 1 MiB
    except FileNotFoundError:
        raise InputError(f"{path}: no such {what} file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: a directory; expected a {kind} {what} file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    if len(data) > MAX_BYTES:
        raise _too_big(path, len(data), what, kind)
    if b"\x00" in data:
        line = data[:data.index(b"\x00")].count(b"\n") + 1
        raise InputError(f"{path}:{line}: a NUL byte (a binary file?); expected a {kind} {what} (UTF-8 text)")
    return data


def read_text(path: Path, what: str, kind: str = "YAML") -> str:
    """The file's text (UTF-8), or InputError naming the file and what it was meant to be."""
    data = read_bytes(path, what, kind)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: not UTF-8 text; expected a {kind} {what}") from None


def field_path(loc: tuple) -> str:
    """`phases[1].users.GrabUser` from ('phases', 1, 'users', 'GrabUser')."""
    out = ""
    for part in loc:
        if isinstance(part, str) and not (part.isprintable() and part.strip() == part and part):
            part = repr(part)  # a key of spaces, newlines or control characters: shown, and on one line
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _syntax_error(exc: yaml.YAMLError, text: str, origin: str) -> InputError:
    """A parser's or reader's error as one line with its line number."""
    if isinstance(exc, yaml.reader.ReaderError):  # a control character, or a code point YAML refuses
        line = text[:exc.position].count("\n") + 1 if isinstance(exc.position, int) else 1
        char = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
        return InputError(f"{origin}:{line}: not valid YAML (character {char} is not allowed in YAML text)")
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark else 1
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    ctx, ctx_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if ctx and ctx_mark is not None and ctx_mark.line + 1 != line:
        problem += f"; {ctx} from line {ctx_mark.line + 1}"
    return InputError(f"{origin}:{line}: not valid YAML ({problem})")


def _scalar(event: yaml.ScalarEvent, origin: str, line: int, path: tuple) -> Any:
    tag = _RESOLVER.resolve(yaml.ScalarNode, event.value, event.implicit)
    if tag != _STR:  # bool, int, float, null: PyYAML's own constructors
        try:
            return _CONSTRUCTOR.yaml_constructors[tag](_CONSTRUCTOR, yaml.ScalarNode(tag, event.value))
        except (ValueError, OverflowError, yaml.YAMLError):  # e.g. an int of 5,000 digits
            raise InputError(f"{origin}:{line}: {field_path(path)}: {event.value[:40]!r}… is not a number "
                             "this reader can hold; expected a number of at most 4,300 digits") from None
    try:
        event.value.encode("utf-8")
    except UnicodeEncodeError:  # "\ud800": a lone surrogate cannot be written out again (plan.json, CSV)
        raise InputError(f"{origin}:{line}: {field_path(path)}: a lone surrogate escape (\\ud800-\\udfff); "
                         "expected text of whole Unicode characters") from None
    return event.value


class _Builder:
    """Plain data from a stream of parser events, iteratively, with every guard of the module docstring."""

    def __init__(self, origin: str):
        self.origin = origin
        self.lines: Lines = {}
        self.stack: list[list] = []       # [container, path, pending key or _NO_KEY, anchor, size]
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.alias_values = 0
        self.values = 0
        self.root: Any = None
        self.documents = 0

    def where(self, event) -> str:
        return f"{self.origin}:{event.start_mark.line + 1}"

    def _refuse_tag(self, event, path: tuple, what: str) -> None:
        if event.tag is not None:  # `!`, `!!str`, `!!python/object/apply:…`: nothing but plain data
            raise InputError(f"{self.where(event)}: {field_path(path)}: explicit tag {event.tag!r} on a {what}; "
                             "expected plain YAML without tags (remove it)")

    def _next_path(self, event) -> tuple:
        """The field path of the value this event starts (a mapping's value, or a list's next item)."""
        if not self.stack:
            return ()
        frame = self.stack[-1]
        container, path = frame[0], frame[1]
        if isinstance(container, list):
            item = path + (len(container),)
            self.lines.setdefault(item, event.start_mark.line + 1)
            return item
        return path if frame[2] is _NO_KEY else path + (frame[2],)  # a key's path is its mapping's

    def _add(self, value: Any, size: int, event, anchor: str | None) -> None:
        """Put a finished value (scalar, alias or collection) where it belongs."""
        self.values += 1
        if self.values > MAX_VALUES:
            raise InputError(f"{self.where(event)}: more than {MAX_VALUES:,} keys and values in one file; "
                             "expected an input file of a sane size")
        if anchor is not None:
            self.anchors[anchor] = (value, size)
        if not self.stack:
            self.root = value
            return
        frame = self.stack[-1]
        frame[4] += size
        container = frame[0]
        if isinstance(container, list):
            container.append(value)
            return
        if frame[2] is _NO_KEY:  # this value is a key
            path = frame[1]
            if not isinstance(value, str):
                raise InputError(f"{self.where(event)}: {field_path(path)}: expected text keys, got {value!r}")
            if value in container:
                # PyYAML keeps the last of two equal keys silently; an input file with both is a mistake
                raise InputError(f"{self.where(event)}: {field_path(path + (value,))}: duplicate key")
            self.lines[path + (value,)] = event.start_mark.line + 1  # a field's line is its key's line
            frame[2] = value
            frame[4] -= size  # a key is not a value
        else:
            container[frame[2]] = value
            frame[2] = _NO_KEY

    def event(self, event) -> None:
        if isinstance(event, yaml.ScalarEvent):
            path = self._next_path(event)
            key = bool(self.stack) and isinstance(self.stack[-1][0], dict) and self.stack[-1][2] is _NO_KEY
            self._refuse_tag(event, path, "key" if key else "value")
            if key and event.value == "<<" and event.implicit[0]:
                raise InputError(f"{self.where(event)}: {field_path(path)}: a merge key (<<); expected the "
                                 "fields written out (merge keys are not supported)")
            if not self.stack:
                self.lines.setdefault((), event.start_mark.line + 1)
            self._add(_scalar(event, self.origin, event.start_mark.line + 1, path), 1, event, event.anchor)
        elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            path = self._next_path(event)
            if self.stack and isinstance(self.stack[-1][0], dict) and self.stack[-1][2] is _NO_KEY:
                raise InputError(f"{self.where(event)}: {field_path(path)}: expected text keys, got a "
                                 "mapping or list as a key")
            mapping = isinstance(event, yaml.MappingStartEvent)
            self._refuse_tag(event, path, "mapping" if mapping else "list")
            if len(self.stack) >= MAX_DEPTH:
                raise InputError(f"{self.where(event)}: {field_path(path[:3])}…: nested more than {MAX_DEPTH} "
                                 "levels deep; expected a shallower file")
            self.lines.setdefault(path, event.start_mark.line + 1)
            self.stack.append([{} if mapping else [], path, _NO_KEY, event.anchor, 1])
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            container, _, _, anchor, size = self.stack.pop()
            self._add(container, size, event, anchor)
        elif isinstance(event, yaml.AliasEvent):
            path = self._next_path(event)
            if event.anchor not in self.anchors:  # also an alias inside its own anchor (a cycle)
                raise InputError(f"{self.where(event)}: {field_path(path)}: alias *{event.anchor} names no "
                                 "anchor defined before it; expected &name on an earlier, complete value")
            value, size = self.anchors[event.anchor]
            self.alias_values += size
            if self.alias_values > MAX_ALIAS_VALUES:
                raise InputError(f"{self.where(event)}: {field_path(path)}: aliases expand to more than "
                                 f"{MAX_ALIAS_VALUES:,} values; expected a file without alias bombs "
                                 "(write the values out)")
            self._add(copy.deepcopy(value) if size > 1 else value, size, event, None)
        elif isinstance(event, yaml.DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                raise InputError(f"{self.where(event)}: a second YAML document (---); expected one document")


_NO_KEY = object()


def parse_marked(text: str, origin: str) -> tuple[Any, Lines]:
    """YAML text → (plain data, field path → line). Every refusal is one line with its line number."""
    if len(text) > MAX_BYTES:
        raise _too_big(origin, len(text), "input")
    builder = _Builder(origin)
    loader = _Loader(text)
    try:
        while loader.check_event():
            builder.event(loader.get_event())
    except yaml.YAMLError as exc:
        raise _syntax_error(exc, text, origin) from None
    except (UnicodeError, ValueError) as exc:  # libyaml on text it cannot encode back (a lone surrogate)
        raise InputError(f"{origin}:1: not valid YAML text ({exc.__class__.__name__}); expected UTF-8 text") from None
    finally:
        loader.dispose()
    return builder.root, builder.lines


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
    if kind == "finite_number":
        return f"expected a finite number (not .inf or .nan), got {got!r}"
    if kind == "int_parsing_size":
        return f"expected a whole number of a sane size (see the field's range), got {got!r}"
    if kind in ("float_type", "float_parsing", "int_type", "int_parsing", "int_from_float"):
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
