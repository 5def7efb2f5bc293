"""The capacity spec's typed model (`capacity_model/specs/gala-2016.yaml` is the default): the night's
peak, the mix, the node shape, the ceiling, budgets, redundancy, the node budget, uncertainty, and
where every figure comes from. `capacity_model.spec` reads the YAML into it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PrivateAttr, model_validator

from capacity_model.contracts.base import Source, _Result, _Spec
from gala.contract.errors import InputError

# Ranges (docs/capacity-model.md, "Ranges"): every float finite; every count small enough that a plan
# cannot overflow or ask for more memory than a machine has. The night's figures sit far inside them.
MAX_PEAK_PER_MIN = 1e13        # 565x the gala's 17.7e9 per minute (~1.7e11 requests/s)
MAX_NODES = 10_000_000         # node budget, N+k spares
MAX_DRAWS = 20_000             # Monte Carlo draws (1,000 is the default; 20,000 plan in ~1 s, +30 MB)
MAX_ZONES = 100
MAX_SEED = 2**32 - 1           # numpy's legacy seeds are 32-bit
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Weight = Annotated[float, Field(ge=0, le=1e6, allow_inf_nan=False)]


class PeakSpec(_Spec):
    """The night's peak demand, all links together."""

    requests_per_min: float = Field(17.7e9, gt=0, le=MAX_PEAK_PER_MIN, allow_inf_nan=False)  # seed: 177亿次/分钟

    @property
    def rate_per_s(self) -> float:
        return self.requests_per_min / 60.0


class MixSpec(_Spec):
    """The mix of links at the peak, per phase.

    `measured`: each phase's per-link rates as the run measured them, scaled so that the phase's
    total over the night's links (the run's critical links, plus any `links` the spec plans) equals
    the peak; non-critical links (the rehearsal's set-up traffic) are not part of the night. The
    night is assumed to peak in any one of the phases, so every phase is sized for. `declared`: `phases` gives, per phase,
    each link's fraction of the peak (fractions in [0, 1], summing to at most 1; the rest goes to
    links that are not planned).
    """

    source: Literal["measured", "declared"] = "measured"
    phases: dict[str, dict[str, Fraction]] | None = None

    @model_validator(mode="after")
    def _check(self) -> "MixSpec":
        if self.source == "declared":
            if not self.phases:
                raise ValueError("expected `phases: {phase: {link: fraction}}` for a declared mix")
            for phase, shares in self.phases.items():
                if not shares:
                    raise ValueError(f"expected at least one link in phase {phase!r}")
                bad = {k: v for k, v in shares.items() if not (0.0 <= v <= 1.0)}
                if bad:
                    raise ValueError(f"expected fractions in [0, 1] in phase {phase!r}, got {bad}")
                if sum(shares.values()) > 1.0 + 1e-9 or sum(shares.values()) <= 0:
                    raise ValueError(f"expected phase {phase!r}'s fractions to sum to more than 0 and "
                                     f"at most 1, got {sum(shares.values()):g}")
        return self


class NodeSpec(_Spec):
    """The shape of one node on the night, relative to the machine that measured the run."""

    cores: int = Field(32, gt=0, le=4096)  # assumed: the account gives no server shape
    speed_vs_measured: float = Field(1.0, ge=0.001, le=1000, allow_inf_nan=False)  # 2.0 = a core does a request in half the CPU-seconds
    # the node's rating in the speed reference's units (loadtests/orchestrator/speed.py, work units per
    # CPU-second): when given, speed_vs_measured defaults to it over the measuring machine's own reference
    speed_units_per_cpu_s: float | None = Field(None, gt=0, le=1e9, allow_inf_nan=False)
    # the same rating while serving, as the built-in target measures it through a run (link_cpu.csv `_speed`):
    # with runs that sampled it, speed_vs_measured defaults to it over their in-run speed (it wins over the above)
    loaded_speed_units_per_cpu_s: float | None = Field(None, gt=0, le=1e9, allow_inf_nan=False)
    # per-node: a balancer spreads a link's requests evenly; each node queues on its own cores (M/M/cores).
    # pooled: one queue over every core of the pool (M/M/(nodes*cores)), an optimistic bound.
    queue: Literal["per-node", "pooled"] = "per-node"


