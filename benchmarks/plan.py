"""Benchmark (not a test): a capacity plan at scale, and a what-if.

50+ services, 20 links, 3 zones surviving the loss of one, a 10,000-node budget, 1,000 Monte Carlo
draws (goal: <= 10 s on 2 cores), then the plan held against another mix (goal: <= 1 s).
Run: `.venv/bin/python benchmarks/plan.py [--services 60] [--links 20] [--draws 1000]`.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from capacity_model.contracts import LatencyBudget, RedundancySpec, UncertaintySpec
from capacity_model.planner import declared_mix, hold, make_plan
from capacity_model.spec import load_spec
from synth_measurements import synthetic_measurements


def scenario(links: int, services: int, phases: int, seed: int):
    """Random phases (each a few links busy) and sparse demands (each link through ~8 services)."""
    rng = np.random.default_rng(seed)
    names = [f"link{i:02d}" for i in range(links)]
    svc = [f"svc{j:02d}" for j in range(services)]
    demand = {}
    for i, l in enumerate(names):
        # every service is used by some link; each link passes through about 8
        used = set(rng.choice(services, size=8, replace=False)) | {i % services, (i + links) % services,
                                                                    (i + 2 * links) % services}
        demand[l] = {svc[j]: float(rng.uniform(5e-6, 3e-5)) for j in sorted(used)}
    mixes = {}
    for p in range(phases):
        busy = rng.choice(links, size=6, replace=False)
        mixes[f"phase{p}"] = {names[k]: float(rng.uniform(50, 500)) for k in busy}
    return mixes, demand


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--links", type=int, default=20)
    ap.add_argument("--services", type=int, default=60)
    ap.add_argument("--phases", type=int, default=30)  # > links, so that D is identifiable
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    mixes, demand = scenario(args.links, args.services, args.phases, args.seed)
    m = synthetic_measurements(mixes, demand, seconds_per_phase=30, noise_cores=0.005, seed=args.seed,
                               low_load_ms={l: 5.0 for l in demand})
    spec = load_spec()
    spec.uncertainty = UncertaintySpec(draws=args.draws, peak_cv=0.1, seed=args.seed)
    spec.redundancy = RedundancySpec(zones=3, survive_zone_loss=True)
    spec.node_budget = 10_000
    spec.latency_budgets = {l: LatencyBudget(percentile=99, latency_ms=100) for l in demand}
    spec.grab_only.phases = ["phase0"]
    spec.grab_only.link = "link00"
    pools = sum(len(d) for d in demand.values())
    print(f"plan: {args.links} links, {len(m.busy_cores.columns)} services, {pools} (link, service) pools, "
          f"{args.phases} phases, {len(m.throughput)} windows, 3 zones, budget {spec.node_budget}, "
          f"{args.draws} draws", flush=True)

    t0 = time.perf_counter()
    plan = make_plan(spec, m)
    t_plan = time.perf_counter() - t0
    other = declared_mix({"night": {l: 1.0 / args.links for l in demand}}, spec, "even mix")
    t0 = time.perf_counter()
    w = hold(plan, other)
    t_hold = time.perf_counter() - t0

    u = plan.uncertainty
    print(f"  make_plan (demand fit, sizing, allocation, {args.draws} Monte Carlo draws, the 1 February "
          f"what-if): {t_plan:.2f} s (goal <= 10 s)")
    print(f"  what-if (hold the plan against another mix): {t_hold * 1000:.0f} ms (goal <= 1 s)")
    a = plan.allocation
    print(f"  allocation: {a.total_nodes} of {a.node_budget} nodes (needed {a.required_nodes}; "
          f"{len(a.short_links)} of {len(a.links)} links short)")
    print(f"  Monte Carlo total nodes p5/p50/p95: {u.total.p5:.0f} / {u.total.p50:.0f} / {u.total.p95:.0f}; "
          f"overloaded in the what-if: {len(w.overloaded_links)} of {len(w.links)} links")


if __name__ == "__main__":
    main()
