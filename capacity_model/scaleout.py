"""Scale-out from measured points: per-node capacity for a node of `node.cores` from what nodes of
several sizes were measured to carry, never linearly by default.

The points are (size, req/s at the ceiling): knee searches at several CPU limits (0.25, 0.5, 1 core),
or at several process counts of the multi-process target. Sizes are put in units of the smallest
measured one (N = size / smallest, so the USL's N = 1 is a measured node), the Universal
Scalability Law is fitted over them (`capacity_model.usl.fit_usl`, the references' NLS fit), and a
node of C cores carries X(C / smallest). What it gives the plan is an *efficiency*: that capacity
over the linear one (C / smallest × the smallest node's measured capacity), which multiplies
`node.speed_vs_measured`. The table of assumptions says which sizes were measured and whether the
night's node lies beyond them (extrapolated); the extrapolation's error (half the gap between the
USL and linear scaling at that size, at least the fit's relative residual) enters the uncertainty.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from capacity_model.contracts import USLFit
from capacity_model.contracts.knee import KneeSearch
from capacity_model.usl import fit_usl, throughput


@dataclass(frozen=True)
class ScaleOut:
    """A node of `cores` against the measured sizes: its capacity, its efficiency, how sure."""

    cores: float
    sizes: tuple[float, ...]          # measured node sizes (cores or processes)
    rps: tuple[float, ...]            # req/s at the ceiling measured at each size
    unit: float                       # the smallest size: the USL's N = 1
    fit: USLFit | None                # None with a single size: linear scaling, said so
    capacity_rps: float               # what a node of `cores` carries at the ceiling
    linear_rps: float                 # ... scaled linearly from the smallest size
    efficiency: float                 # capacity / linear (<= 1 with contention)
    extrapolated: bool                # `cores` beyond the largest measured size
    rel_error: float

    @property
    def note(self) -> str:
        sizes = ", ".join(f"{s:g}" for s in self.sizes)
        if self.fit is None:
            return (f"one node size measured ({sizes}): a node of {self.cores:g} scaled linearly from it "
                    f"(±{self.rel_error:.0%}; measure another size for the USL)")
        where = f"extrapolated beyond {max(self.sizes):g}" if self.extrapolated else "within the measured sizes"
        return (f"USL over node sizes {sizes} (sigma {self.fit.sigma:.3g}, kappa {self.fit.kappa:.3g}, R² "
                f"{self.fit.r2:.2f}): a node of {self.cores:g} carries {self.efficiency:.0%} of linear scaling, "
                f"{where} (±{self.rel_error:.0%})")


SINGLE_SIZE_ERROR = 0.25  # assumed: linear scaling from one size is off by this much, one sigma


def scale_out(sizes, rps, cores: float, measured_at: float | None = None) -> ScaleOut:
    """The capacity of a node of `cores` from measured (size, req/s) points (several at one size: their mean).
    `measured_at`: the node size the plan's demands were measured on (default: the smallest size); the
    efficiency is per core at `cores` over per core there."""
    sizes = np.asarray(sizes, dtype=float)
    rps = np.asarray(rps, dtype=float)
    if len(sizes) == 0 or len(sizes) != len(rps) or (sizes <= 0).any() or (rps <= 0).any():
        raise ValueError("scale_out needs positive (size, req/s) pairs")
    uniq = np.unique(sizes)
    mean = np.array([rps[sizes == s].mean() for s in uniq])
    unit = float(uniq[0])
    n = uniq / unit
    linear = cores / unit * mean[0]
    extrapolated = cores > uniq[-1] * 1.05
    if len(uniq) < 2:
        return ScaleOut(cores, tuple(uniq), tuple(mean), unit, None, linear, linear, 1.0, extrapolated,
                        SINGLE_SIZE_ERROR if extrapolated else 0.0)
    fit = fit_usl(n, mean, axis="nodes")
    per = lambda c: float(throughput(np.array([c / unit]), fit)[0]) / (c / unit)  # noqa: E731 (req/s per unit)
    eff = per(cores) / per(measured_at or unit)
    cap = linear * eff
    resid = float(np.max(np.abs(throughput(n, fit) / mean - 1.0)))
    rel = max(resid, 0.5 * abs(1.0 - eff) if extrapolated else resid)
    return ScaleOut(cores, tuple(uniq), tuple(mean), unit, fit, cap, linear, eff, extrapolated, rel)


def knee_points(searches: list[KneeSearch], mix: str | None = None) -> tuple[list[float], list[float]]:
    """(node size, req/s at the ceiling) from knee searches: per search, the mix named, else the mean over the
    mixes every search measured at the ceiling (like with like across sizes)."""
    bracketed = [{k.mix for k in s.mixes if k.rps_at_ceiling} for s in searches]
    common = set.intersection(*bracketed) if bracketed else set()
    sizes, rps = [], []
    for s in searches:
        size = s.node_cores or float(s.target_processes)
        vals = [k.rps_at_ceiling for k in s.mixes if k.rps_at_ceiling
                and (k.mix == mix if mix is not None else (not common or k.mix in common))]
        if vals:
            sizes.append(float(size))
            rps.append(float(np.mean(vals)))
    return sizes, rps
