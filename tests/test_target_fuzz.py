"""Property-based fuzzing of every endpoint of the built-in target, for both stores (real processes).

Hypothesis draws JSON bodies (typed fields, arbitrary nesting, raw bytes, deep brackets), query
strings (Unicode digits, percent-encoded bytes, lone surrogates) and callers (users, admin, none,
forged or raw-byte tokens). Every case must end in a 2xx or a 4xx with a JSON reason and no
state change, never a 5xx, and the audit must pass after each (target_fuzz_cases.send).
benchmarks/fuzz_target.py runs the same cases by the ten thousand.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from conftest import STORES, start_target, store_args
from target_fuzz_cases import ENDPOINTS, FUZZ_CONFIG, cases, make_world, send


@pytest.fixture(scope="module", params=STORES)
def world(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    cfg = tmp / "fuzz.yaml"
    cfg.write_text(FUZZ_CONFIG)
    t = start_target("--config", str(cfg), *store_args(request.param, request), log_dir=tmp)
    try:
        yield make_world(t.url, t.admin_token)
    finally:
        t.stop()
        assert "Traceback" not in t.log_path.read_text(), t.log_path.read_text()[-3000:]


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[f"{m} {p}" for m, p, _, _ in ENDPOINTS])
def test_every_endpoint_answers_hostile_requests_cleanly(world, endpoint):
    @settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=cases(endpoint))
    def check(case):
        send(world, case)

    check()
