"""The plan: from a spec and a run's measurements to nodes per critical link for the night (pure).

Steps: the peak mix per phase (measured and scaled, or declared); the demand D[link, service] by
NNLS (or, for black-box links, the per-node capacity the probe measured); sizing of every
(link, service) pool; the allocation under the node budget; Monte Carlo bands; and the 1 February
what-if: the plan made for a grab-only mix, held against the measured rehearsal mix.
"""

from __future__ import annotations

import numpy as np

from capacity_model.allocation import allocate
from capacity_model.contracts import (
    Allocation,
    Assumption,
    CapacitySpec,
    DemandFit,
    LinkSizing,
    Measurements,
    PeakMix,
    Plan,
    WhatIf,
    percentile_column,
)
from capacity_model.anchor import LoadAdjust, adjust_fit
from capacity_model.identify import identify
from capacity_model.moves import per_zone, reallocate
from capacity_model.sensitivity import sensitivity
from capacity_model.sizing import PoolArrays, assemble_links, latency_split, size_black_box
from capacity_model.uncertainty import node_quantiles
from capacity_model.verdict import plan_verdict
from gala.contract.errors import InputError
from capacity_model.usl import nodes_for_effective
from capacity_model.whatif import hold as hold_allocation

# a fitted demand below this share of its link's total and within 2 standard errors of 0 is noise
NOISE_SHARE = 0.01


# ------------------------------------------------------------------ the mix at the peak

def measured_mix(spec: CapacitySpec, m: Measurements, phases: list[str] | None = None,
                 name: str = "measured rehearsal mix") -> PeakMix:
    """Each phase's measured per-link rates, scaled so that the phase's total over the night's links
    (the run's critical links and any the spec plans) is the peak. Non-critical links (the rehearsal's
    own set-up traffic: registering users, adding friends) are left out of the night's mix."""
    night = set(m.links) | set(spec.links or [])
    rps = m.phase_rps.fillna(0.0)
    rps = rps[[c for c in rps.columns if c in night] or list(rps.columns)]
    if phases is not None:
        rps = rps.loc[phases]
    total = rps.sum(axis=1)
    rps = rps[total > 0]
    scaled = rps.div(rps.sum(axis=1), axis=0) * spec.peak.rate_per_s
    return PeakMix(name=name, source="measured" + (f" phases: {', '.join(phases)}" if phases else ""),
                   rate_per_s={p: {l: float(v) for l, v in row.items()} for p, row in scaled.iterrows()})


def declared_mix(fractions: dict[str, dict[str, float]], spec: CapacitySpec, name: str) -> PeakMix:
    """A mix declared as fractions of the peak per phase."""
    peak = spec.peak.rate_per_s
    return PeakMix(name=name, source="declared",
                   rate_per_s={p: {l: f * peak for l, f in shares.items()} for p, shares in fractions.items()})


def plan_mix(spec: CapacitySpec, m: Measurements) -> PeakMix:
    if spec.mix.source == "declared":
        return declared_mix(spec.mix.phases, spec, "declared mix")
    return measured_mix(spec, m)


def grab_only_mix(spec: CapacitySpec, m: Measurements, links: list[str], notes: list[str]) -> PeakMix:
    """The mix the 1 February planners assumed: users only grab. For a system without the spec's
    grab link (another scenario under the default spec), the first planned link stands in, with a note."""
    g = spec.grab_only
    if g.declared:
        return declared_mix({"grab-only": g.declared}, spec, "grab-only (declared)")
    rps = m.phase_rps.fillna(0.0)
    if g.phases:
        missing = [p for p in g.phases if p not in rps.index]
        if missing:
            raise spec.error("grab_only", "phases", expected=f"phases of the run ({', '.join(map(str, rps.index))}), "
                                                            f"got {', '.join(missing)}")
        phases = list(g.phases)
    else:
        link = g.link
        if link not in rps.columns:
            link = links[0]
            notes.append(f"what-if: the run has no {g.link!r} link (grab_only.link); a plan made for "
                         f"{link!r} alone stands in for the grab-only plan")
        share = rps[link] / rps.sum(axis=1).replace(0, np.nan)
        phases = [str(share.idxmax())]
    return measured_mix(spec, m, phases, name=f"grab-only (measured phases: {', '.join(phases)})")


# ------------------------------------------------------------------ what the sizing needs per link

def _links(spec: CapacitySpec, m: Measurements) -> list[str]:
    links = list(spec.links or m.links)
    known = set(m.phase_rps.columns) | set(m.throughput.columns) | set(m.capacity_per_node)
    unknown = [l for l in links if l not in known]
    if unknown:
        raise spec.error("links", expected=f"links the run measured ({', '.join(sorted(known))}), "
                                           f"got {', '.join(unknown)}")
    if not links:
        raise spec.error("links", expected="at least one link to plan (the run has no critical link)")
    return links


