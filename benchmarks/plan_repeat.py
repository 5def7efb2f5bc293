"""Do identical default runs give the same plan? N default `gala run`s, each planned alone, then together.

Issue 10's goal on this machine: over 3 runs, every link's nodes within ±15% of their median and the
total within ±10%. Prints each run's plan (nodes per link, total, verdict, demands and their source),
the median and spread per link, whether the goal is met, and the band of the runs planned together.

    flock /work/load.lock python benchmarks/plan_repeat.py [--runs 3] [--duration-scale 1.0] [--out DIR]

Real load (the whole default rehearsal, ~100 s a run): run it under the load lock. Machine and load
are printed with the figures (benchmarks/README.md keeps them).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from capacity_model.api import plan_run

GOAL_LINK, GOAL_TOTAL = 0.15, 0.10


def one_run(out: Path, scale: float) -> tuple[Path, float]:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "gala", "run", "--quiet", "--no-plan", "--duration-scale", str(scale),
                           "--out", str(out)], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"gala run failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    folder = max((p for p in out.iterdir() if (p / "run.json").exists()), key=lambda p: p.stat().st_mtime)
    return folder, time.monotonic() - started


def spread(values: list[float]) -> tuple[float, float]:
    med = float(np.median(values))
    return med, max(abs(v / med - 1) for v in values) if med else 0.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration-scale", type=float, default=1.0)
    ap.add_argument("--out", type=Path, default=None, help="parent folder for the runs (default: a temporary one)")
    ap.add_argument("--plan-only", type=Path, nargs="+", default=None, metavar="RUN_DIR",
                    help="plan these results folders instead of running new ones (no load)")
    args = ap.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="plan-repeat-"))
    out.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.node()}, {os.cpu_count()} cores, {platform.processor() or platform.machine()}; "
          f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rows, folders = [], []
    existing = list(args.plan_only or [])
    for i in range(len(existing) or args.runs):
        folder, wall = (existing[i], 0.0) if existing else one_run(out, args.duration_scale)
        plan = plan_run([folder], out_dir=folder / "plan").plan
        # what each link needs (the allocation caps it at the budget when short)
        nodes = {a.link: a.required_nodes for a in plan.allocation.links}
        ident = {r.link: r for r in plan.identification}
        rows.append({"run": folder.name, "wall_s": round(wall, 1), "nodes": nodes, "total": plan.allocation.required_nodes,
                     "verdict": plan.verdict.kind if plan.verdict else "", "refused": plan.refused,
                     "demand_ms": {l: round(r.cpu_s_per_request * 1e3, 4) for l, r in ident.items()},
                     "relative_error": {l: round(r.relative_error or 0, 4) for l, r in ident.items()},
                     "source": {l: r.source for l, r in ident.items()},
                     "regression_ms": {l: round((r.regression_cpu_s or 0) * 1e3, 4) for l, r in ident.items()},
                     "load_after": os.getloadavg()[0]})
        folders.append(folder)
        r = rows[-1]
        print(f"run {i + 1}: {r['run']} ({r['wall_s']} s): {r['nodes']} total {r['total']} ({r['verdict']}); "
              f"demand CPU-ms {r['demand_ms']} ({r['source']}), regression {r['regression_ms']}; "
              f"load {r['load_after']:.2f}", flush=True)
    links = list(dict.fromkeys(l for r in rows for l in r["nodes"]))
    summary = {}
    ok = True
    for link in links:
        vals = [r["nodes"].get(link) for r in rows if link in r["nodes"]]
        if len(vals) < len(rows):
            ok = False
            summary[link] = {"median": None, "spread": None, "note": "not sized in every run"}
            continue
        med, sp = spread(vals)
        summary[link] = {"median": med, "spread": round(sp, 4), "within_goal": sp <= GOAL_LINK}
        ok &= sp <= GOAL_LINK
    med, sp = spread([r["total"] for r in rows])
    summary["total"] = {"median": med, "spread": round(sp, 4), "within_goal": sp <= GOAL_TOTAL}
    ok &= sp <= GOAL_TOTAL
    together = plan_run(folders, out_dir=out / "plan-together").plan
    u = together.uncertainty
    print("\nlink     median    spread (max |x/median - 1|)   goal")
    for k, v in summary.items():
        goal = GOAL_TOTAL if k == "total" else GOAL_LINK
        median = "n/a" if v["median"] is None else f"{v['median']:.0f}"
        width = "n/a" if v["spread"] is None else f"{v['spread']:.1%}"
        print(f"{k:<8} {median:>8}  {width:>8}   ±{goal:.0%}")
    if u is not None:
        print(f"planned together: total {together.allocation.required_nodes}, p5-p95 {u.total.p5:,.0f}-{u.total.p95:,.0f} "
              f"(between runs: {u.between_runs}); verdict {together.verdict.kind if together.verdict else ''}")
    print(f"goal met: {ok}; load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    (out / "plan_repeat.json").write_text(json.dumps({"runs": rows, "summary": summary, "goal_met": ok}, indent=2))
    print(f"figures: {out / 'plan_repeat.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
