"""M/M/c queueing (Erlang C), computed stably for c from 1 to millions, vectorised over numpy arrays.

Notation: c servers (cores), arrival rate `lam` (req/s), service rate `mu` per server (req/s),
offered load a = lam / mu, utilization rho = a / c.

Erlang B is the Poisson tail ratio B(c, a) = P(K = c) / P(K <= c) for K ~ Poisson(a), evaluated in
log space (the log pmf in Loader's saddle-point form, the cdf by the regularized upper incomplete
gamma `gammaincc(c+1, a)`), so no factorial or power is ever formed. Erlang C follows from B:
C = B / (1 - rho (1 - B)), the probability that an arrival waits.

Under FCFS the waiting time Wq is 0 with probability 1 - C, else exponential with rate c*mu - lam;
the response time T = Wq + S adds an independent exponential service time S (rate mu):
P(T > t) = e^{-mu t} (1 + C mu (1 - e^{-(nu - mu) t}) / (nu - mu)),  nu = c mu - lam
(the limit nu -> mu gives e^{-mu t} (1 + C mu t)). Both tails are exact for M/M/c FCFS.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq
from scipy.special import gammaincc, gammaln


_HALF_LOG_2PI = 0.5 * np.log(2.0 * np.pi)


def _stirling_error(c):
    """log(c!) - [(c + 1/2) log c - c + log sqrt(2 pi)], by its asymptotic series for c >= 15."""
    c = np.asarray(c, dtype=float)
    safe = np.maximum(c, 15.0)
    series = (1.0 / 12 - (1.0 / 360 - (1.0 / 1260 - 1.0 / (1680 * safe * safe)) / (safe * safe)) / (safe * safe)) / safe
    with np.errstate(divide="ignore", invalid="ignore"):
        direct = gammaln(c + 1.0) - (c + 0.5) * np.log(c) + c - _HALF_LOG_2PI
    return np.where(c >= 15.0, series, direct)


def log_poisson_pmf(c, a):
    """log P(K = c), K ~ Poisson(a), by Loader's saddle-point form: no cancellation of huge terms at c ~ 1e6."""
    c = np.asarray(c, dtype=float)
    a = np.asarray(a, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        eps = (c - a) / a
        # c log(c/a) + a - c, with log1p so that c close to a keeps its digits
        dev = a * ((1.0 + eps) * np.log1p(eps) - eps)
        out = -dev - _stirling_error(c) - _HALF_LOG_2PI - 0.5 * np.log(c)
    return np.where(a > 0, out, -np.inf)


def log_erlang_b(c, a):
    """log B(c, a), the Erlang B blocking probability, for arrays of servers c >= 1 and load a >= 0."""
    c = np.asarray(c, dtype=float)
    a = np.asarray(a, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_cdf = np.log(gammaincc(c + 1.0, a))
        out = np.minimum(log_poisson_pmf(c, a) - log_cdf, 0.0)
    # where the cdf underflows (a far above c) blocking is all but certain
    return np.where(np.isfinite(log_cdf), out, 0.0)


def erlang_b(c, a):
    """Erlang B blocking probability (M/M/c/c)."""
    return np.exp(log_erlang_b(c, a))


def erlang_c(c, a):
    """Erlang C: probability that an arrival waits in M/M/c; 1 when the queue is unstable (a >= c)."""
    c = np.asarray(c, dtype=float)
    a = np.asarray(a, dtype=float)
    b = erlang_b(c, a)
    rho = a / c
    with np.errstate(divide="ignore", invalid="ignore"):
        out = b / (1.0 - rho * (1.0 - b))
    return np.where(rho < 1.0, np.clip(out, 0.0, 1.0), 1.0)


def wait_tail(t_s, c, lam, mu):
    """P(Wq > t): C(c, a) exp(-(c mu - lam) t); 1 when unstable."""
    c, lam, mu, t_s = (np.asarray(x, dtype=float) for x in (c, lam, mu, t_s))
    nu = c * mu - lam
    pc = erlang_c(c, lam / mu)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.where(nu > 0, pc * np.exp(-np.maximum(nu, 0.0) * t_s), 1.0)


def wait_quantile(q, c, lam, mu):
    """The q-quantile of the waiting time Wq in seconds (0 when P(wait) <= 1 - q; inf when unstable)."""
    c, lam, mu, q = (np.asarray(x, dtype=float) for x in (c, lam, mu, q))
    nu = c * mu - lam
    pc = erlang_c(c, lam / mu)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.log(pc / (1.0 - q)) / nu
    return np.where(nu > 0, np.maximum(np.nan_to_num(t, nan=0.0, neginf=0.0), 0.0), np.inf)


def response_tail(t_s, c, lam, mu):
    """P(T > t) for the M/M/c FCFS response time T = Wq + S (exact; see the module docstring)."""
    c, lam, mu, t_s = (np.asarray(x, dtype=float) for x in (c, lam, mu, t_s))
    nu = c * mu - lam
    d = nu - mu
    pc = erlang_c(c, lam / mu)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # (1 - e^{-d t}) / d, written with expm1 so that d -> 0 loses nothing
        g = np.where(np.abs(d * t_s) > 1e-12, -np.expm1(-d * t_s) / d, t_s)
        out = np.exp(-mu * t_s) * (1.0 + pc * mu * g)
    return np.where(nu > 0, np.clip(out, 0.0, 1.0), 1.0)


def response_quantile(q: float, c: float, lam: float, mu: float) -> float:
    """The q-quantile of the M/M/c FCFS response time in seconds, solved with brentq on the exact tail."""
    if c * mu <= lam:
        return float("inf")
    target = 1.0 - q
    f = lambda t: float(response_tail(t, c, lam, mu)) - target  # noqa: E731
    # the tail is below e^{-min(mu, nu) t}(1 + C mu t), so this bracket always holds the root
    rate = min(mu, c * mu - lam)
    hi = 1.0 / rate
    while f(hi) > 0:
        hi *= 2.0
    return brentq(f, 0.0, hi, xtol=1e-15, rtol=1e-12)