def _base_latency(spec: CapacitySpec, m: Measurements, link: str, notes: list[str]) -> float | None:
    """The link's measured low-load percentile: the lowest over phases (the least loaded phase)."""
    budget = spec.latency_budgets.get(link)
    if budget is None or m.phase_latency_ms.empty:
        return None
    col = percentile_column(budget.percentile, list(m.phase_latency_ms.columns))
    if abs(float(col[1:]) - budget.percentile) > 1e-9:
        notes.append(f"{link}: budget at p{budget.percentile:g} compared with the measured {col}")
    lat = m.phase_latency_ms[col]
    rows = lat[lat.index.get_level_values(1) == link].dropna()
    return float(rows.min()) if len(rows) else None


def _services(spec: CapacitySpec, fit: DemandFit, link: str, notes: list[str]) -> list[str]:
    D, SE = fit.cpu_s_per_request.get(link, {}), fit.standard_error_cpu_s.get(link, {})
    if spec.services and link in spec.services:
        unknown = [s for s in spec.services[link] if s not in fit.services]
        if unknown:
            raise spec.error("services", link, expected=f"services with CPU samples ({', '.join(fit.services)}), "
                                                        f"got {', '.join(unknown)}")
        return [s for s in spec.services[link] if D.get(s, 0.0) > 0]
    total = sum(D.values())
    keep = [s for s, d in D.items() if d > 0 and not (d < NOISE_SHARE * total and d < 2 * SE.get(s, 0.0))]
    dropped = [s for s, d in D.items() if d > 0 and s not in keep]
    if dropped:
        notes.append(f"{link}: demand on {', '.join(dropped)} below {NOISE_SHARE:.0%} of the link's and within "
                     f"2 standard errors of 0: treated as noise")
    return keep


def _scale(spec: CapacitySpec, m: Measurements, links: list[str], pools: PoolArrays, notes: list[str] | None):
    """The USL over nodes as a map of pool node counts (..., P), when runs at several scales were fitted.
    Where the USL says no node count reaches the peak, the linear count stays and a note says so
    (the link must then be split into independent cells, each within the USL's reach)."""
    fits = {i: m.scale_usl.get(l) or m.scale_usl.get("*") for i, l in enumerate(links)}
    fits = {i: f for i, f in fits.items() if f is not None}
    if not fits:
        return None

    def scale(n):
        out = np.array(n, dtype=float, copy=True)
        for i, f in fits.items():
            sel = pools.link == i
            real = nodes_for_effective(out[..., sel], f)
            if notes is not None:
                reach = "" if np.isfinite(real).all() else (
                    f"; the USL cannot reach the peak at any node count (at most "
                    f"{(f.x_max_rps or np.inf) / f.lambda_rps:.4g} nodes' worth): split the link into "
                    f"independent cells; sized linearly")
                notes.append(f"{links[i]}: node counts from the USL over nodes (sigma {f.sigma:.3g}, "
                             f"kappa {f.kappa:.3g}) instead of linear scaling{reach}")
            out[..., sel] = np.where(np.isfinite(real), real, out[..., sel])
        return out
    return scale


def _pools(spec: CapacitySpec, m: Measurements, links: list[str], fit: DemandFit | None,
           notes: list[str]) -> tuple[PoolArrays, np.ndarray]:
    """PoolArrays of the cpu-demand links, with each pool's standard error."""
    rows = []
    for i, link in enumerate(links):
        if m.method_of(link) != "cpu-demand" or fit is None:
            continue
        services = _services(spec, fit, link, notes)
        tail, allow = latency_split(spec.latency_budgets.get(link), _base_latency(spec, m, link, []), len(services))
        rows += [(i, s, fit.cpu_s_per_request[link][s], fit.standard_error_cpu_s[link][s], tail, allow)
                 for s in services]
    cols = list(zip(*rows)) if rows else [[]] * 6
    pools = PoolArrays(link=np.array(cols[0], dtype=int), service=list(cols[1]),
                       cpu_s=np.array(cols[2], dtype=float), tail=np.array(cols[4], dtype=float),
                       allowance_s=np.array(cols[5], dtype=float))
    return pools, np.array(cols[3], dtype=float)


