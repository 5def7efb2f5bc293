"""What `gala run` prints: the per-phase table and the live line (pure formatting, real inputs)."""

from __future__ import annotations

import io
import math

import pandas as pd

from gala.contract.results import PHASE_LINK_COLUMNS
from loadtests.orchestrator.live import LivePrinter, live_line
from loadtests.orchestrator.table import phase_table


def _row(phase, link, requests, rps, intended=math.nan):
    row = dict.fromkeys(PHASE_LINK_COLUMNS, math.nan)
    row.update(phase=phase, link=link, requests=requests, failures=0, rps=rps, intended_rps=intended,
               p50_ms=3.0, p95_ms=40.0, p99_ms=120.0, max_ms=310.5)
    return row


def test_table_follows_the_scenario_phase_order_with_totals_last():
    stats = pd.DataFrame([
        _row("_all", "_all", 30, 3.0), _row("chat", "chat", 10, 1.0, 2.0), _row("grab", "_all", 20, 2.0),
        _row("grab", "grab", 20, 2.0, 2.5), _row("_all", "grab", 20, 1.0), _row("_all", "chat", 10, 0.5),
    ])
    lines = phase_table(stats, ["grab", "chat"]).splitlines()
    body = [ln.split()[:2] for ln in lines[2:] if ln.strip()]
    assert body == [["grab", "grab"], ["grab", "_all"], ["chat", "chat"], ["_all", "chat"], ["_all", "grab"],
                    ["_all", "_all"]]
    assert lines[0].split()[:4] == ["phase", "link", "requests", "fail"]
    assert "-" in lines[3].split()  # a link with nothing intended shows "-" in the intended column
    assert "310" in lines[2] and "2.5" in lines[2]


def test_live_line_names_phase_users_links_and_failures():
    live = {"t_s": 12.4, "phase": "share-burst", "users": 260,
            "links": {"grab": {"rps": 512, "failures": 1}, "share": {"rps": 230.2, "failures": 2}}}
    line = live_line(live, elapsed_s=15, generator_cpu=64.2, links=["grab", "share", "chat"])
    assert line.split() == ["[", "12s]", "share-burst", "users", "260", "grab", "512/s", "share", "230/s",
                            "fail", "3", "gen", "64%"]
    assert live_line(None, elapsed_s=3).startswith("starting Locust")


def test_live_printer_one_line_per_update_off_a_terminal_and_nothing_when_quiet():
    out = io.StringIO()
    p = LivePrinter(out)
    p.update("a")
    p.update("b")
    p.say("done")
    assert out.getvalue() == "a\nb\ndone\n"
    quiet = io.StringIO()
    q = LivePrinter(quiet, quiet=True)
    q.update("a")
    q.say("done")
    assert quiet.getvalue() == ""
