"""Load-dependent demand: CPU per request as a function of the node's utilization, fitted over
measured steps (a knee search's, or any runs at several loads), and read at the ceiling.

CPU per request is not a constant: on the built-in target it falls by a third from 25% to 95% of a
core (batching in the event loop, warm caches), on a service with locks or coherency costs it rises.
A plan sized from a low-load rehearsal with a constant demand is off by that much, in a direction
that depends on the server. The fit here is a straight line d(u) = a + b·u by least squares over
the steps below saturation, with the standard errors of a and b; `at(u)` reads it anywhere, and
says whether that is measured (within the steps' utilizations) or extrapolated, and from where.
An extrapolation widens the band the plan gives: the relative error grows with the distance from
the highest measured utilization (the slope's standard error times the distance, at least
`EXTRAPOLATION_FLOOR` per 10 points of utilization, as the direction of the curve is unknown). Beyond
the steps the line is followed only in the safe direction (a cost rising with load); a falling cost is
held at its value at the nearest step, never extrapolated towards zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from capacity_model.contracts.knee import KneeStep

MIN_POINTS = 2
SATURATED = 0.95           # steps this busy measure a queue, not a request's cost at that load
MEASURED_MARGIN = 0.05     # a ceiling within this of the highest measured utilization counts as measured
EXTRAPOLATION_FLOOR = 0.05  # relative error per 0.1 of utilization extrapolated, at the least


@dataclass(frozen=True)
class DemandAt:
    """CPU-ms per request at one utilization, how sure, and whether it was measured there."""

    utilization: float
    cpu_ms: float
    rel_error: float           # one standard error, relative
    extrapolated: bool
    from_utilization: float    # the highest utilization measured

    @property
    def note(self) -> str:
        if not self.extrapolated:
            return f"measured up to {self.from_utilization:.0%} utilization"
        return (f"extrapolated from {self.from_utilization:.0%} utilization to {self.utilization:.0%} "
                f"(±{self.rel_error:.0%})")


@dataclass(frozen=True)
class LoadDemandFit:
    """d(u) = intercept + slope·u, in CPU-ms per request, over `n` points from u_min to u_max."""

    intercept_ms: float
    slope_ms: float
    se_intercept_ms: float
    se_slope_ms: float
    cov_ms2: float
    n: int
    u_min: float
    u_max: float
    r2: float
    points: tuple[tuple[float, float], ...]  # (utilization, CPU-ms per request) fitted

    def cpu_ms(self, u: float | np.ndarray) -> float | np.ndarray:
        return self.intercept_ms + self.slope_ms * np.asarray(u, dtype=float)

    def at(self, u: float) -> DemandAt:
        # Past the steps a line is followed only where the cost rises (the safe side); a cost that fell
        # with load is held at its value at the last step (and the margin that counts as measured): three quick steps falling 0.38 -> 0.15 CPU-ms
        # from 17% to 47% extrapolated to zero at 70% and sized a link at one node per zone.
        lo, hi = self.u_min - MEASURED_MARGIN, self.u_max + MEASURED_MARGIN  # what counts as measured
        held = min(u, hi) if self.slope_ms < 0 else max(u, lo) if self.slope_ms > 0 else u
        d = float(self.cpu_ms(held))
        var = self.se_intercept_ms ** 2 + (held ** 2) * self.se_slope_ms ** 2 + 2 * held * self.cov_ms2
        rel = float(np.sqrt(max(var, 0.0)) / d) if d > 0 else float("inf")
        extrapolated = u > hi or u < lo
        if extrapolated:
            dist = max(u - self.u_max, self.u_min - u)
            rel = max(rel, EXTRAPOLATION_FLOOR * dist / 0.1)
        return DemandAt(utilization=u, cpu_ms=max(d, 1e-9), rel_error=rel, extrapolated=extrapolated,
                        from_utilization=self.u_max)

    def rps_at(self, u: float, cores: float, idle_cores: float = 0.0) -> float:
        """Requests/s that bring `cores` to utilization u, with this curve's CPU per request there."""
        return max(0.0, u * cores - idle_cores) / (self.at(u).cpu_ms / 1000.0)

    def curve(self, grid: np.ndarray | None = None) -> list[tuple[float, float]]:
        """(utilization, CPU-ms) over a grid, for the report's chart."""
        grid = np.linspace(0.0, 1.0, 21) if grid is None else grid
        return [(float(u), float(self.cpu_ms(u))) for u in grid]


def fit_load_demand(utilization: np.ndarray, cpu_ms: np.ndarray) -> LoadDemandFit:
    """Least squares of CPU-ms per request on utilization, over the points below saturation.
    One point (or one utilization) gives a flat line with the point's own spread unknown (se 0)."""
    u = np.asarray(utilization, dtype=float)
    d = np.asarray(cpu_ms, dtype=float)
    keep = np.isfinite(u) & np.isfinite(d) & (d > 0) & (u > 0) & (u < SATURATED)
    if keep.sum() < 1:
        keep = np.isfinite(u) & np.isfinite(d) & (d > 0)
    u, d = u[keep], d[keep]
    if len(u) == 0:
        raise ValueError("no step measured both a utilization and a CPU per request")
    pts = tuple(zip(map(float, u), map(float, d)))
    if len(u) < MIN_POINTS or np.ptp(u) < 1e-6:
        return LoadDemandFit(float(d.mean()), 0.0, float(d.std(ddof=1)) if len(d) > 1 else 0.0, 0.0, 0.0,
                             len(u), float(u.min()), float(u.max()), 0.0, pts)
    X = np.column_stack([np.ones_like(u), u])
    coef, *_ = np.linalg.lstsq(X, d, rcond=None)
    resid = d - X @ coef
    dof = max(1, len(u) - 2)
    s2 = float(resid @ resid) / dof
    cov = s2 * np.linalg.inv(X.T @ X)
    ss = float(((d - d.mean()) ** 2).sum())
    r2 = 1.0 - float(resid @ resid) / ss if ss > 0 else 1.0
    return LoadDemandFit(float(coef[0]), float(coef[1]), float(np.sqrt(cov[0, 0])), float(np.sqrt(cov[1, 1])),
                         float(cov[0, 1]), len(u), float(u.min()), float(u.max()), r2, pts)


def fit_steps(steps: list[KneeStep]) -> LoadDemandFit:
    """The curve over a knee search's steps (those that measured the target's CPU)."""
    pairs = [(s.utilization, s.cpu_ms_per_request) for s in steps
             if s.utilization is not None and s.cpu_ms_per_request is not None]
    if not pairs:
        raise ValueError("no step measured the target's CPU")
    u, d = map(np.asarray, zip(*pairs))
    return fit_load_demand(u, d)
