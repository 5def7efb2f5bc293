"""The plan's charts as PNG bytes (matplotlib's Agg canvas, no pyplot state, no display needed).

Four charts: nodes per link; utilization per phase against the ceiling; predicted latency against
each link's budget; the 1 February what-if matrix. Each takes a `Plan` and returns PNG bytes, or
None when the plan has nothing to draw.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from capacity_model.contracts import Plan, WhatIf

DPI = 100
OVER = "#c0392b"
OK = "#2e86c1"
MUTED = "#95a5a6"


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _figure(width: float = 7.0, height: float = 3.6) -> tuple[Figure, object]:
    fig = Figure(figsize=(width, height))
    return fig, fig.add_subplot(1, 1, 1)


def nodes_per_link(plan: Plan) -> bytes | None:
    """Allocated nodes per link (bars), required nodes (ticks) and the Monte Carlo p5-p95 range."""
    a = plan.allocation
    if not a.links:
        return None
    links = [x.link for x in a.links]
    got = np.array([x.nodes for x in a.links], dtype=float)
    need = np.array([x.required_nodes for x in a.links], dtype=float)
    fig, ax = _figure()
    pos = np.arange(len(links))
    ax.bar(pos, got, color=[OVER if g < n else OK for g, n in zip(got, need)], label="allocated")
    ax.scatter(pos, need, marker="_", s=900, color="black", zorder=3, label="required")
    if plan.uncertainty is not None:
        q = [plan.uncertainty.links.get(l) for l in links]
        have = [i for i, x in enumerate(q) if x is not None]
        if have:
            lo = np.array([q[i].p5 for i in have])
            mid = np.array([q[i].p50 for i in have])
            hi = np.array([q[i].p95 for i in have])
            ax.errorbar(pos[have], mid, yerr=[mid - lo, hi - mid], fmt="none", ecolor=MUTED, capsize=6,
                        label="p5-p95 (Monte Carlo)")
    top = max(float(got.max()), float(need.max()), 1.0)
    for p, g in zip(pos, got):
        # the count sits inside its bar, clear of the required tick and the p5-p95 whisker
        ax.text(p, g / 2 if g > 0.12 * top else g, f"{int(g):,}", ha="center",
                va="center" if g > 0.12 * top else "bottom", fontsize=9, color="white" if g > 0.12 * top else "black")
    ax.set_xticks(pos, links)
    ax.set_xlabel("link")
    ax.set_ylabel("nodes (count)")
    ax.set_ylim(0, top * 1.35)
    ax.set_title(f"Nodes per link: {a.total_nodes:,} of a {a.node_budget:,}-node budget")
    ax.legend(loc="upper right", fontsize=8, ncol=3)
    return _png(fig)


def _phase_frame(plan: Plan, field: str) -> pd.DataFrame:
    """Phases x links of one PhaseLoad field, from the plan's sizing."""
    data = {s.link: {p.phase: getattr(p, field) for p in s.phases} for s in plan.sizing}
    return pd.DataFrame(data, dtype=float)


def _grouped_bars(ax, frame: pd.DataFrame) -> np.ndarray:
    """Draw phases x links as grouped bars (one group per link); return each link's bar centres."""
    links, phases = list(frame.columns), list(frame.index)
    pos = np.arange(len(links))
    width = 0.8 / max(len(phases), 1)
    for i, phase in enumerate(phases):
        ax.bar(pos - 0.4 + width * (i + 0.5), frame.loc[phase].fillna(0.0).to_numpy(), width, label=phase)
    ax.set_xticks(pos, links)
    return pos


