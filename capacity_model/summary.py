"""The plan's opening in plain words and the figures a planner acts on: the headline and verdict, nodes
per link and how sure, what the plan rests on, the assumption that matters most, the sensitivity table,
which links are not sized and why, and the week's re-allocation. `capacity_model.report` places these
blocks in the report.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from capacity_model.contracts import Plan, WhatIf
from gala.contract.document import Block, Bullets, Heading, Para, Table, num, pct

if TYPE_CHECKING:
    from capacity_model.report import ReportInputs


def whatif_verdict(w: WhatIf) -> str:
    over = w.overloaded_links
    verdict = f"overloads {' and '.join(over)}" if over else "overloads no link"
    return f"the {w.plan_mix} plan, held against the {w.held_against}, {verdict}"


def headline(plan: Plan, report_path: Path | None = None) -> str:
    """A few lines: nodes per link, total against the budget, the verdict, the 1 February verdict."""
    a = plan.allocation
    lines = [plan.headline()]
    if plan.verdict is not None:
        lines.append(f"verdict: {plan.verdict.kind}: {plan.verdict.reason}")
    for r in plan.identification:
        if not r.identified:
            lines.append(f"not sized: {r.link}: {r.reason}; to size it: {r.fix}")
    if not a.feasible:
        short = "; ".join(f"{x.link} short by {x.shortfall_nodes:,} nodes ({x.shortfall_ratio:.0%})"
                          for x in a.links if x.shortfall_nodes > 0)
        lines.append(f"budget: {a.node_budget:,} nodes cannot cover every link: {short}")
    lines.append(f"1 February what-if: {whatif_verdict(plan.feb1)}")
    if report_path is not None:
        lines.append(f"report: {report_path}")
    return "\n".join(lines)


def rests_on(plan: Plan, inputs: ReportInputs) -> str:
    m = inputs.measurements
    runs = [r for r in run_infos(inputs)]
    builtin = any(r.target.builtin for r in runs)
    target = ("the built-in demo target (gala's own Python service: it does far less work per request than the "
              "night's services did, so the node counts say how to split nodes between links more than how many "
              "the night needed)") if builtin else \
        f"your target at {', '.join(sorted({r.target.url for r in runs}))}"
    return (f"{len(plan.run_ids)} run(s) of {target}, measured on {m.measured_nodes} node(s) of "
            f"{num(m.measured_cores_per_node)} core(s); a night-time node is taken to have {plan.spec.node.cores} cores "
            f"each {plan.spec.node.speed_vs_measured:g}x as fast as the measuring machine's, run to "
            f"{plan.spec.utilization_ceiling:.0%} CPU, over {zones(plan)}")


def zones(plan: Plan) -> str:
    r = plan.spec.redundancy
    return f"{r.zones} zones surviving the loss of one" if r.zones > 1 and r.survive_zone_loss else \
        (f"{r.zones} zones" if r.zones > 1 else f"N+{r.n_plus}")


def run_infos(inputs: ReportInputs) -> list:
    from gala.contract.results import load_run_info

    out = []
    for p in inputs.run_paths:
        try:
            out.append(load_run_info(p))
        except Exception:  # noqa: BLE001 - the summary names what it can; the runs were read once already
            continue
    return out


def most_sensitive(plan: Plan) -> str:
    if not plan.sensitivity:
        return ""
    total = plan.allocation.required_nodes
    by_figure: dict[str, list] = {}
    for r in plan.sensitivity:
        by_figure.setdefault(r.figure, []).append(r)
    figure, rows = max(by_figure.items(), key=lambda kv: max(abs(r.total_nodes - total) for r in kv[1]))
    moves = "; ".join(f"at {r.value} ({r.change}) {r.total_nodes:,} nodes, {r.verdict}" for r in rows)
    return f"The assumption that matters most is {figure}: {moves} (against {total:,} as planned)."


def summary_section(plan: Plan, inputs: ReportInputs) -> list[Block]:
    """The top of the report, in plain words: what to do, how sure, what it rests on."""
    a, u = plan.allocation, plan.uncertainty
    ident = {r.link: r for r in plan.identification}
    items = []
    for x in a.links:
        q = u.links.get(x.link) if u else None
        band = f" (p5–p95 {q.p5:,.0f}–{q.p95:,.0f})" if q else ""
        r = ident.get(x.link)
        how = ""
        if r is not None:
            src = "the target's own CPU per link" if r.source == "attributed" else "the regression over the run's seconds"
            how = f"; {r.cpu_s_per_request * 1e3:.3g} CPU-ms per request ± {r.relative_error or 0:.0%} relative error, from {src}"
            if r.agrees is False:
                how += (f" (the regression over the run's seconds says {(r.regression_cpu_s or 0) * 1e3:.3g}: they "
                        "differ, see the identification table)")
        items.append(f"{x.link}: {x.nodes:,} nodes{band}{how}")
    for r in plan.identification:
        if not r.identified:
            items.append(f"{r.link}: NOT SIZED: {r.reason}. To size it: {r.fix}.")
    verdict = plan.verdict
    blocks: list[Block] = [Heading("In short"),
                           Para(f"Verdict: {verdict.kind.upper()}: {verdict.reason}." if verdict else headline(plan)),
                           Bullets(items)]
    if u is not None:
        if u.between_runs:
            sure = (f"The p5–p95 band ({u.total.p5:,.0f}–{u.total.p95:,.0f} nodes in all) includes the spread between "
                    f"the {len(plan.run_ids)} runs planned together, each link's demand within its error, and the peak "
                    f"within {u.peak_cv:.0%}.")
        else:
            sure = (f"The p5–p95 band ({u.total.p5:,.0f}–{u.total.p95:,.0f} nodes in all) is within-run only: it holds "
                    f"this run's own measurement error and the peak within {u.peak_cv:.0%}, not what varies between "
                    "runs (a second identical run may land outside it). Plan several runs together "
                    "(gala plan RUN_A RUN_B RUN_C) for a band that includes it.")
        blocks.append(Para("How sure: " + sure))
    blocks.append(Para("What it rests on: " + rests_on(plan, inputs) + "."))
    most = most_sensitive(plan)
    if most:
        blocks.append(Para(most + " The sensitivity table below has every assumed figure at ±25%."))
    return blocks


def sensitivity_section(plan: Plan) -> list[Block]:
    if not plan.sensitivity:
        return []
    frame = pd.DataFrame([{"figure": r.figure, "change": r.change, "value": r.value, "total nodes": r.total_nodes,
                           "verdict": r.verdict} for r in plan.sensitivity])
    return [Heading("Sensitivity to the assumed figures"),
            Para(f"The plan with one figure changed by ±25% (zones by one), the demands held; as planned: "
                 f"{plan.allocation.required_nodes:,} nodes of {plan.allocation.node_budget:,}, "
                 f"{plan.verdict.kind if plan.verdict else ''}. The verdict keeps the band's relative width:"),
            Table(frame)]


def identification_blocks(plan: Plan) -> list[Block]:
    if not plan.identification:
        return []
    rows = []
    for r in plan.identification:
        rows.append({
            "link": r.link, "source": r.source,
            "CPU-ms/request": f"{r.cpu_s_per_request * 1e3:.4g} ± {r.standard_error_cpu_s * 1e3:.2g}",
            "relative error": "n/a" if r.relative_error is None else pct(r.relative_error),
            "regression (cross-check)": "" if r.regression_cpu_s is None else
                f"{r.regression_cpu_s * 1e3:.4g} ± {(r.regression_se_cpu_s or 0) * 1e3:.2g}"
                + (" agrees" if r.agrees else " DIFFERS"),
            "between runs (sd)": "" if r.between_runs_sd_cpu_s is None else f"{r.between_runs_sd_cpu_s * 1e3:.2g}",
            "sized": "yes" if r.identified else f"NO: {r.reason}",
        })
    limit = plan.spec.identification.max_relative_error
    return [Heading("Identification of each link's demand", 3),
            Para(f"A link is sized only when its demand's relative error is at most {limit:.0%} "
                 "(identification.max_relative_error) and the runs could tell it apart from the other links:"),
            Table(pd.DataFrame(rows))]


def reallocation_blocks(plan: Plan) -> list[Block]:
    r = plan.reallocation
    if r is None:
        return []
    table = pd.DataFrame(r.per_link)
    moves = pd.DataFrame([m.model_dump() for m in r.moves if m.nodes > 0])
    text = (f"The week's re-allocation, from {r.source} to this plan, in a fleet of {r.fleet_nodes:,} nodes: "
            f"{r.moved_nodes:,} nodes move" + (f", and {r.added_nodes:,} must be added (the fleet does not suffice: "
                                                f"{r.needed_nodes:,} needed)" if not r.fleet_suffices else
                                                f"; the fleet suffices ({r.needed_nodes:,} needed)") +
            ". The fewest moves: each node goes from a link with more than it now needs (or the fleet's spare "
            "nodes) to one with less, in its own zone first (moves.csv):")
    blocks: list[Block] = [Heading("The re-allocation", 3), Para(text), Table(table)]
    if not moves.empty:
        blocks.append(Table(moves))
    return blocks
