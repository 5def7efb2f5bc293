"""The capacity spec: the default loads; bad files fail with FILE:LINE: field: expected ..."""

from pathlib import Path

import pytest

from capacity_model.spec import DEFAULT_SPEC, load_spec
from gala.contract.errors import InputError


def test_default_spec_is_the_gala_night():
    spec = load_spec()
    assert spec.peak.requests_per_min == 17.7e9
    assert spec.peak.rate_per_s == pytest.approx(295e6)
    assert spec.node_budget == 10_000
    assert spec.redundancy.zones == 3 and spec.redundancy.survive_zone_loss
    assert spec.latency_budgets["share"].latency_ms == 500
    sources = {a.figure: a.source for a in spec.assumptions()}
    assert sources["peak.requests_per_min"] == "seed" and sources["node_budget"] == "seed"
    assert sources["node.cores"] == "assumed" and sources["latency_budgets"] == "assumed"
    assert sources["mix.source"] == "run"
    # every figure of the YAML says where it comes from: in its own comment, or in its block's
    words = ("seed", "run", "assumed", "Monte Carlo")
    header = ""
    for line in DEFAULT_SPEC.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith(" "):
            header = line
        if line.split(":", 1)[1].split("#")[0].strip():
            assert any(w in line.split("#", 1)[-1] for w in words) if "#" in line else \
                any(w in header for w in words), line


def test_a_changed_figure_is_attributed_to_the_spec(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("node_budget: 12000\nsources: {node.cores: run}\n", encoding="utf-8")
    sources = {a.figure: a.source for a in load_spec(path).assumptions()}
    assert sources["node_budget"] == "spec" and sources["node.cores"] == "run"


BAD = [
    ("node:\n  cores: -4\n", r":2: node\.cores: expected a number > 0, got -4"),
    ("peak:\n  requests_per_minute: 5\n", r":2: peak\.requests_per_minute: unknown field; check its spelling \(expected one of: requests_per_min\)"),
    ("latency_budgets:\n  grab:\n    percentile: 99\n    latency_ms: fast\n",
     r":4: latency_budgets\.grab\.latency_ms: expected a number, got 'fast'"),
    ("latency_budgets:\n  grab: {percentile: 120, latency_ms: 3}\n", r":2: latency_budgets\.grab\.percentile: expected a number < 100"),
    ("latency_budgets:\n  grab: {percentile: 99}\n", r":2: latency_budgets\.grab\.latency_ms: missing; expected this field"),
    ("mix:\n  source: guessed\n", r":2: mix\.source: expected 'measured' or 'declared', got 'guessed'"),
    ("mix:\n  source: declared\n", r":1: mix: expected `phases: "),
    ("mix:\n  source: declared\n  phases:\n    grab: {grab: 0.9, chat: 0.3}\n", r":1: mix: expected phase 'grab'.s fractions"),
    ("redundancy:\n  zones: 1\n  survive_zone_loss: true\n", r":1: redundancy: expected zones >= 2"),
    ("utilization_ceiling: 1.5\n", r":1: utilization_ceiling: expected a number <= 1"),
    ("- just\n- a list\n", r":1: expected a mapping of spec fields"),
    ("peak: [1, 2\n", r":2: not valid YAML"),
]


@pytest.mark.parametrize("text,message", BAD)
def test_bad_spec_names_file_line_and_field(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=message) as err:
        load_spec(path)
    assert str(err.value).startswith(f"{path}:")
    assert "\n" not in str(err.value)


def test_missing_spec_file():
    with pytest.raises(InputError, match="no such capacity spec file"):
        load_spec(Path("/nonexistent/spec.yaml"))


def test_where_points_into_the_file(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("node_budget: 100\nlatency_budgets:\n  grab: {percentile: 99, latency_ms: 200}\n", encoding="utf-8")
    spec = load_spec(path)
    assert spec.where("latency_budgets", "grab") == f"{path}:3: latency_budgets.grab"
