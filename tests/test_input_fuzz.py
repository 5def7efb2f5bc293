"""Property-based fuzzing of every input-file loader (scenario, budgets, capacity spec, target config):
hostile mutants of the default files (tests/input_fuzz_cases.py) each end in acceptance, with what was
accepted usable, or in one clean `FILE:LINE: ...` InputError; never another exception. A few hundred
cases per loader, a few seconds each; benchmarks/fuzz.py runs 10,000+ per loader and reports memory.
"""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings

from input_fuzz_cases import LOADERS, big_files, check_case, mutants

# deadline: 10x the slowest case measured (~0.4 s, benchmarks/README.md), so a busy machine does not fail it
# while a blow-up (a case taking seconds) still does; derandomized, so CI runs the same cases every time
FUZZ = settings(max_examples=300, deadline=5000, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])


@pytest.mark.parametrize("name", LOADERS)
def test_every_mutant_is_accepted_or_cleanly_refused(tmp_path, name):
    loader = LOADERS[name]
    path = tmp_path / f"{name}.yaml"
    seen = {"accepted": 0, "refused": 0}

    @FUZZ
    @given(mutants(loader.default))
    def one(raw: bytes) -> None:
        path.write_bytes(raw)
        seen[check_case(loader, path)] += 1

    one()
    assert seen["refused"] > 20 and seen["accepted"] > 0, seen  # both kinds of outcome were exercised


@pytest.mark.parametrize("big", list(big_files()))
@pytest.mark.timeout(60)
def test_a_file_just_under_the_size_limit_stays_small(tmp_path, big):
    """The worst shapes of a file under 1 MiB, through the scenario loader: bounded memory
    (a bound far above the measured ~30 MB: a blow-up check, not a speed test)."""
    path = tmp_path / "big.yaml"
    path.write_bytes(big_files()[big])
    tracemalloc.start()
    check_case(LOADERS["scenario"], path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 200e6, peak  # the time is benchmarks/fuzz.py's to measure; the timeout mark catches a hang
