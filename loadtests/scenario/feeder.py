"""CSV feeders: request data for declarative users, read as hostile input like every other input file.

`feeder: {csv: FILE}` names a CSV (relative to the scenario) whose header row names the columns that
`{{column}}` placeholders take. `read_feeder` is the one reader: `gala check` and `gala run` call it
(through `feeder_faults`) before any load, and every Locust process calls it again to get the rows.
It refuses, one line `FILE:LINE: what was expected` each (docs/scenario.md, "A CSV feeder"):
- a file over 1 MiB, a NUL byte, text that is not UTF-8 (the YAML reader's `read_text`, same limits);
- more than `MAX_FEEDER_ROWS` data rows or `MAX_FEEDER_COLUMNS` columns, so that no feeder costs a
  Locust process more than a few tens of MB or `gala check` more than a fraction of a second;
- an empty file, a header without data rows, a header with an unnamed or repeated column, a row whose
  field count differs from the header's (a ragged row), and text the csv module cannot split.
"""

from __future__ import annotations

import csv
import io
import re
import stat
from pathlib import Path

from gala.contract.errors import InputError
from gala.contract.yamlfile import fault, read_text, shown_path
from loadtests.scenario.model import Scenario, UserSpec

FEEDER_FIELD = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
MAX_FEEDER_ROWS = 100_000    # data rows (a 1 MiB file of one short column holds ~150,000)
MAX_FEEDER_COLUMNS = 100     # columns of the header row


def feeder_path(sc: Scenario, uname: str) -> Path:
    """A user's feeder CSV, relative to the scenario file."""
    path = Path(sc.users[uname].feeder.csv)
    return path if path.is_absolute() or sc.source_path is None else sc.source_path.parent / path


def _name(text: str, most: int = 40) -> str:
    """A name from the file, safe on one line: quoted when it holds a line break or a control character,
    cut when long (a header cell may be 128 KiB)."""
    text = text if text.isprintable() else repr(text)
    return text if len(text) <= most else text[:most] + "..."


def _names(columns: list[str], most: int = 10) -> str:
    shown = ", ".join(_name(c) for c in columns[:most])
    return shown + (f", ... ({len(columns)} in all)" if len(columns) > most else "")


def _not_a_file(path: Path) -> str | None:
    """Why `path` cannot be read as a feeder before it is opened (a pipe would block the reader, a device
    never end), or None for a regular file."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return f"no such file {_name(shown_path(path), 200)}; expected a CSV file (a relative name is relative to " \
               "the scenario's folder)"
    except (OSError, ValueError) as exc:  # a name too long, a NUL in it, no permission on a folder
        return f"cannot use {_name(shown_path(path), 200)} ({getattr(exc, 'strerror', None) or exc}); expected a CSV file"
    if stat.S_ISDIR(mode):
        return f"{_name(shown_path(path), 200)} is a directory; expected a CSV file"
    if not stat.S_ISREG(mode):
        return f"{_name(shown_path(path), 200)} is not a regular file (a pipe or a device); expected a CSV file"
    return None


def _header(fields: list[str], where: str) -> list[str]:
    """The header row's column names, refused when they cannot name every field once."""
    if len(fields) > MAX_FEEDER_COLUMNS:
        raise InputError(f"{where}: {len(fields)} columns; expected at most {MAX_FEEDER_COLUMNS}")
    seen: set[str] = set()
    for i, name in enumerate(fields, 1):
        if not name.strip():
            raise InputError(f"{where}: column {i} of the header row has no name; expected a name for every column")
        if name in seen:
            raise InputError(f"{where}: column {_name(repr(name))} twice in the header row; expected unique column "
                             "names")
        seen.add(name)
    return fields


def read_feeder(path: Path) -> list[dict[str, str]]:
    """The rows of a feeder CSV (header row = column names); InputError `FILE:LINE: ...` when it cannot be used."""
    shown = shown_path(path)
    text = read_text(Path(shown), "feeder", "CSV")
    text = text.removeprefix("\ufeff")  # the byte-order mark spreadsheets write is not part of the first name
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    rows: list[dict[str, str]] = []
    line = 1
    try:
        for fields in reader:
            where, line = f"{shown}:{line}", reader.line_num + 1  # a quoted field may span lines: its first
            if not fields:
                continue  # a blank line
            if header is None:
                header = _header(fields, where)
            elif len(fields) != len(header):
                raise InputError(f"{where}: {len(fields)} field(s); expected {len(header)}, one per column of the "
                                 f"header row ({_names(header)})")
            elif len(rows) == MAX_FEEDER_ROWS:
                raise InputError(f"{where}: more than {MAX_FEEDER_ROWS:,} data rows; expected at most "
                                 f"{MAX_FEEDER_ROWS:,} (a feeder cycles through its rows)")
            else:
                rows.append(dict(zip(header, fields)))
    except csv.Error as exc:
        raise InputError(f"{shown}:{reader.line_num}: not CSV ({exc}); expected comma-separated fields, quoted "
                         "with \" when they hold a comma, a quote or a line break") from None
    if header is None:
        raise InputError(f"{shown}:1: empty; expected a header row naming the columns, then at least one data row")
    if not rows:
        raise InputError(f"{shown}:{line}: a header row but no data row; expected at least one data row")
    return rows


def columns_used(u: UserSpec) -> set[str]:
    """The `{{column}}` names a declarative user's requests use (path, JSON body, headers)."""
    return {m.group(1) for r in u.requests or [] for m in FEEDER_FIELD.finditer(
        r.path + repr(r.json_body) + repr(r.headers))}


def feeder_faults(sc: Scenario, origin: str) -> list[str]:
    """Every feeder fault, one line each: in the scenario (`origin:LINE: users.U.feeder.csv: ...`) when it
    names no usable file or a column the CSV lacks; in the CSV (`FILE:LINE: ...`) when its text is at fault."""
    faults: list[str] = []
    for uname, u in sc.users.items():
        used = columns_used(u)
        if u.feeder is None:
            if used:
                faults.append(fault(origin, sc.lines, ("users", uname, "requests"), (
                    f"uses {{{{{sorted(used)[0]}}}}} but the user has no feeder; expected feeder: {{csv: FILE}} "
                    "naming the CSV whose column fills it")))
            continue
        loc = ("users", uname, "feeder", "csv")
        path = feeder_path(sc, uname)
        problem = _not_a_file(path)
        if problem:
            faults.append(fault(origin, sc.lines, loc, problem))
            continue
        try:
            rows = read_feeder(path)
        except InputError as exc:
            faults.append(str(exc))
            continue
        missing = sorted(used - set(rows[0]))
        if missing:
            faults.append(fault(origin, sc.lines, loc, f"no column {', '.join(missing)} in {shown_path(path)}; "
                                                       f"its columns: {_names(list(rows[0]))}"))
    return list(dict.fromkeys(faults))  # two users sharing a faulty CSV: said once
