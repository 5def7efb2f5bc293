"""Erlang C, the waiting-time and response-time tails of M/M/c, against mpmath at small and large c."""

import math

import mpmath as mp
import numpy as np
import pytest

from capacity_model.queueing import erlang_c, response_quantile, response_tail, wait_quantile, wait_tail

mp.mp.dps = 60


def mp_erlang_c(c, a):
    """Erlang C in 60-digit arithmetic, from the Poisson pmf and cdf (upper incomplete gamma)."""
    c, a = mp.mpf(c), mp.mpf(a)
    pmf = mp.exp(c * mp.log(a) - a - mp.loggamma(c + 1))
    b = pmf / mp.gammainc(c + 1, a, mp.inf, regularized=True)
    return b / (1 - (a / c) * (1 - b))


def mp_erlang_c_by_sum(c, a):
    """Erlang C from its textbook definition (sums of a^k/k!), for small c only."""
    c, a = int(c), mp.mpf(a)
    head = mp.fsum(a ** k / mp.factorial(k) for k in range(c))
    last = a ** c / mp.factorial(c) * c / (c - a)
    return last / (head + last)


CASES = [(1, 0.5), (2, 1.5), (10, 7.0), (10, 9.9), (32, 20.0), (1e4, 9_900.0), (1e4, 9_000.0),
         (1e6, 999_000.0), (1e6, 990_000.0), (1e6, 999_999.0)]


@pytest.mark.parametrize("c,a", CASES)
def test_erlang_c_matches_mpmath(c, a):
    ref = float(mp_erlang_c(c, a))
    assert float(erlang_c(c, a)) == pytest.approx(ref, rel=1e-10)


@pytest.mark.parametrize("c,a", [(1, 0.5), (2, 1.5), (10, 7.0)])
def test_mpmath_reference_agrees_with_the_textbook_sum(c, a):
    assert float(mp_erlang_c(c, a)) == pytest.approx(float(mp_erlang_c_by_sum(c, a)), rel=1e-30)


def test_erlang_c_vectorised_and_edges():
    c = np.array([1, 5, 32, 32, 1e6])
    a = np.array([0.0, 0.0, 40.0, 32.0, 1e6 + 1])
    out = erlang_c(c, a)
    assert out.shape == (5,)
    assert out[0] == 0.0 and out[1] == 0.0  # no load, no wait
    assert (out[2:] == 1.0).all()  # unstable: every arrival waits
    # c = 1: C = rho
    rho = np.linspace(0.01, 0.99, 50)
    np.testing.assert_allclose(erlang_c(1, rho), rho, rtol=1e-12)


def mp_response_quantile(q, c, lam, mu):
    """The response-time quantile in mpmath, from its own convolution: T = S + Wq, so
    P(T > t) = P(S > t) + integral_0^t f_S(s) P(Wq > t - s) ds, with P(Wq > x) = C e^{-(c mu - lam) x}
    (not the closed form the code uses)."""
    pc = mp_erlang_c(c, mp.mpf(lam) / mu)
    nu, mu_ = mp.mpf(c) * mu - lam, mp.mpf(mu)

    def tail(t):
        conv = mp.quad(lambda s: mu_ * mp.exp(-mu_ * s) * pc * mp.exp(-nu * (t - s)), [0, t])
        return mp.exp(-mu_ * t) + conv
    with mp.workdps(30):
        return mp.findroot(lambda t: tail(t) - (1 - q), (mp.mpf(0), mp.mpf(100) / min(mu_, nu)), solver="illinois")


@pytest.mark.parametrize("q,c,lam,mu", [
    (0.99, 1, 50.0, 100.0), (0.95, 2, 150.0, 100.0), (0.99, 10, 700.0, 100.0),
    (0.999, 32, 3100.0, 100.0), (0.99, 1e4, 9.9e5, 100.0), (0.99, 1e6, 9.99e7, 100.0),
    (0.99, 2, 100.0, 100.0),  # nu == mu: the limit form
])
def test_response_quantile_matches_mpmath(q, c, lam, mu):
    ref = float(mp_response_quantile(q, c, lam, mu))
    got = response_quantile(q, c, lam, mu)
    assert got == pytest.approx(ref, rel=1e-8)
    assert float(response_tail(got, c, lam, mu)) == pytest.approx(1 - q, rel=1e-8)


def test_response_of_mm1_is_exponential():
    # M/M/1: T ~ Exp(mu - lam)
    assert response_quantile(0.99, 1, 60.0, 100.0) == pytest.approx(math.log(100) / 40.0, rel=1e-10)


@pytest.mark.parametrize("c,lam,mu", [(1, 50.0, 100.0), (32, 3100.0, 100.0), (1e6, 9.99e7, 100.0)])
def test_wait_quantile_inverts_wait_tail(c, lam, mu):
    for q in (0.5, 0.9, 0.99, 0.9999):
        t = float(wait_quantile(q, c, lam, mu))
        p_wait = float(erlang_c(c, lam / mu))
        if p_wait <= 1 - q:
            assert t == 0.0
        else:
            assert float(wait_tail(t, c, lam, mu)) == pytest.approx(1 - q, rel=1e-9)
    assert wait_quantile(0.99, c, c * mu * 1.01, mu) == np.inf
