"""The results-folder contract: histogram arithmetic and the reader's refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, strategies as st

from gala.contract.histogram import histogram_percentiles, merge_histograms, round_response_time
from gala.contract.results import ResultsError, load_run


@pytest.mark.parametrize(
    "ms, rounded",
    [(0.4, 0), (12.6, 13), (99.4, 99), (104, 100), (995, 1000), (1049, 1000), (12345, 12000)],
)
def test_rounding_follows_locust_buckets(ms, rounded):
    assert round_response_time(ms) == rounded


@given(st.lists(st.integers(min_value=0, max_value=5000), min_size=1, max_size=300), st.integers(0, 299))
def test_merged_histogram_percentiles_equal_those_of_all_samples(samples, cut):
    """Splitting samples across two workers and merging gives the single-process percentiles."""
    cut = min(cut, len(samples))
    buckets = [round_response_time(s) for s in samples]

    def hist(xs):
        h: dict[int, int] = {}
        for x in xs:
            h[x] = h.get(x, 0) + 1
        return h

    merged = merge_histograms(hist(buckets[:cut]), hist(buckets[cut:]))
    assert merged == hist(buckets)
    qs = [0.5, 0.95, 0.99, 1.0]
    expected = [float(np.sort(buckets)[max(int(np.ceil(q * len(buckets))) - 1, 0)]) for q in qs]
    assert histogram_percentiles(merged, qs) == expected


def test_reader_refuses_a_folder_without_run_json(tmp_path):
    with pytest.raises(ResultsError, match=r"run\.json: missing"):
        load_run(tmp_path)


def test_reader_refuses_a_running_run(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({
        "run_id": "x", "status": "running", "scenario": {"name": "s", "sha256": "0"},
        "links": ["a"], "target": {"url": "http://127.0.0.1:1"}, "started_at": "2026-01-01T00:00:00Z",
        "phases": [],
    }))
    with pytest.raises(ResultsError, match="status is 'running'"):
        load_run(tmp_path)


def test_reader_names_the_bad_field(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"run_id": "x", "status": "complete"}))
    with pytest.raises(ResultsError, match=r"run\.json: scenario: missing; expected this field"):
        load_run(tmp_path)