def _legend_outside(ax) -> None:
    # beside the axes, so it never hides a bar whatever the data
    ax.legend(title="phase", fontsize=8, title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def utilization_per_phase(plan: Plan) -> bytes | None:
    """Utilization of each link's pool in each phase at the peak, against the ceiling."""
    frame = _phase_frame(plan, "utilization")
    if frame.empty:
        return None
    fig, ax = _figure()
    _grouped_bars(ax, frame)
    ax.axhline(plan.spec.utilization_ceiling, color=OVER, linestyle="--", linewidth=1,
               label=f"ceiling {plan.spec.utilization_ceiling:.0%}")
    ax.set_ylabel("utilization (% of the nodes' CPU)")
    ax.set_xlabel("link")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylim(0, max(1.0, float(np.nanmax(frame.to_numpy())) * 1.1))
    ax.set_title("Utilization per phase at the peak (planned nodes)")
    _legend_outside(ax)
    return _png(fig)


def latency_against_budget(plan: Plan) -> bytes | None:
    """Predicted latency percentile per link and phase, with each link's budget as a red tick."""
    frame = _phase_frame(plan, "latency_ms")
    budgets = {s.link: s.budget for s in plan.sizing if s.budget is not None}
    if frame.empty or frame.isna().all().all():
        return None
    fig, ax = _figure()
    pos = _grouped_bars(ax, frame)
    for p, link in zip(pos, frame.columns):
        b = budgets.get(link)
        if b is not None:
            ax.hlines(b.latency_ms, p - 0.45, p + 0.45, color=OVER, linewidth=2)
            ax.annotate(f"p{b.percentile:g} <= {b.latency_ms:g} ms", (p, b.latency_ms), ha="center",
                        va="bottom", fontsize=8, color=OVER)
    top = max([float(np.nanmax(frame.to_numpy()))] + [b.latency_ms for b in budgets.values()])
    ax.set_ylim(0, top * 1.15)
    ax.set_ylabel("predicted latency (ms)")
    ax.set_xlabel("link")
    ax.set_title("Predicted latency percentile against the budget (red: budget)")
    _legend_outside(ax)
    return _png(fig)


_HEAT = LinearSegmentedColormap.from_list("headroom", ["#d5f5e3", "#f9e79f", "#f5b041", "#c0392b"])


def whatif_matrix(whatif: WhatIf) -> bytes | None:
    """Links x phases utilization of a plan held against another mix; overloaded cells marked."""
    data = {h.link: {p.phase: p.utilization for p in h.phases} for h in whatif.links}
    frame = pd.DataFrame(data, dtype=float).T
    if frame.empty:
        return None
    fig, ax = _figure(7.0, 1.4 + 0.6 * len(frame))
    shown = np.clip(frame.to_numpy(), 0.0, 2.0)
    image = ax.imshow(shown, cmap=_HEAT, vmin=0.0, vmax=2.0, aspect="auto")
    # the key: colour = utilization of the link's nodes, the ceiling marked; past 100% the link is overloaded
    key = fig.colorbar(image, ax=ax, fraction=0.05, pad=0.02, format=PercentFormatter(1.0))
    key.set_label("utilization (%)", fontsize=8)
    key.ax.axhline(whatif.utilization_ceiling, color="black", linewidth=1)
    key.ax.tick_params(labelsize=7)
    ax.set_xticks(np.arange(frame.shape[1]), list(frame.columns))
    labels = [f"{l} ({h.nodes:,} nodes){'  OVERLOADED' if h.overloaded else ''}"
              for l, h in zip(frame.index, whatif.links)]
    ax.set_yticks(np.arange(frame.shape[0]), labels)
    for (i, j), u in np.ndenumerate(frame.to_numpy()):
        text = "n/a" if np.isnan(u) else f"{u:.0%}"
        ax.text(j, i, text, ha="center", va="center", fontsize=9,
                color="white" if u > whatif.utilization_ceiling * 1.5 else "black")
    ax.set_xlabel("phase")
    ax.set_title(f"What-if: the {whatif.plan_mix} plan\nheld against the {whatif.held_against} (utilization)",
                 fontsize=10)
    return _png(fig)


def all_charts(plan: Plan) -> dict[str, tuple[str, bytes]]:
    """name -> (caption, PNG bytes) of every chart the plan can draw."""
    made = {
        "nodes": ("Nodes per link", nodes_per_link(plan)),
        "utilization": ("Utilization per phase", utilization_per_phase(plan)),
        "latency": ("Predicted latency against the budget", latency_against_budget(plan)),
        "whatif": ("The 1 February what-if", whatif_matrix(plan.feb1)),
    }
    return {k: (c, png) for k, (c, png) in made.items() if png is not None}
