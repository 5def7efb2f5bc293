"""The plan's report: every file written, report.html self-contained, charts that decode, warnings shown."""

from __future__ import annotations

import base64
import io
import json
import re

import matplotlib.image as mpimg
import pandas as pd
import pytest

from capacity_model.api import plan_run
from synth_runs import LINKS, write_run
from test_plan_cli import write_spec


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    runs = [write_run(d, seed=41), write_run(d, seed=42, rate_scale=0.6, saturated=True, status="interrupted")]
    lines: list[str] = []
    outcome = plan_run(runs, spec_path=write_spec(d), out_dir=d / "out", progress=lines.append)
    return outcome, lines


def test_every_file_is_written(planned):
    outcome, lines = planned
    out = outcome.out_dir
    for name in ("report.md", "report.html", "allocation.csv", "plan.json"):
        assert (out / name).stat().st_size > 0
    assert lines and any("planning" in l for l in lines)
    plan = json.loads((out / "plan.json").read_text())
    assert plan["links"] == LINKS
    alloc = pd.read_csv(out / "allocation.csv")
    assert {"link", "method", "required_nodes", "nodes", "shortfall_nodes"} <= set(alloc.columns)
    assert outcome.exit_code == 0 and outcome.report_path == out / "report.html"


def test_report_html_is_self_contained_and_its_pngs_decode(planned):
    html = (planned[0].out_dir / "report.html").read_text()
    # nothing fetched from elsewhere: no external URL, script, stylesheet link, or non-data image
    assert not re.search(r"(https?:)?//[\w.-]+\.\w+/", html.replace("http://127.0.0.1:1", ""))
    assert "<script" not in html and "<link" not in html
    srcs = re.findall(r'<img[^>]*src="([^"]+)"', html)
    assert len(srcs) == 4, "nodes per link, utilization per phase, latency against budget, what-if matrix"
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        img = mpimg.imread(io.BytesIO(base64.b64decode(src.split(",", 1)[1])), format="png")
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100


def test_report_md_tells_the_planner_what_they_need(planned):
    outcome = planned[0]
    md = (outcome.out_dir / "report.md").read_text()
    for heading in ("## Nodes per link", "## Load per phase at the peak", "## Latency against the budget",
                    "## The 1 February what-if", "## Assumptions", "### Service demand"):
        assert heading in md
    for link in LINKS:
        assert f"| {link} |" in md
    # the charts the markdown links to exist beside it
    for target in re.findall(r"!\[[^\]]*\]\((charts/[^)]+)\)", md):
        assert (outcome.out_dir / target).read_bytes().startswith(b"\x89PNG")
    # assumptions: seed, run and assumed figures are told apart
    assumptions = md.split("## Assumptions", 1)[1]
    for source in ("| seed |", "| run |", "| assumed |"):
        assert source in assumptions
    # the doubtful run is named with what is wrong with it, in the report and to the caller
    assert "interrupted" in md and "not trustworthy" in md
    assert any("saturated" in w for w in outcome.warnings) and any("interrupted" in w for w in outcome.warnings)


def test_headline_is_a_few_lines_with_the_feb1_verdict(planned):
    outcome = planned[0]
    lines = outcome.headline.splitlines()
    assert 2 <= len(lines) <= 5
    assert all(f"{l} " in lines[0] for l in LINKS) and "of 10000 nodes" in lines[0]
    assert lines[-1].startswith("1 February what-if:")