class LatencyBudget(_Spec):
    """A link's latency budget: the `percentile` (in percent, e.g. 99) must stay within `latency_ms`."""

    percentile: float = Field(gt=0, lt=100, allow_inf_nan=False)
    latency_ms: float = Field(gt=0, le=3_600_000, allow_inf_nan=False)  # at most an hour

    @property
    def quantile(self) -> float:
        return self.percentile / 100.0


class RedundancySpec(_Spec):
    """Spare capacity: `n_plus: k` adds k nodes to each pool; or `zones: Z` spreads each pool over Z
    zones, and with `survive_zone_loss` the other Z-1 zones alone must carry the peak
    (nodes per zone = ceil(n / (Z-1)), total = Z * that)."""

    n_plus: int = Field(0, ge=0, le=MAX_NODES)
    zones: int = Field(1, ge=1, le=MAX_ZONES)
    survive_zone_loss: bool = False

    @model_validator(mode="after")
    def _check(self) -> "RedundancySpec":
        if self.survive_zone_loss and self.zones < 2:
            raise ValueError("expected zones >= 2 with survive_zone_loss")
        if self.n_plus and self.zones > 1:
            raise ValueError("expected either n_plus or zones, not both")
        return self


class UncertaintySpec(_Spec):
    """Monte Carlo over the fitted demands (their standard errors), the peak and declared link intervals."""

    draws: int = Field(1000, ge=0, le=MAX_DRAWS)  # 0: no Monte Carlo
    peak_cv: float = Field(0.1, ge=0, le=10, allow_inf_nan=False)  # assumed: coefficient of variation of the peak (lognormal)
    # link -> [low, high]: that link's peak rate is multiplied by a factor drawn uniformly in it.
    link_rate_intervals: dict[str, tuple[Annotated[float, Field(ge=0, le=1000, allow_inf_nan=False)],
                                         Annotated[float, Field(ge=0, le=1000, allow_inf_nan=False)]]] = Field(
        default_factory=dict)
    seed: int = Field(2016, ge=0, le=MAX_SEED)

    @model_validator(mode="after")
    def _check(self) -> "UncertaintySpec":
        for link, (lo, hi) in self.link_rate_intervals.items():
            if not (0 <= lo <= hi):
                raise ValueError(f"expected 0 <= low <= high in link_rate_intervals.{link}, got [{lo}, {hi}]")
        return self


class IdentificationSpec(_Spec):
    """When a link's demand counts as identified (issue 10): the plan never sizes a link above this."""

    # a link whose demand's relative standard error exceeds this is refused, named, with the run that would fix it
    max_relative_error: float = Field(0.25, gt=0, le=100, allow_inf_nan=False)


class GrabOnlySpec(_Spec):
    """The 1 February what-if: a plan made for a grab-only mix, held against the measured mix.

    The grab-only mix is `declared` (link -> fraction of the peak) if given, else the measured mix of
    `phases` (default: the phase in which `link` has its largest share of the traffic)."""

    link: str = "grab"
    phases: list[str] | None = None
    declared: dict[str, Fraction] | None = None


# Seed and assumption notes for the defaults; `CapacitySpec.assumptions()` reports them.
_DEFAULT_SOURCES: dict[str, tuple[Source, str]] = {
    "peak.requests_per_min": ("seed", "17.7 billion interaction requests per minute (295e6/s)"),
    "node_budget": ("seed", "about 10,000 servers re-allocated within a week"),
    "node.cores": ("assumed", "the account gives no server shape"),
    "node.speed_vs_measured": ("assumed", "a night-time core is as fast as the measuring machine's"),
    "utilization_ceiling": ("assumed", "headroom for bursts inside a second"),
    "latency_budgets": ("assumed", "the account gives no latency figures"),
    "redundancy": ("assumed", "the account gives no redundancy scheme"),
    "uncertainty.peak_cv": ("assumed", "spread of the night's peak around its estimate"),
}


