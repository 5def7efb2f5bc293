"""The plan's report: `report.md`, a self-contained `report.html`, `allocation.csv` and `plan.json`.

The report is built once as blocks (gala.contract.document) section by section, and rendered as
Markdown (charts as PNG files beside it, under `charts/`) and as one self-contained HTML page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from capacity_model import charts
from capacity_model.contracts import Measurements, Plan
from capacity_model.probe import ProbeResult
from capacity_model.moves import moves_frame
from capacity_model.summary import (identification_blocks, reallocation_blocks, sensitivity_section,
                                    summary_section, whatif_verdict)
from capacity_model.validate import Validation
from gala.contract.atomic import write_bytes_atomic, write_csv_atomic, write_text_atomic
from gala.contract.document import (Block, Bullets, Chart, Heading, Para, Table, ms, num, pct, render_html,
                                    render_markdown)


@dataclass
class ReportInputs:
    """What the report tells besides the plan: the runs behind it and how black-box links were measured."""

    run_paths: list[Path]
    measurements: Measurements
    probes: dict[str, ProbeResult] = field(default_factory=dict)
    validation: Validation | None = None  # `gala plan --validate RUN`: the model against that run
    extra: list = field(default_factory=list)  # more blocks before the assumptions (capacity_model.operating)


def _runs_section(plan: Plan, inputs: ReportInputs) -> list[Block]:
    m = inputs.measurements
    items = [f"{rid} ({path})" for rid, path in zip(plan.run_ids, inputs.run_paths)]
    blocks: list[Block] = [Heading("Runs"), Para(f"Planned from {len(items)} run(s), measured on "
                                                  f"{m.measured_nodes} target node(s) of "
                                                  f"{num(m.measured_cores_per_node)} core(s):"), Bullets(items)]
    warnings = [n for n in m.notes if any(w in n for w in ("interrupted", "saturated", "degraded", "audit"))]
    if warnings:
        blocks += [Para("Warnings about the runs:"), Bullets(warnings)]
    return blocks


def _allocation_frame(plan: Plan) -> pd.DataFrame:
    sizing = {s.link: s for s in plan.sizing}
    rows = []
    for a in plan.allocation.links:
        s = sizing.get(a.link)
        q = plan.uncertainty.links.get(a.link) if plan.uncertainty else None
        rows.append({
            "link": a.link,
            "method": plan.methods.get(a.link, "cpu-demand"),
            "required_nodes": a.required_nodes,
            "nodes": a.nodes,
            "shortfall_nodes": a.shortfall_nodes,
            "shortfall_ratio": round(a.shortfall_ratio, 4),
            "binding": s.binding if s else "",
            "nodes_for_utilization": s.nodes_for_utilization if s else None,
            "nodes_for_latency": s.nodes_for_latency if s else None,
            "nodes_before_redundancy": s.nodes_before_redundancy if s else None,
            "nodes_per_zone": " ".join(map(str, a.nodes_per_zone)) if a.nodes_per_zone else "",
            "p5_nodes": round(q.p5, 1) if q else None,
            "p50_nodes": round(q.p50, 1) if q else None,
            "p95_nodes": round(q.p95, 1) if q else None,
        })
    return pd.DataFrame(rows)


def _nodes_section(plan: Plan, pngs: dict) -> list[Block]:
    a = plan.allocation
    frame = _allocation_frame(plan)
    shown = frame[["link", "method", "required_nodes", "nodes", "shortfall_nodes", "binding", "nodes_per_zone"]].rename(
        columns={"required_nodes": "required", "nodes": "allocated", "shortfall_nodes": "short by",
                 "binding": "bound by", "nodes_per_zone": "per zone"})
    text = (f"{a.total_nodes:,} nodes of a {a.node_budget:,}-node budget ({a.required_nodes:,} required; "
            f"solver: {a.solver_status or 'n/a'}).")
    if not a.feasible:
        text += " The budget cannot cover every link: " + "; ".join(
            f"{x.link} is short by {x.shortfall_nodes:,} nodes ({x.shortfall_ratio:.0%} of what it needs)"
            for x in a.links if x.shortfall_nodes > 0) + "."
    blocks: list[Block] = [Heading("Nodes per link"), Para(text), Table(shown)]
    if plan.uncertainty is not None:
        u = plan.uncertainty
        q = pd.DataFrame([{"link": k, "p5": v.p5, "p50": v.p50, "p95": v.p95} for k, v in u.links.items()]
                         + [{"link": "total", "p5": u.total.p5, "p50": u.total.p50, "p95": u.total.p95}]).round(1)
        scope = ("the demands' errors include the spread between the runs planned together" if u.between_runs
                 else "within-run only: one run's own error, not what varies between runs")
        blocks += [Para(f"Uncertainty ({u.draws} Monte Carlo draws: demands within their standard "
                        f"errors, the peak lognormal with CV {u.peak_cv:g}; {scope}); the total exceeds the budget in "
                        f"{u.p_over_budget:.0%} of the draws:"), Table(q)]
    blocks += _chart(pngs, "nodes")
    return blocks


def _chart(pngs: dict, name: str) -> list[Block]:
    if name not in pngs:
        return []
    caption, png = pngs[name]
    return [Chart(name, caption, png)]


def _load_section(plan: Plan, pngs: dict) -> list[Block]:
    mix = plan.mix.frame().round(0).rename_axis("phase")
    util = pd.DataFrame({s.link: {p.phase: pct(p.utilization) for p in s.phases} for s in plan.sizing}
                        ).rename_axis("phase")
    return [
        Heading("Load per phase at the peak"),
        Para(f"Requests per second per link in each phase, the night's peak ({plan.peak_rate_per_s:,.0f} req/s) "
             f"spread by the {plan.mix.source} mix:"),
        Table(mix, index=True),
        Para(f"Utilization of each link's nodes in each phase (ceiling {plan.spec.utilization_ceiling:.0%}):"),
        Table(util, index=True),
        *_chart(pngs, "utilization"),
    ]


def _latency_section(plan: Plan, pngs: dict) -> list[Block]:
    rows = []
    for s in plan.sizing:
        worst = max((p.latency_ms for p in s.phases if p.latency_ms is not None), default=None)
        rows.append({
            "link": s.link,
            "budget": f"p{s.budget.percentile:g} <= {s.budget.latency_ms:g} ms" if s.budget else "none",
            "measured low-load": ms(s.base_latency_ms),
            "predicted (worst phase)": ms(worst),
            "within budget": "n/a" if s.budget is None or worst is None else
                             ("yes" if worst <= s.budget.latency_ms else "NO"),
            "feasible": "yes" if s.latency_feasible else "NO: the budget is below the measured low-load latency",
        })
    return [Heading("Latency against the budget"), Table(pd.DataFrame(rows)), *_chart(pngs, "latency")]


def _method_section(plan: Plan, inputs: ReportInputs) -> list[Block]:
    blocks: list[Block] = [Heading("How each link was measured")]
    blocks.append(Bullets([
        f"{link}: {plan.methods.get(link, 'cpu-demand')} from runs {', '.join(plan.run_ids)}"
        if link not in inputs.probes else
        f"{link}: black-box (step-load knee) from runs {', '.join(dict.fromkeys(inputs.probes[link].steps['run_id']))}"
        for link in plan.links
    ]))
    d = plan.demand
    if d is not None:
        demand = d.demand_frame() * 1000.0
        se = d.standard_error_frame() * 1000.0
        table = (demand.round(4).astype(str) + " ± " + se.round(4).astype(str)).rename_axis("link")
        fit = pd.DataFrame({"R²": d.r2, "residual std (cores)": d.residual_std_cores,
                            "idle cores (U0)": d.baseline_busy_cores}).round(4).rename_axis("service")
        blocks += [
            Heading("Service demand (CPU-ms per request)", 3),
            Para(f"Per link: the target's own CPU per link where it attributes it (link_cpu.csv: the CPU it "
                 f"charged the link per request plus its share of the rest, each interval at its own core speed where "
                 f"the target sampled it), else non-negative "
                 f"least squares over {d.windows} windows of {d.window_s:g} s: busy cores of each target service "
                 f"= idle + Σ req/s × demand, the idle measured before the load where the run did "
                 f"({', '.join(s for s, v in d.idle_measured.items() if v) or 'none'}), else fitted within "
                 f"[0, the quietest windows]. Condition number of the scaled design: {d.condition_number:.3g}; "
                 f"± is the standard error (block bootstrap, {d.bootstrap_draws} draws, or the attribution's; "
                 "plus the spread between runs when several)."),
            Table(table, index=True),
            Table(fit, index=True),
            *identification_blocks(plan),
        ]
        if d.unidentifiable:
            blocks.append(Para("The runs' mix never varied enough to separate: " + "; ".join(
                f"{a} from {b}" for a, b in d.unidentifiable) + ". Their demands are not trustworthy on their "
                "own; a run whose phases move these links apart would separate them."))
    for link, res in inputs.probes.items():
        cols = ["run_id", "phase", "nodes", "rps", "achieved_ratio", "good_rps", "latency_ms", "error_ratio", "within"]
        steps = res.steps[cols].copy()
        steps["within"] = steps["within"].map({True: "yes", False: "no"})
        blocks += [Heading(f"Step-load knee of {link}", 3), Para(res.note), Table(steps.round(3))]
    if plan.usl:
        usl = pd.DataFrame({k: {"axis": v.axis, "sigma": v.sigma, "kappa": v.kappa, "lambda (req/s)": v.lambda_rps,
                                "R²": v.r2, "points": v.n_points, "N at peak": v.n_star,
                                "peak req/s": v.x_max_rps} for k, v in plan.usl.items()}).T.rename_axis("link")
        blocks += [Heading("Universal Scalability Law", 3),
                   Para("X(N) = λN / (1 + σ(N−1) + κN(N−1)), fitted with σ, κ, λ ≥ 0:"),
                   Table(usl, index=True)]
    return blocks


def _whatif_section(plan: Plan, pngs: dict) -> list[Block]:
    w = plan.feb1
    rows = [{
        "link": h.link, "nodes (grab-only plan)": h.nodes, "worst utilization": pct(h.worst_utilization),
        "worst predicted latency": ms(h.worst_latency_ms),
        "budget": f"p{h.budget.percentile:g} <= {h.budget.latency_ms:g} ms" if h.budget else "none",
        "overloaded": "YES" if h.overloaded else "no", "why": h.reason,
    } for h in w.links]
    return [
        Heading("The 1 February what-if"),
        Para(f"On 1 February the team had planned for users who only grab; real users shared in bursts and "
             f"chatted while sharing. Here a plan made for the {w.plan_mix} mix "
             f"({plan.grab_only_allocation.total_nodes:,} nodes) is held against {w.held_against}: "
             f"{whatif_verdict(w)}."),
        Table(pd.DataFrame(rows)),
        *_chart(pngs, "whatif"),
        *reallocation_blocks(plan),
    ]


def validation_blocks(v: Validation, level: int = 2) -> list[Block]:
    """The model against a run at a known allocation: CPU and latency, predicted vs measured."""
    t = v.tolerance
    blocks: list[Block] = [
        Heading(f"Validation against {v.validated_run_id}", level),
        Para(f"{v.headline()}. The demands and idle cores fitted on {', '.join(v.model_run_ids)} predict, at the "
             f"per-link rates {v.validated_run_id} measured in each phase, its target's busy cores "
             f"(U0 × {v.baseline_scale:g} + Σ req/s × demand) on its allocation of {v.allocation_nodes} node(s), "
             f"{num(v.allocation_cores)} core(s); and each planned link's percentile (measured low-load "
             f"percentile + M/M/c waiting time on those cores). Tolerance: CPU within max({t.cpu_cores:g} cores, "
             f"{t.cpu_relative:.0%}, {t.cpu_sigmas:g} standard errors of the difference), latency within "
             f"max({t.latency_ms:g} ms, {t.latency_relative:.0%}). "
             "The verdict does not change the plan's exit code."),
        Table(cpu_frame(v)),
    ]
    if v.links:
        blocks += [Para("Each link's CPU per request, the plan's against the validated run's own (its target's "
                        "attribution, else its regression): a right total with a wrong split fails here:"),
                   Table(link_frame(v))]
    if v.latency:
        blocks.append(Table(latency_frame(v)))
    if v.extrapolation:
        blocks += [Para("Extrapolation: the validated run's mix lies outside what the model's fit saw:"),
                   Bullets(v.extrapolation)]
    if v.notes:
        blocks.append(Bullets(v.notes))
    return blocks


def _assumptions_section(plan: Plan) -> list[Block]:
    frame = pd.DataFrame([a.model_dump() for a in plan.assumptions])[["figure", "value", "source", "note"]]
    return [Heading("Assumptions"), Para("Which figures come from the seed (the public account of the night), "
                                         "which from the run, which are assumed or set in the spec (change "
                                         "them in the spec):"),
            Table(frame)]


def build(plan: Plan, inputs: ReportInputs) -> list[Block]:
    """Every block of the report, in reading order."""
    pngs = charts.all_charts(plan)
    notes = list(dict.fromkeys([*plan.notes, *inputs.measurements.notes]))
    blocks: list[Block] = [
        Heading(f"Capacity plan: {plan.peak_rate_per_s:,.0f} requests/s over {len(plan.links)} critical links", 1),
        *summary_section(plan, inputs),
        *_runs_section(plan, inputs),
        *_nodes_section(plan, pngs),
        *sensitivity_section(plan),
        *_load_section(plan, pngs),
        *_latency_section(plan, pngs),
        *_whatif_section(plan, pngs),
        *_method_section(plan, inputs),
        *(validation_blocks(inputs.validation) if inputs.validation is not None else []),
        *inputs.extra,
        *_assumptions_section(plan),
    ]
    if notes:
        blocks += [Heading("Notes"), Bullets(notes)]
    return blocks


# ---------------------------------------------------------------------------- files

def allocation_csv(plan: Plan) -> pd.DataFrame:
    return _allocation_frame(plan)


def write_report(plan: Plan, inputs: ReportInputs, out_dir: Path) -> Path:
    """Write report.md (+ charts/*.png), report.html, allocation.csv and plan.json; return report.html's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    blocks = build(plan, inputs)
    chart_dir = out_dir / "charts"
    chart_dir.mkdir(exist_ok=True)
    for b in blocks:
        if isinstance(b, Chart):
            write_bytes_atomic(chart_dir / f"{b.name}.png", b.png)
    write_text_atomic(out_dir / "report.md", render_markdown(blocks))
    title = blocks[0].text if isinstance(blocks[0], Heading) else "capacity plan"
    write_text_atomic(out_dir / "report.html", render_html(blocks, title))
    write_csv_atomic(out_dir / "allocation.csv", allocation_csv(plan))
    if plan.reallocation is not None:
        write_csv_atomic(out_dir / "moves.csv", moves_frame(plan.reallocation))
    if inputs.validation is not None:
        v = inputs.validation
        write_text_atomic(out_dir / "validation.md", render_markdown(validation_blocks(v, 1)))
        write_text_atomic(out_dir / "validation.json", v.model_dump_json(indent=2))
    # last: plan.json's presence says the plan folder is whole
    write_text_atomic(out_dir / "plan.json", plan.model_dump_json(indent=2))
    return out_dir / "report.html"


# The validation's checks as tables for people (the report's and validation.md's).

def link_frame(v: Validation) -> pd.DataFrame:
    return pd.DataFrame([{
        "link": c.link, "plan CPU-ms/req": f"{c.model_cpu_s * 1e3:.4g} ± {c.model_se_cpu_s * 1e3:.2g}",
        f"{v.validated_run_id} CPU-ms/req": f"{c.observed_cpu_s * 1e3:.4g} ± {c.observed_se_cpu_s * 1e3:.2g} "
                                            f"({c.observed_source})",
        "error": "n/a" if c.relative_error is None else f"{c.relative_error:+.0%}",
        "tolerance": f"±{c.tolerance_cpu_s * 1e3:.2g} CPU-ms", "verdict": "pass" if c.passed else "FAIL",
    } for c in v.links])


def cpu_frame(v: Validation) -> pd.DataFrame:
    return pd.DataFrame([{
        "phase": c.phase, "service": c.service, "seconds": c.windows,
        "predicted cores": f"{c.predicted_cores:.3f} ± {c.predicted_se_cores:.3f}",
        "measured cores": f"{c.measured_cores:.3f} ± {c.measured_se_cores:.3f}",
        "predicted / measured util.": f"{c.predicted_utilization:.0%} / {c.measured_utilization:.0%}",
        "error": f"{c.error_cores:+.3f}" + (f" ({c.relative_error:+.0%})" if c.relative_error is not None else ""),
        "tolerance": f"±{c.tolerance_cores:.3f}", "verdict": "pass" if c.passed else "FAIL",
    } for c in v.cpu])


def latency_frame(v: Validation) -> pd.DataFrame:
    def ms(x):
        return "n/a" if x is None else f"{x:.1f}"
    return pd.DataFrame([{
        "phase": c.phase, "link": c.link, "percentile": f"p{c.percentile:g}", "req/s": round(c.rate_per_s, 1),
        "model util.": f"{c.utilization:.0%}", "predicted ms": ms(c.predicted_ms), "measured ms": ms(c.measured_ms),
        "error": "n/a" if c.error_ms is None else f"{c.error_ms:+.1f} ms",
        "verdict": {True: "pass", False: "FAIL", None: f"n/a: {c.why}"}[c.passed],
    } for c in v.latency], columns=["phase", "link", "percentile", "req/s", "model util.", "predicted ms",
                                    "measured ms", "error", "verdict"])
