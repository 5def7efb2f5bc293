"""Service demand by NNLS: known demands recovered from noisy synthetic series; collinear mixes flagged."""

import numpy as np
import pandas as pd
import pytest

from capacity_model.demand import estimate_demand
from synth_measurements import synthetic_measurements
from gala.contract.errors import InputError

TRUE_D = {
    "grab": {"gateway": 0.0004, "wallet": 0.0002, "social": 0.0},
    "share": {"gateway": 0.0003, "wallet": 0.0006, "social": 0.0009},
    "chat": {"gateway": 0.0002, "wallet": 0.0, "social": 0.0011},
}
PHASES = {
    "grab": {"grab": 900.0},
    "share-burst": {"grab": 200.0, "share": 400.0},
    "chat": {"chat": 600.0, "share": 100.0},
}


def test_known_demands_recovered_within_5_percent():
    m = synthetic_measurements(PHASES, TRUE_D, seconds_per_phase=60, noise_cores=0.005, seed=7)
    fit = estimate_demand(m.throughput, m.busy_cores, bootstrap_draws=100, seed=1)
    D = fit.demand_frame()
    for link, row in TRUE_D.items():
        for service, d in row.items():
            got = D.loc[link, service]
            if d == 0:
                assert got <= 0.05 * max(row.values()), (link, service, got)
            else:
                assert got == pytest.approx(d, rel=0.05), (link, service, got)
    assert min(fit.r2.values()) > 0.9
    assert fit.baseline_busy_cores["gateway"] == pytest.approx(0.05, abs=0.02)
    assert fit.unidentifiable == []
    assert fit.condition_number < 30
    # the bootstrap's standard errors are positive and small next to the demands they qualify
    se = fit.standard_error_frame()
    assert 0 < se.loc["share", "social"] < 0.1 * TRUE_D["share"]["social"]


def test_true_demand_within_bootstrap_error_bars():
    m = synthetic_measurements(PHASES, TRUE_D, seconds_per_phase=40, noise_cores=0.02, seed=3)
    fit = estimate_demand(m.throughput, m.busy_cores, bootstrap_draws=200, seed=2)
    D, se = fit.demand_frame(), fit.standard_error_frame()
    z = [abs(D.loc[l, s] - d) / se.loc[l, s] for l, row in TRUE_D.items() for s, d in row.items() if d > 0]
    assert np.median(z) < 3.0


def test_collinear_links_are_flagged():
    # share always runs at exactly half of grab's rate: the mix never varies enough to separate them
    rng = np.random.default_rng(0)
    grab = rng.uniform(100, 900, 120)
    X = pd.DataFrame({"grab": grab, "share": grab * 0.5 + rng.normal(0, 0.5, 120),
                      "chat": rng.uniform(0, 500, 120)})
    U = pd.DataFrame({"svc": 0.05 + X.to_numpy() @ [0.0004, 0.001, 0.0006] + rng.normal(0, 0.005, 120)})
    fit = estimate_demand(X, U, bootstrap_draws=20)
    assert ("grab", "share") in fit.unidentifiable
    assert fit.condition_number > 100


def test_flat_phases_leave_the_baseline_confused_with_a_link():
    # every phase at constant rates: only Poisson jitter separates U0 from the links
    m = synthetic_measurements(PHASES, TRUE_D, seconds_per_phase=60, noise_cores=0.005, ramp_up=False, seed=7)
    fit = estimate_demand(m.throughput, m.busy_cores, bootstrap_draws=20)
    assert fit.condition_number > 30
    assert any("U0" in pair for pair in fit.unidentifiable), fit.unidentifiable


def test_link_that_never_varied_cannot_be_told_from_the_baseline():
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"grab": rng.uniform(100, 900, 60), "chat": np.full(60, 300.0)})
    U = pd.DataFrame({"svc": 0.05 + X.to_numpy() @ [0.0004, 0.0006] + rng.normal(0, 0.005, 60)})
    fit = estimate_demand(X, U, bootstrap_draws=20)
    assert ("chat", "U0") in fit.unidentifiable


def test_demands_are_never_negative():
    rng = np.random.default_rng(2)
    X = pd.DataFrame({"a": rng.uniform(0, 100, 50), "b": rng.uniform(0, 100, 50)})
    U = pd.DataFrame({"svc": 1.0 - 0.001 * X["a"] + rng.normal(0, 0.01, 50)})  # falls with a: NNLS clips at 0
    fit = estimate_demand(X, U, bootstrap_draws=20)
    assert (fit.demand_frame().to_numpy() >= 0).all()
    assert fit.cpu_s_per_request["a"]["svc"] == 0.0


def test_no_cpu_samples_is_a_clear_error():
    X = pd.DataFrame({"grab": np.arange(10.0)})
    with pytest.raises(InputError, match="no CPU samples"):
        estimate_demand(X, pd.DataFrame(index=X.index))
    with pytest.raises(InputError, match="windows"):
        estimate_demand(X.iloc[:2], pd.DataFrame({"svc": [0.1, 0.2]}))


def test_a_link_the_fit_costs_at_zero_is_costed_at_the_pooled_cpu_per_request():
    """A link with traffic that the fit costs at zero (here its rate even runs against the CPU, as noise
    in a short run can make a real link look) is never planned for free: it gets the run's pooled CPU
    per request, ± 100%."""
    from capacity_model.demand import floor_zero_demands

    rng = np.random.default_rng(3)
    n = 120
    throughput = pd.DataFrame({"grab": 400 + 300 * np.sin(np.arange(n) / 9.0) + rng.normal(0, 5, n),
                               "share": 50 + 40 * np.cos(np.arange(n) / 7.0)})
    busy = pd.DataFrame({"target": 0.2 + 0.0002 * throughput["grab"] - 0.0005 * throughput["share"]
                         + rng.normal(0, 0.002, n)})
    fit = estimate_demand(throughput, busy, bootstrap_draws=20)
    assert fit.cpu_s_per_request["share"]["target"] == 0.0  # NNLS at its bound
    floored, which = floor_zero_demands(fit, throughput, busy)
    pooled = float((busy["target"] - fit.baseline_busy_cores["target"]).clip(lower=0).sum() / throughput.to_numpy().sum())
    assert which == {"share": pytest.approx(pooled)}
    assert floored.cpu_s_per_request["share"]["target"] == pytest.approx(pooled)
    assert floored.standard_error_cpu_s["share"]["target"] == pytest.approx(pooled)
    assert floored.cpu_s_per_request["grab"] == fit.cpu_s_per_request["grab"]  # a fitted link is untouched
    # a fit with every link costed is returned as it was
    assert floor_zero_demands(floored, throughput, busy) == (floored, {})
