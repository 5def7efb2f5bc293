"""CSV feeders as hostile input: real files through the real `gala check` (a subprocess), each fault one
line `FILE:LINE: what was expected` on stderr, exit 2, no traceback; the largest allowed feeder passes,
and `gala run` refuses a bad one before it creates a results folder. No load is sent here."""

from __future__ import annotations

import os
import re
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import gala
from gala.contract.errors import InputError
from gala.contract.yamlfile import MAX_BYTES
from loadtests.scenario.feeder import MAX_FEEDER_COLUMNS, MAX_FEEDER_ROWS, read_feeder

SCENARIO = """\
name: fed
links: {pages: {}}
users:
  Reader:
    feeder: {csv: pages.csv}
    requests:
      - {method: GET, path: "/{{page}}", link: pages, headers: {X-Who: "{{who}}"}}
phases:
  - {name: one, duration_s: 10, users: {Reader: 2}}
"""
FEEDER_LINE = 5  # the scenario's `feeder:` line


def check(tmp_path: Path, csv: bytes, scenario: str = SCENARIO):
    (tmp_path / "pages.csv").write_bytes(csv)
    path = tmp_path / "s.yaml"
    path.write_text(scenario, encoding="utf-8")
    return gala("check", str(path), "--quiet", timeout_s=60)


def one_fault(proc) -> str:
    """Exit 2, no traceback, and exactly one fault line (the count line aside)."""
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    faults = [line for line in proc.stderr.splitlines() if "fault(s)" not in line]
    assert len(faults) == 1, proc.stderr
    return faults[0].removeprefix("gala check: ")


def test_a_good_feeder_passes(tmp_path):
    proc = check(tmp_path, b"page,who\n/a,alice\n/b,bob\n")
    assert proc.returncode == 0, proc.stderr


def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path):
    # spreadsheets write one; without this the first column would be "\ufeffpage" and {{page}} missing
    proc = check(tmp_path, b"\xef\xbb\xbfpage,who\r\n/a,alice\r\n")
    assert proc.returncode == 0, proc.stderr