def _black_box(spec: CapacitySpec, m: Measurements, links: list[str]) -> dict[int, tuple[float, float | None]]:
    """Per black-box link index: (capacity per node within budget, USL peak per node), for the night's node."""
    scale = spec.node.speed_vs_measured * spec.node.cores / m.measured_cores_per_node
    out = {}
    for i, link in enumerate(links):
        if m.method_of(link) == "black-box":
            usl = m.usl.get(link)
            out[i] = (m.capacity_per_node[link] * scale, usl.x_max_rps * scale if usl and usl.x_max_rps else None)
    return out


def _size(spec: CapacitySpec, m: Measurements, links: list[str], mix: PeakMix, fit: DemandFit | None,
          notes: list[str]) -> list[LinkSizing]:
    """Size every planned link for `mix`: cpu-demand links pool by pool, black-box links from the probe."""
    frame = mix.frame().reindex(columns=links, fill_value=0.0).fillna(0.0)
    phases = list(frame.index)
    link_rates = frame.to_numpy().T  # (L, phases)
    pools, _ = _pools(spec, m, links, fit, notes)
    cpu_links = [l for l in links if m.method_of(l) == "cpu-demand"]
    bases = {l: _base_latency(spec, m, l, notes) for l in cpu_links}
    # pools index the full link list; assemble_links wants per-link positions: remap onto cpu_links
    remap = np.array([cpu_links.index(links[i]) for i in pools.link], dtype=int)
    cpu_pools = PoolArrays(link=remap, service=pools.service, cpu_s=pools.cpu_s, tail=pools.tail,
                           allowance_s=pools.allowance_s)
    cpu_rates = link_rates[[links.index(l) for l in cpu_links]] if cpu_links else np.zeros((0, len(phases)))
    sized = assemble_links(cpu_links, cpu_pools, cpu_rates, phases, spec.node,
                           spec.utilization_ceiling, spec.latency_budgets, bases, spec.redundancy,
                           scale=_scale(spec, m, cpu_links, cpu_pools, notes))
    by_link = {s.link: s for s in sized}
    for i, (cap, peak) in _black_box(spec, m, links).items():
        link = links[i]
        by_link[link] = size_black_box(link, dict(zip(phases, link_rates[i])), cap, peak,
                                       spec.utilization_ceiling, spec.latency_budgets.get(link), spec.redundancy)
    for s in by_link.values():
        if not s.latency_feasible:
            notes.append(f"{s.link}: the budget {s.budget.latency_ms:g} ms is below the measured low-load "
                         f"p{s.budget.percentile:g} ({s.base_latency_ms:g} ms): no node count meets it; "
                         f"sized for utilization only")
    return [by_link[l] for l in links]


def _required(spec: CapacitySpec, sizing: list[LinkSizing]) -> int:
    """The nodes a sizing needs in all (what the allocation's `required_nodes` is, without the solver)."""
    z = spec.redundancy.zones
    return sum(s.nodes_per_zone * z if z > 1 else s.nodes_required for s in sizing)


def _allocate(spec: CapacitySpec, sizing: list[LinkSizing]) -> Allocation:
    per_zone = {s.link: (s.nodes_per_zone if spec.redundancy.zones > 1 else s.nodes_required) for s in sizing}
    return allocate(per_zone, spec.node_budget, zones=spec.redundancy.zones, priorities=spec.priorities)


# ------------------------------------------------------------------ the plan

