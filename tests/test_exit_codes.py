"""How a run's end becomes an exit code (docs/exit-codes.md): a dead target or mostly failed requests are
a failed run (1) with a whole folder (status degraded); a lost worker is a degraded run that measured (0).
Pure: `run_status` and `failed_ratio` on what the runner saw. The real runs: test_run_other_system.py
(a target killed mid-run exits 1), test_gate_real.py (`gala run --budgets` and `gala gate` exit 99)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from gala.contract.errors import ExitCode
from loadtests.orchestrator.outcome import failed_ratio, run_status


def status(degraded: list, failed: float | None = 0.0):
    return run_status(stop_reason=None, signalled=False, generator_started=True, started=True, locust_code=0,
                      failure=None, degraded=degraded, locust_log=Path("/nonexistent"), failed=failed)


@pytest.mark.parametrize("events,failed,expected", [
    ([], 0.0, ("complete", ExitCode.OK)),
    ([], 0.5, ("complete", ExitCode.OK)),          # half failed: still a measurement (a link may 404 by design)
    ([], 0.66, ("degraded", ExitCode.RUN_FAILED)),  # the 14,646 of 22,261
    ([], None, ("complete", ExitCode.OK)),
    (["worker-exited"], 0.0, ("degraded", ExitCode.OK)),
    (["target-exited"], 0.1, ("degraded", ExitCode.RUN_FAILED)),
])
def test_a_dead_target_or_mostly_failed_requests_fail_the_run(events, failed, expected):
    degraded = [{"t_s": 8.0, "what": what, "detail": ""} for what in events]
    st, reason, code = status(degraded, failed)
    assert (st, code) == (expected[0], int(expected[1])) and reason is None
    if failed and failed > 0.5 and not events:
        assert degraded[-1]["what"] == "most-requests-failed" and "66% of the run's requests failed" in degraded[-1]["detail"]


def test_the_failed_ratio_is_over_the_whole_run():
    stats = pd.DataFrame([
        {"phase": "grab", "link": "_all", "requests": 100, "failures": 0},
        {"phase": "_all", "link": "grab", "requests": 22_261 - 10_000, "failures": 4_646},
        {"phase": "_all", "link": "chat", "requests": 10_000, "failures": 10_000},
        {"phase": "_all", "link": "_all", "requests": 22_261, "failures": 14_646},
    ])
    assert failed_ratio(stats) == pytest.approx(14_646 / 22_261)
    assert failed_ratio(stats[stats["link"] != "_all"]) == pytest.approx(14_646 / 22_261)
    assert failed_ratio(pd.DataFrame(columns=["phase", "link", "requests", "failures"])) is None
