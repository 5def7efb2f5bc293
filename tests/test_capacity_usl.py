"""The Universal Scalability Law: known parameters recovered; the fit used instead of linear scaling."""

import numpy as np
import pytest

from capacity_model.contracts import USLFit
from capacity_model.usl import effective_nodes, fit_usl, nodes_for_effective, throughput
from gala.contract.errors import InputError

TRUE = USLFit(sigma=0.05, kappa=0.002, lambda_rps=1000.0, r2=1.0, n_points=0)


def test_recovers_known_parameters_from_noisy_steps():
    n = np.array([1, 2, 4, 8, 12, 16, 24, 32, 48, 64])
    x = throughput(n, TRUE) * (1 + np.random.default_rng(0).normal(0, 0.005, n.size))
    fit = fit_usl(n, x)
    assert fit.sigma == pytest.approx(0.05, rel=0.1)
    assert fit.kappa == pytest.approx(0.002, rel=0.1)
    assert fit.lambda_rps == pytest.approx(1000.0, rel=0.02)
    assert fit.r2 > 0.99
    assert fit.n_star == pytest.approx(np.sqrt(0.95 / 0.002), rel=0.1)
    assert fit.x_max_rps == pytest.approx(float(throughput(fit.n_star, TRUE)), rel=0.03)


def test_two_scales_fit_contention_only():
    fit = fit_usl([1, 2], [1000.0, 1900.0])
    assert fit.kappa == 0.0 and fit.n_star is None
    assert fit.sigma == pytest.approx(1 / 19, rel=1e-4)  # 2/(1+sigma) = 1.9
    assert fit.x_max_rps == pytest.approx(fit.lambda_rps / fit.sigma, rel=1e-6)


def test_linear_scaling_fits_zero_contention():
    fit = fit_usl([1, 2, 4, 8], [500.0, 1000.0, 2000.0, 4000.0])
    assert fit.sigma < 1e-3 and fit.kappa < 1e-5
    assert nodes_for_effective(np.array([10.0]), fit)[0] == pytest.approx(10, abs=1)


def test_nodes_for_effective_is_the_smallest_count_worth_n_linear_nodes():
    n_lin = np.array([1.0, 2.0, 5.0, 7.0, 7.3])  # the USL peaks at ~7.4 nodes' worth
    real = nodes_for_effective(n_lin, TRUE)
    assert (effective_nodes(real, TRUE) >= n_lin - 1e-9).all()
    assert (effective_nodes(real - 1, TRUE)[n_lin > 1] < n_lin[n_lin > 1]).all()
    # beyond the USL's peak no node count is enough
    assert np.isinf(nodes_for_effective(np.array([1e3]), TRUE)[0])


def test_one_scale_is_not_enough():
    with pytest.raises(InputError, match="2 or more scales"):
        fit_usl([4, 4], [100.0, 101.0])