CASES = {
    # name: (CSV bytes, line of the fault in the CSV, what the line says)
    "empty": (b"", 1, "empty; expected a header row naming the columns, then at least one data row"),
    "blank lines only": (b"\n\n", 1, "empty; expected a header row"),
    "header only": (b"page,who\n", 2, "a header row but no data row; expected at least one data row"),
    "ragged short row": (b"page,who\n/a,alice\n/b\n", 3, "1 field(s); expected 2, one per column of the header "
                                                         "row (page, who)"),
    "ragged long row": (b"page,who\n/a,alice,extra\n", 2, "3 field(s); expected 2"),
    "NUL byte": (b"page,who\n/a,al\x00ice\n", 2, "a NUL byte (a binary file?); expected a CSV feeder (UTF-8 text)"),
    "not UTF-8": (b"page,who\n/a,alice\n/b,b\xe9b\n", 3, "not UTF-8 text; expected a CSV feeder"),
    "repeated column": (b"page,who,page\n/a,b,c\n", 1, "column 'page' twice in the header row; expected unique"),
    "unnamed column": (b"page,,who\n/a,b,c\n", 1, "column 2 of the header row has no name; expected a name"),
    "bad quoting": (b'page,who\n"/a"x,alice\n', 2, "not CSV ("),
    "a field over the csv module's limit": (b"page,who\n/a," + b"x" * 200_000 + b"\n", 2, "not CSV (field larger"),
    "too many columns": ((",".join(f"c{i}" for i in range(MAX_FEEDER_COLUMNS + 1)) + "\n").encode()
                         + b"x" * MAX_FEEDER_COLUMNS + b"\n", 1,
                         f"{MAX_FEEDER_COLUMNS + 1} columns; expected at most {MAX_FEEDER_COLUMNS}"),
    "too many rows": (b"page,who\n" + b"a,b\n" * (MAX_FEEDER_ROWS + 1), MAX_FEEDER_ROWS + 2,
                      f"more than {MAX_FEEDER_ROWS:,} data rows; expected at most {MAX_FEEDER_ROWS:,}"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_hostile_feeder_is_one_line_in_the_csv(tmp_path, case):
    data, line, expected = CASES[case]
    fault = one_fault(check(tmp_path, data))
    assert fault.startswith(f"{tmp_path / 'pages.csv'}:{line}: "), fault
    assert expected in fault, fault


def test_a_feeder_over_one_mib_is_refused_without_reading_it_all(tmp_path):
    fault = one_fault(check(tmp_path, b"page,who\n" + b"/a,b\n" * (MAX_BYTES // 4)))
    assert fault == (f"{tmp_path / 'pages.csv'}: 1,048,577 bytes or more; expected a CSV feeder file of at most "
                     "1,048,576 bytes (1 MiB)")


@pytest.mark.parametrize("make, expected", [
    (lambda d: None, "no such file {csv}; expected a CSV file (a relative name is relative to the scenario's folder)"),
    (lambda d: (d / "pages.csv").mkdir(), "{csv} is a directory; expected a CSV file"),
    (lambda d: os.mkfifo(d / "pages.csv"), "{csv} is not a regular file (a pipe or a device); expected a CSV file"),
])
def test_a_feeder_that_is_not_a_file_is_one_line(tmp_path, make, expected):
    make(tmp_path)
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    fault = one_fault(gala("check", str(path), "--quiet", timeout_s=60))
    assert expected.format(csv=tmp_path / "pages.csv") in fault, fault


def test_a_column_the_requests_use_but_the_csv_lacks_is_on_the_scenario_line(tmp_path):
    fault = one_fault(check(tmp_path, b"page,name\n/a,alice\n"))
    assert fault == (f"{tmp_path / 's.yaml'}:{FEEDER_LINE}: users.Reader.feeder.csv: no column who in "
                     f"{tmp_path / 'pages.csv'}; its columns: page, name")


def test_two_users_sharing_a_bad_feeder_get_one_line(tmp_path):
    two = SCENARIO.replace("phases:", "  Other:\n    feeder: {csv: pages.csv}\n    requests: [{path: /x, link: pages}]\n"
                                      "phases:")
    fault = one_fault(check(tmp_path, b"page,who\n/a\n", two))
    assert fault.startswith(f"{tmp_path / 'pages.csv'}:2: 1 field(s); expected 2")


def largest_feeders(folder: Path) -> dict[str, Path]:
    """The largest feeders the limits allow: the most rows (one short column), the most cells (100 empty ones)."""
    rows = folder / "rows.csv"
    width = (MAX_BYTES - len("page,who\n")) // MAX_FEEDER_ROWS - 2
    rows.write_text("page,who\n" + "".join(f"{i:0{width}d},\n" for i in range(MAX_FEEDER_ROWS)))
    cells = folder / "cells.csv"
    header = "page,who," + ",".join(f"c{i}" for i in range(MAX_FEEDER_COLUMNS - 2)) + "\n"
    row = "," * (MAX_FEEDER_COLUMNS - 1) + "\n"
    cells.write_text(header + row * ((MAX_BYTES - len(header)) // len(row)))
    assert all(p.stat().st_size <= MAX_BYTES for p in (rows, cells))
    return {"rows": rows, "cells": cells}


def test_the_largest_allowed_feeders_pass_and_stay_small(tmp_path):
    for name, csv in largest_feeders(tmp_path).items():
        proc = check(tmp_path, csv.read_bytes())
        assert proc.returncode == 0, (name, proc.stderr)
        # what every Locust process keeps: bounded by the limits (measured: 25 MB for 100,000 rows, 35 MB
        # for 10,000 rows of 100 cells); 100 MB is what a file without them could exceed many times over
        tracemalloc.start()
        try:
            rows = read_feeder(csv)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert len(rows) > 5_000 and peak < 100e6, (name, len(rows), peak)


def test_gala_run_refuses_a_bad_feeder_before_it_creates_anything(tmp_path):
    (tmp_path / "pages.csv").write_bytes(b"page,who\n/a,alice\n/b\n")
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    out = tmp_path / "results"
    proc = gala("run", "--scenario", str(path), "--out", str(out), "--no-plan", timeout_s=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert re.fullmatch(rf"gala: {re.escape(str(tmp_path / 'pages.csv'))}:3: 1 field\(s\); expected 2.*\n", proc.stderr)
    assert not out.exists()


def test_names_from_the_files_stay_on_one_line(tmp_path):
    # a column name with a line break (quoted in the CSV), and a feeder name too long for the filesystem
    fault = one_fault(check(tmp_path, b'"pa\nge",name\n/a,alice\n'))
    assert fault.endswith("no column page, who in " + str(tmp_path / "pages.csv") + "; its columns: 'pa\\nge', name")
    fault = one_fault(check(tmp_path, b"page,who\n/a,b\n", SCENARIO.replace("pages.csv", "x" * 5000)))
    assert fault.startswith(f"{tmp_path / 's.yaml'}:{FEEDER_LINE}: users.Reader.feeder.csv: cannot use ")
    assert "(File name too long); expected a CSV file" in fault


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(
    st.binary(max_size=400),
    st.text(alphabet=st.sampled_from('ab,"\n\r\t \x00\ufeff\u00e9;'), max_size=400).map(lambda t: t.encode("utf-8")),
))
def test_any_bytes_are_rows_or_one_line(tmp_path, data):
    """Whatever the bytes, the reader gives rows (every one with the header's columns) or one clean line."""
    path = tmp_path / "f.csv"
    path.write_bytes(data)
    try:
        rows = read_feeder(path)
    except InputError as exc:
        message = str(exc)
        assert message.startswith(f"{path}") and "\n" not in message and "expected" in message, message
    else:
        assert rows and all(list(r) == list(rows[0]) for r in rows)