class CapacitySpec(_Spec):
    """The capacity spec (`capacity_model/specs/gala-2016.yaml` is the default)."""

    peak: PeakSpec = Field(default_factory=PeakSpec)
    mix: MixSpec = Field(default_factory=MixSpec)
    node: NodeSpec = Field(default_factory=NodeSpec)
    utilization_ceiling: float = Field(0.7, gt=0, le=1, allow_inf_nan=False)
    latency_budgets: dict[str, LatencyBudget] = Field(default_factory=dict)
    redundancy: RedundancySpec = Field(default_factory=RedundancySpec)
    node_budget: int = Field(10_000, gt=0, le=MAX_NODES)
    # link -> the services (CPU-measured processes) it passes through; None: those with a fitted demand.
    services: dict[str, list[str]] | None = None
    uncertainty: UncertaintySpec = Field(default_factory=UncertaintySpec)
    identification: IdentificationSpec = Field(default_factory=IdentificationSpec)
    grab_only: GrabOnlySpec = Field(default_factory=GrabOnlySpec)
    # which links to plan; None: the run's critical links.
    links: list[str] | None = None
    # link -> weight of its relative shortfall when the budget cannot cover every link (default 1).
    priorities: dict[str, Weight] = Field(default_factory=dict)
    # field path -> where its figure comes from, overriding the defaults' notes.
    sources: dict[str, Source] = Field(default_factory=dict)

    _origin: str | None = PrivateAttr(default=None)
    _lines: dict[tuple, int] = PrivateAttr(default_factory=dict)

    def where(self, *path: str | int) -> str:
        """`file:LINE: a.b.c` for a field of this spec (as precise as the YAML allows), for error messages."""
        dotted = ".".join(str(p) for p in path)
        if not self._origin:
            return f"spec: {dotted}"
        for n in range(len(path), -1, -1):
            if tuple(path[:n]) in self._lines:
                return f"{self._origin}:{self._lines[tuple(path[:n])]}: {dotted}"
        return f"{self._origin}: {dotted}"

    def error(self, *path: str | int, expected: str) -> InputError:
        return InputError(f"{self.where(*path)}: expected {expected}")

    def assumptions(self) -> list["Assumption"]:
        """Every figure of the spec with where it comes from: seed, assumed, or this spec's author."""
        default = CapacitySpec()
        rows = [
            ("peak.requests_per_min", f"{self.peak.requests_per_min:.4g} req/min "
                                      f"({self.peak.rate_per_s:.4g} req/s)", self.peak == default.peak),
            ("mix.source", self.mix.source, None),
            ("node.cores", str(self.node.cores), self.node.cores == default.node.cores),
            ("node.speed_vs_measured", f"{self.node.speed_vs_measured:g}",
             self.node.speed_vs_measured == default.node.speed_vs_measured),
            ("node.queue", self.node.queue, None),
            ("utilization_ceiling", f"{self.utilization_ceiling:g}",
             self.utilization_ceiling == default.utilization_ceiling),
            ("latency_budgets", ", ".join(f"{k} p{b.percentile:g} <= {b.latency_ms:g} ms"
                                          for k, b in self.latency_budgets.items()) or "none", True),
            ("redundancy", _describe_redundancy(self.redundancy), True),
            ("node_budget", f"{self.node_budget} nodes", self.node_budget == default.node_budget),
            ("uncertainty.peak_cv", f"{self.uncertainty.peak_cv:g}", True),
        ]
        out = []
        for name, value, is_default in rows:
            if name in self.sources:
                src, note = self.sources[name], ""
            elif name == "mix.source":
                src, note = ("run", "per-phase rates measured by the run, scaled to the peak") \
                    if self.mix.source == "measured" else ("spec", "declared per-phase fractions")
            elif name in _DEFAULT_SOURCES and is_default:
                src, note = _DEFAULT_SOURCES[name]
            else:
                src, note = "spec", "set in the capacity spec"
            out.append(Assumption(figure=name, value=value, source=src, note=note))
        return out


def _describe_redundancy(r: RedundancySpec) -> str:
    if r.zones > 1:
        return f"{r.zones} zones" + (", survive the loss of one" if r.survive_zone_loss else "")
    return f"N+{r.n_plus}"


class Assumption(_Result):
    """One figure a plan rests on, and where it comes from."""

    figure: str
    value: str
    source: Source
    note: str = ""


