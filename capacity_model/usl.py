"""The Universal Scalability Law: X(N) = lambda N / (1 + sigma (N - 1) + kappa N (N - 1)).

Fitted to throughput measured at several scales N (nodes/processes, or load steps' concurrency),
with sigma, kappa, lambda >= 0. The default fit (`method="nls"`) is the standard one, as the R `usl`
package (3.x: `nls`/`nlxb`) and usl4j do: nonlinear least squares on the throughput itself, all three
parameters free, the first point weighed like any other, sigma and kappa bounded to [0, 1].
It reproduces their published fits of their own example data (tests/data/usl/).
`method="relative"` minimises relative residuals instead, so every scale weighs the same whatever
its throughput (the fit gala used before). With two scales kappa is fixed at 0 (two equations, two
unknowns). `effective_nodes` and `nodes_for_effective` turn the fit into "how many nodes do the work
of n linearly scaled ones", which sizing uses instead of linear scaling when runs at several scales exist.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.optimize import least_squares

from capacity_model.contracts import USLFit
from gala.contract.errors import InputError

Method = Literal["nls", "relative"]
METHODS: tuple[str, ...] = ("nls", "relative")
# the R package's start (usl.solve.nlxb): sigma 0.01, kappa 1e-4, lambda the largest X(N)/N
SIGMA0, KAPPA0 = 0.01, 1e-4
TOL = 1e-12  # tight enough that the optimum, not the stopping rule, sets the digits


def _usl(n, sigma, kappa, lam):
    return lam * n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0))


def throughput(n, fit: USLFit):
    """X(N) in req/s for an array of N."""
    return _usl(np.asarray(n, dtype=float), fit.sigma, fit.kappa, fit.lambda_rps)


def _peak(sigma: float, kappa: float, lam: float) -> tuple[float | None, float | None]:
    if kappa > 0:
        n_star = float(np.sqrt(max(1.0 - sigma, 0.0) / kappa))
        return n_star, float(_usl(max(n_star, 1.0), sigma, kappa, lam))
    return None, (lam / sigma if sigma > 0 else None)


def fit_usl(n, x, *, axis: str = "nodes", method: Method = "nls") -> USLFit:
    """Fit the USL to throughputs `x` (req/s) measured at scales `n` (>= 2 distinct scales).

    method "nls": least squares on X (the R usl package's and usl4j's fit); "relative": least
    squares on (X_fit - X) / X.
    """
    if method not in METHODS:
        raise InputError(f"USL fit method: expected one of {', '.join(METHODS)}, got {method!r}")
    n = np.asarray(n, dtype=float)
    x = np.asarray(x, dtype=float)
    ok = np.isfinite(n) & np.isfinite(x) & (n > 0) & (x > 0)
    n, x = n[ok], x[ok]
    if np.unique(n).size < 2:
        raise InputError(f"USL: needs throughput at 2 or more scales, got {np.unique(n).size}")
    lam0 = float(np.max(x / n))
    two = np.unique(n).size == 2
    weight = 1.0 / x if method == "relative" else np.ones_like(x)
    resid = lambda p: (_usl(n, p[0], 0.0 if two else p[1], p[-1]) - x) * weight  # noqa: E731
    kappa_hi = 1.0 if method == "nls" else np.inf  # R bounds beta to [0, 1]; the relative fit never did
    p0, lo, hi = ([SIGMA0, lam0], [0, 0], [1, np.inf]) if two else \
        ([SIGMA0, KAPPA0, lam0], [0, 0, 0], [1, kappa_hi, np.inf])
    p = least_squares(resid, p0, bounds=(lo, hi), x_scale="jac", xtol=TOL, ftol=TOL, gtol=TOL,
                      max_nfev=10_000).x
    sigma, kappa, lam = (p[0], 0.0, p[1]) if two else tuple(p)
    pred = _usl(n, sigma, kappa, lam)
    ss_tot = float(((x - x.mean()) ** 2).sum())
    r2 = 1.0 - float(((x - pred) ** 2).sum()) / ss_tot if ss_tot > 0 else 1.0
    n_star, x_max = _peak(sigma, kappa, lam)
    return USLFit(sigma=float(sigma), kappa=float(kappa), lambda_rps=float(lam), r2=r2, n_points=int(n.size),
                  axis=axis, n_star=n_star, x_max_rps=x_max, method=method)


def effective_nodes(n, fit: USLFit):
    """How many linearly scaled nodes N real nodes are worth: X(N) / X(1)."""
    return throughput(n, fit) / fit.lambda_rps


def nodes_for_effective(n_linear, fit: USLFit):
    """The fewest real nodes worth `n_linear` linear ones (array); inf where the USL never gets there.

    Solves n (1 + sigma (N-1) + kappa N (N-1)) <= N for its smallest N >= 1, in closed form.
    """
    m = np.asarray(n_linear, dtype=float)
    s, k = fit.sigma, fit.kappa
    with np.errstate(divide="ignore", invalid="ignore"):
        if k > 0:
            # m k N^2 + (m s - m k - 1) N + m (1 - s) <= 0: the smaller root
            b = m * s - m * k - 1.0
            disc = b * b - 4.0 * m * k * m * (1.0 - s)
            root = (-b - np.sqrt(np.maximum(disc, 0.0))) / (2.0 * m * k)
            out = np.where(disc >= 0, root, np.inf)
        else:
            out = np.where(m * s < 1.0, m * (1.0 - s) / (1.0 - m * s), np.inf)
    out = np.where(m <= 1.0, m, np.maximum(out, 1.0))
    return np.ceil(out - 1e-9)
