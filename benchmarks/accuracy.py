"""How well the capacity model predicts a node's knee it never saw (not a test; results in README.md).

For each of two targets of different cost profiles, all on this machine, each command a real `gala` run:
  (a) the built-in target held to 0.25 core (CPU per request falls with load);
  (b) benchmarks/costed_target.py, 4 CPU-ms per grab growing by --growth per other request in flight
      (cost rises with load), held to 0.5 core;
it measures
  A   a low-load rehearsal (`gala run`, about a third of the node),
  K1  a knee search (`gala probe`): the demand's curve up to the ceiling,
  K2  a second knee search: the held-out measurement,
(and, for speed units, the same rehearsal at 0.25 and 0.5 core, each planned with the night's node rated
in speed units: the two plans should agree),
and holds two plans against K2 (`gala plan ... --validate K2`): the linear one from A alone, and the
one anchored at the ceiling by K1 (`gala plan A K1`). It prints one row per target and phase mix:
predicted and measured req/s per node at the 70% ceiling, CPU per request there, p99 there.

    python benchmarks/accuracy.py [--lock /work/load.lock] [--out DIR] [--only builtin|costed]

With --lock, each command runs under `flock FILE` (so that load tests sharing the machine take turns).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GALA = [sys.executable, "-m", "gala"]

COSTED_SPEC = "latency_budgets:\n  grab: {percentile: 99, latency_ms: 2000}\n"


def sh(cmd: list[str], lock: str | None, log: Path) -> subprocess.CompletedProcess:
    full = (["flock", lock] if lock else []) + cmd
    t0 = time.monotonic()
    proc = subprocess.run(full, capture_output=True, text=True, cwd=REPO, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    with open(log, "a") as f:
        f.write(f"$ {' '.join(cmd)}  ({time.monotonic() - t0:.0f} s, exit {proc.returncode})\n{proc.stdout}{proc.stderr}\n")
    return proc


def newest(parent: Path, before: set[Path]) -> Path:
    (new,) = set(parent.iterdir()) - before
    return new


def run_and_find(cmd: list[str], parent: Path, lock: str | None, log: Path) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    before = set(parent.iterdir())
    proc = sh(cmd + ["--out", str(parent)], lock, log)
    if proc.returncode not in (0, 3):
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return newest(parent, before)


def held_out(a: list[Path], k2: Path, out: Path, spec: Path | None, log: Path) -> dict:
    cmd = GALA + ["plan", *map(str, a), "--validate", str(k2), "--out", str(out)] + (["--spec", str(spec)] if spec else [])
    proc = sh(cmd, None, log)
    if proc.returncode not in (0, 3):
        raise SystemExit(f"plan failed: {proc.stderr[-2000:]}")
    return json.loads((out / "heldout.json").read_text())


def measure(name: str, target_args: list[str], run_args: list[str], probe_args: list[str], spec: Path | None,
            out: Path, lock: str | None, log: Path, replan: bool = False) -> list[dict]:
    spec_args = ["--spec", str(spec)] if spec else []
    short = name.split("@")[0].split()[0]
    runs, knees = out / f"runs-{short}", out / f"knees-{short}"
    if replan:  # plan again from the runs and searches already measured (the model changed, not the data)
        (a,), (k1, k2) = sorted(runs.iterdir()), sorted(knees.iterdir())
    else:
        a = run_and_find(GALA + ["run", "--no-plan", "--quiet", *target_args, *run_args], runs, lock, log)
        k1 = run_and_find(GALA + ["probe", "--quiet", *target_args, *probe_args, *spec_args], knees, lock, log)
        k2 = run_and_find(GALA + ["probe", "--quiet", *target_args, *probe_args, *spec_args], knees, lock, log)
    lin = held_out([a], k2, out / f"plan-{name}-linear", spec, log)
    ld = held_out([a, k1], k2, out / f"plan-{name}-load", spec, log)
    knee2 = json.loads((k2 / "knee.json").read_text())
    rows = []
    for m_lin, m_ld in zip(lin["mixes"], ld["mixes"]):
        k = next(k for k in knee2["mixes"] if k["mix"] == m_lin["mix"])
        rows.append({
            "target": name, "mix": m_lin["mix"], "node_cores": knee2["node_cores"],
            "measured_rps": m_lin["measured_rps_per_node_at_ceiling"],
            "linear_rps": m_lin["predicted_rps_per_node_at_ceiling"], "linear_error": m_lin["error"],
            "load_rps": m_ld["predicted_rps_per_node_at_ceiling"], "load_error": m_ld["error"],
            "measured_cpu_ms": k["cpu_ms_at_ceiling"], "saturation_rps": k["rps_at_saturation"],
            "measured_p99_ms": m_ld["measured_p99_ms"], "predicted_p99_ms": m_ld["predicted_p99_ms"],
            "p99": m_ld["p99"], "runs": {"A": a.name, "K1": k1.name, "K2": k2.name},
        })
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lock", help="run each load under `flock FILE`")
    ap.add_argument("--out", type=Path, help="where the runs go (default: a temporary folder, kept)")
    ap.add_argument("--only", choices=["builtin", "costed", "speed"])
    ap.add_argument("--knee-time", type=float, default=180.0, help="each built-in knee search's --max-time (s)")
    ap.add_argument("--growth", type=float, default=0.1, help="the costed target's --growth (default 0.1)")
    ap.add_argument("--replan", action="store_true",
                    help="measure nothing: plan again from the runs and knee searches already in --out")
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="gala-accuracy-"))
    out.mkdir(parents=True, exist_ok=True)
    log = out / "accuracy.log"
    rows: list[dict] = []
    t0 = time.monotonic()
    if args.only in (None, "builtin"):
        # a short low-load rehearsal's demands have relative errors of 30-70% (issue 10's identification
        # refuses them at 25%): the held-out check is the point here, so they are accepted and reported
        spec = out / "builtin-spec.yaml"
        spec.write_text("identification: {max_relative_error: 1.0}\n")
        rows += measure("builtin@0.25", ["--target-cpu-limit", "0.25"],
                        ["--duration-scale", "0.5", "-u", "130"], ["--max-time", str(args.knee_time)], spec,
                        out, args.lock, log, args.replan)
    if args.only in (None, "costed"):
        scenario = out / "costed.yaml"
        sys.path.insert(0, str(REPO / "benchmarks"))
        from costed_target import scenario_yaml, started

        scenario.write_text(scenario_yaml([("low", 10, 10), ("grab", 12, 20)]))
        spec = out / "costed-spec.yaml"
        spec.write_text(COSTED_SPEC)
        with contextlib.nullcontext((None, None)) if args.replan else started({"/grab": 4.0}, args.growth) as (url, pid):
            common = [] if url is None else ["--scenario", str(scenario), "--host", url, "--target-pid", str(pid),
                                             "--target-cpu-limit", "0.5"]
            rows += measure(f"costed growth {args.growth:g}@0.5", common, [],
                            ["--phase", "grab", "--start-rps", "40", "--max-time", "75", "--step-s", "5", "--warm-s", "1.5"], spec,
                            out, args.lock, log, args.replan)
    speed_rows = speed_units(out, args.lock, log) if args.only in (None, "speed") and not args.replan else []
    (out / "accuracy.json").write_text(json.dumps({"knees": rows, "speed_units": speed_rows}, indent=2))
    print(textwrap.dedent(f"""\
        machine: {platform.node()}, {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}; load average
        {os.getloadavg()[0]:.2f} at the end; {time.monotonic() - t0:.0f} s; runs in {out}
        """))
    print("| target | mix | measured req/s per node at 70% | linear model | error | knee-anchored model | error "
          "| CPU-ms/req at 70% | saturation req/s | p99 at 70%: measured / predicted |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        p99 = ", ".join(f"{l} {r['measured_p99_ms'].get(l, float('nan')):.0f} / {v:.0f} ms"
                        for l, v in r["predicted_p99_ms"].items())

        def f(x, fmt=".0f"):
            return "—" if x is None else format(x, fmt)
        print(f"| {r['target']} | {r['mix']} | {f(r['measured_rps'])} | {f(r['linear_rps'])} | {f(r['linear_error'], '+.1%')} "
              f"| {f(r['load_rps'])} | {f(r['load_error'], '+.1%')} | {f(r['measured_cpu_ms'], '.3f')} "
              f"| {f(r['saturation_rps'])} | {p99} |")
    if speed_rows:
        print("\n| rehearsal | speed reference (units/CPU-s) | node.speed_vs_measured | grab CPU-ms | nodes: grab, share, chat | total |")
        print("|---|---:|---:|---:|---|---:|")
        for r in speed_rows:
            print(f"| {r['run']} | {r['speed']:,.0f} | {r['speed_vs_measured']:.3f} | {r['grab_cpu_ms']:.3f} "
                  f"| {r['nodes']} | {r['total']} |")
    return 0


def speed_units(out: Path, lock: str | None, log: Path) -> list[dict]:
    """The same rehearsal on two differently limited cores (0.25 and 0.5), each planned with the night's node
    declared in speed units (node.speed_units_per_cpu_s): the plans should agree."""
    spec = out / "speed-spec.yaml"
    spec.write_text("node: {cores: 32, speed_units_per_cpu_s: 80000}\nidentification: {max_relative_error: 1.0}\n")
    rows = []
    for limit in ("0.25", "0.5"):
        run = run_and_find(GALA + ["run", "--no-plan", "--quiet", "--target-cpu-limit", limit, "--duration-scale", "0.5",
                                   "-u", "130"], out / "runs-speed", lock, log)
        plan_dir = out / f"plan-speed-{limit}"
        sh(GALA + ["plan", str(run), "--spec", str(spec), "--out", str(plan_dir)], None, log)
        plan = json.loads((plan_dir / "plan.json").read_text())
        info = json.loads((run / "run.json").read_text())
        refs = [r["units_per_cpu_s"] for r in (info["machine"]["speed_ref_start"], info["machine"]["speed_ref_end"]) if r]
        nodes = {x["link"]: x["nodes"] for x in plan["allocation"]["links"]}
        grab = sum(plan["demand"]["cpu_s_per_request"]["grab"].values()) * 1000 if plan.get("demand") else float("nan")
        rows.append({"run": f"builtin@{limit} {run.name}", "speed": sorted(refs)[len(refs) // 2],
                     "speed_vs_measured": plan["spec"]["node"]["speed_vs_measured"], "grab_cpu_ms": grab,
                     "nodes": ", ".join(f"{nodes.get(l, '—')}" for l in ("grab", "share", "chat")),
                     "total": plan["allocation"]["total_nodes"]})
    return rows


if __name__ == "__main__":
    sys.exit(main())