def make_plan(spec: CapacitySpec, m: Measurements, *, in_force: dict[str, list[int]] | None = None,
              in_force_source: str | None = None, load: LoadAdjust | None = None) -> Plan:
    """A capacity plan for the night from a spec and the runs' measurements; `in_force` (link -> nodes per
    zone) is the allocation the week's re-allocation starts from (default: the grab-only plan's); `load`
    moves the demands from the rehearsal's utilization to the ceiling's (capacity_model.heldout)."""
    m.validate()
    notes = list(m.notes)
    links = _links(spec, m)
    # a spec describes the system; a run may exercise only part of it
    unused = [name for name in spec.latency_budgets if name not in links]
    if unused:
        notes.append(f"latency budgets for {', '.join(unused)} are not used: not a planned link of "
                     f"{', '.join(m.run_ids)} (planned: {', '.join(links)})")
    methods = {l: m.method_of(l) for l in links}
    fit, identification = None, []
    if any(v == "cpu-demand" for v in methods.values()):
        # identified demands or refused links (capacity_model.identify): a refused link is never sized
        fit, identification, id_notes = identify(spec, m, [l for l in links if methods[l] == "cpu-demand"])
        notes += id_notes
        fit = adjust_fit(fit, load)
        notes += load.notes if load is not None else []
        for a, b in fit.unidentifiable:
            notes.append(f"demand: the mix never varied enough to separate {a} and {b}; their split is uncertain")
    refused = [r.link for r in identification if not r.identified]
    for r in identification:
        if not r.identified:
            notes.append(f"NOT SIZED: {r.link}: {r.reason}. To size it: {r.fix}")
    links = [l for l in links if l not in refused]
    if not links:
        raise InputError(f"runs {', '.join(m.run_ids)}: no link's demand is identified ("
                         + "; ".join(f"{r.link}: {r.reason}" for r in identification) + f"); to size them: "
                         f"{identification[0].fix if identification else 'a calibration run'}")
    mix = plan_mix(spec, m)
    missing = [l for l in links if l not in mix.frame().columns]
    if missing:
        notes.append(f"the mix has no traffic for {', '.join(missing)}: sized at the minimum")
    sizing = _size(spec, m, links, mix, fit, notes)
    allocation = _allocate(spec, sizing)

    uncertainty = None
    if spec.uncertainty.draws > 0:
        pools, se = _pools(spec, m, links, fit, [])
        rates = mix.frame().reindex(columns=links, fill_value=0.0).fillna(0.0).to_numpy().T
        uncertainty = node_quantiles(links=links, link_rates=rates, pools=pools, se_cpu_s=se,
                                     black_box=_black_box(spec, m, links), node=spec.node,
                                     ceiling=spec.utilization_ceiling, redundancy=spec.redundancy,
                                     spec=spec.uncertainty, node_budget=spec.node_budget,
                                     scale=_scale(spec, m, links, pools, None))
        uncertainty.between_runs = any(r.between_runs_sd_cpu_s is not None for r in identification)

    g_mix = grab_only_mix(spec, m, links, notes)
    g_sizing = _size(spec, m, links, g_mix, fit, [])
    g_alloc = _allocate(spec, g_sizing)
    rehearsal = measured_mix(spec, m)
    feb1 = hold_allocation(g_alloc, g_sizing, rehearsal, spec, name="1 February: a grab-only plan held against "
                           "the rehearsal's mix", plan_mix=g_mix.name)

    band = (uncertainty.total.p5, uncertainty.total.p95) if uncertainty is not None else (None, None)
    table = sensitivity(spec, lambda s: _required(s, _size(s, m, links, plan_mix(s, m), fit, [])),
                        allocation.required_nodes, *band, incomplete=bool(refused))
    realloc = reallocate(per_zone(g_alloc) if in_force is None else in_force, per_zone(allocation),
                         node_budget=spec.node_budget, keep=refused,
                         source=in_force_source or f"the {g_mix.name} plan's allocation")
    return Plan(run_ids=list(m.run_ids), links=links, methods=methods, peak_rate_per_s=spec.peak.rate_per_s,
                mix=mix, demand=fit, usl=dict(m.usl), sizing=sizing, allocation=allocation,
                uncertainty=uncertainty, feb1=feb1, grab_only_allocation=g_alloc,
                assumptions=spec.assumptions() + _run_assumptions(m, fit, links, methods, sizing),
                spec=spec, notes=notes, identification=identification, refused=refused,
                verdict=plan_verdict(allocation, uncertainty, refused), sensitivity=table, reallocation=realloc)


def _run_assumptions(m: Measurements, fit, links, methods, sizing) -> list[Assumption]:
    rows = [Assumption(figure="runs", value=", ".join(m.run_ids), source="run",
                       note=f"{m.measured_nodes} target node(s) of {m.measured_cores_per_node:g} core(s) measured")]
    for s in sizing:
        if methods[s.link] == "cpu-demand" and fit is not None:
            d = sum(x.cpu_s_per_request for x in s.services)
            rows.append(Assumption(figure=f"demand.{s.link}", value=f"{d * 1000:.4g} CPU-ms per request",
                                   source="run", note=f"NNLS over {fit.windows} windows"))
        elif methods[s.link] == "black-box":
            rows.append(Assumption(figure=f"capacity.{s.link}", value=f"{m.capacity_per_node[s.link]:.4g} req/s "
                                   f"per measured node within budget", source="run", note="black-box step probe"))
        if s.base_latency_ms is not None:
            rows.append(Assumption(figure=f"base_latency.{s.link}", value=f"{s.base_latency_ms:g} ms", source="run",
                                   note="lowest measured percentile over the phases (low load)"))
    return rows


def hold(plan: Plan, mix: PeakMix, *, name: str | None = None) -> WhatIf:
    """Hold a plan's allocation against another mix at the peak."""
    return hold_allocation(plan.allocation, plan.sizing, mix, plan.spec, name=name or f"plan held against {mix.name}",
                           plan_mix=plan.mix.name)
