"""`gala probe`: the knee search. For each phase mix of a scenario, raise the offered rate in steps
(bisecting near the edge) against one target held to a CPU limit, until its CPU reaches the
utilization ceiling and a link's latency budget breaks; write the operating points per node.
Thin: the bench is loadtests.orchestrator.knee, the decisions capacity_model.knee."""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from gala.contract.errors import ExitCode, InputError, exit_codes_help

if TYPE_CHECKING:  # imported when the search runs: `gala probe --help` stays quick
    from capacity_model.contracts.knee import KneeSearch

EPILOG = """\
examples:
  gala probe --target-cpu-limit 0.5          the 1 February mixes against the built-in target held to half a core
  gala probe --phase grab --max-time 90      one mix, a minute and a half
  gala probe --scenario my.yaml --host http://127.0.0.1:8080 --target-pid 4242 --target-cpu-limit 0.25
                                             your own server on loopback, confined to a quarter core
  gala plan results/<feb1-run> --validate results/<knee-search>
                                             hold a plan against the measured knee

The search stops at once when the generator saturates (a generator process near a full core, or a
rate well short of the one offered while the target had headroom): that knee would be the
generator's, and the command says so (exit 1). Without a CPU for the target (a --host whose
processes are not named) it is the black-box probe: the edge is the latency budget alone.

""" + exit_codes_help(ExitCode.OK, ExitCode.RUN_FAILED, ExitCode.BAD_INPUT, ExitCode.INTERRUPTED,
                      ok="every mix's knee was found (or bounded by --max-time)") + """
  (1 also when the generator saturated first: the figures written are its limit, not the node's)
"""


def register(sub) -> None:
    p = sub.add_parser(
        "probe", help="knee search: the rate per node at the CPU ceiling and at the latency budget, per phase mix",
        description="Find, for each phase mix of a scenario, the throughput one node carries at the utilization "
                    "ceiling and within every link's latency budget, by raising the offered rate in steps "
                    "(one short run each) and bisecting near the edge. Writes results/<search-id>/knee.json.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_argument_group("what to search")
    g.add_argument("--scenario", type=Path, metavar="FILE",
                   help="scenario whose phases give the mixes (default: the packaged feb1.yaml)")
    g.add_argument("--phase", action="append", metavar="NAME",
                   help="search this phase's mix only; repeatable (default: every phase that loads a critical link)")
    g.add_argument("--spec", type=Path, metavar="FILE",
                   help="capacity spec for the latency budgets and the ceiling (default: the packaged gala-2016.yaml)")
    g.add_argument("--ceiling", type=float, metavar="U",
                   help="utilization ceiling, target CPU / node cores (default: the spec's, 0.7)")
    g.add_argument("--start-rps", type=float, metavar="R",
                   help="first rate offered per mix (default: 30%% of the phase's own rate)")
    t = p.add_argument_group("target")
    t.add_argument("--host", metavar="URL", help="your own system on loopback (default: the built-in target)")
    t.add_argument("--target-pid", type=int, action="append", default=[], metavar="PID",
                   help="your target's process: its CPU is read (and limited); repeatable")
    t.add_argument("--target-cpu-limit", type=float, metavar="CORES",
                   help="confine the target to CORES cores for the whole search (cgroup quota): the node measured; "
                        "0.25-0.5 lets a 2-core machine's generator reach the knee (default: no limit)")
    t.add_argument("--target-config", type=Path, metavar="FILE", help="configuration for the built-in target")
    t.add_argument("--target-processes", type=int, default=1, metavar="N",
                   help="the built-in target as N processes over --target-store (default 1)")
    t.add_argument("--target-store", metavar="URL", help="Redis for --target-processes, e.g. redis://127.0.0.1:6379/0")
    b = p.add_argument_group("bounds")
    b.add_argument("--max-time", type=float, default=240.0, metavar="S",
                   help="wall-time bound of the whole search; steps that would pass it are not started (default 240)")
    b.add_argument("--step-s", type=float, default=6.0, metavar="S", help="measured seconds per step (default 6)")
    b.add_argument("--warm-s", type=float, default=2.5, metavar="S",
                   help="seconds in which a step's users start, not measured (default 2.5)")
    b.add_argument("--tolerance", type=float, default=0.10, metavar="X",
                   help="bisect until the budget's edge is bracketed within this fraction (default 0.10)")
    b.add_argument("--max-steps", type=int, default=9, metavar="N", help="steps per mix at most (default 9)")
    o = p.add_argument_group("output")
    o.add_argument("--out", type=Path, default=Path("results"), metavar="DIR",
                   help="parent folder: the search is written to DIR/<search-id>/ (default ./results)")
    o.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=main)


def _check(args) -> None:
    if not 0 < args.max_time <= 3600:
        raise InputError(f"--max-time {args.max_time:g}: expected seconds in (0, 3600]")
    if not 1 <= args.step_s <= 120 or not 0.5 <= args.warm_s <= 60:
        raise InputError("--step-s/--warm-s: expected 1..120 and 0.5..60 seconds")
    if not 0.01 <= args.tolerance <= 1:
        raise InputError(f"--tolerance {args.tolerance:g}: expected 0.01..1")
    if not 3 <= args.max_steps <= 50:
        raise InputError(f"--max-steps {args.max_steps}: expected 3..50")
    if args.ceiling is not None and not 0.05 <= args.ceiling <= 1:
        raise InputError(f"--ceiling {args.ceiling:g}: expected a utilization in 0.05..1")
    if args.start_rps is not None and not 0 < args.start_rps <= 1e6:
        raise InputError(f"--start-rps {args.start_rps:g}: expected a rate in (0, 1e6]")


def _line(step) -> str:
    cpu = "" if step.target_cpu_cores is None else (
        f", CPU {step.target_cpu_cores:.3f} cores" + (f" ({step.utilization:.0%})" if step.utilization is not None else ""))
    lat = ", ".join(f"{l} {v:.0f} ms" for l, v in step.link_latency_ms.items())
    verdict = f"broken: {', '.join(step.broken_links)}" if step.broken_links else "within budget"
    return (f"{step.mix} step {step.index}: {step.intended_rps:.0f} req/s offered, {step.achieved_rps:.0f} carried"
            f"{cpu}; {lat}; generator {step.generator_cpu_percent:.0f}%; {verdict}")


def main(args) -> int:
    say = (lambda _m: None) if args.quiet else (lambda m: print(f"gala probe: {m}", flush=True))
    return int(search(prepare(args, say))[0])


def defaults(**overrides) -> argparse.Namespace:
    """`gala probe`'s options at their defaults, with `overrides`: for a search started by another command."""
    sub = argparse.ArgumentParser().add_subparsers()
    register(sub)
    args = sub.choices["probe"].parse_args([])
    for k, v in overrides.items():
        if not hasattr(args, k):
            raise AttributeError(f"gala probe has no option {k}")
        setattr(args, k, v)
    return args


@dataclass
class Search:
    """A knee search checked and ready: nothing started, no folder made (bad input raised before)."""

    args: argparse.Namespace
    say: Callable[[str], None]
    bench: object               # loadtests.orchestrator.knee.KneeBench
    mixes: list
    budgets: dict
    ceiling: float
    node_cores: float | None
    folder: Path | None = None  # once searched: DIR/<search-id>/ (None: nothing was written)


def prepare(args, say: Callable[[str], None], check_limit: bool = False) -> Search:
    """Every check of a search before it starts: the bounds, the scenario's mixes, the spec, the target's
    options and (with `check_limit`, for a search that starts later) whether the CPU limit can be made."""
    from capacity_model.spec import load_spec
    from loadtests.orchestrator.cpulimit import CpuLimit
    from loadtests.orchestrator.knee import KneeBench, scenario_mixes
    from loadtests.scenario import DEFAULT_SCENARIO

    _check(args)
    scenario = args.scenario or DEFAULT_SCENARIO
    spec = load_spec(args.spec)
    bench = KneeBench(scenario=scenario, out_dir=args.out, host=args.host, target_pids=args.target_pid,
                      cpu_limit=args.target_cpu_limit, target_processes=args.target_processes,
                      target_store=args.target_store, target_config=args.target_config,
                      warm_s=args.warm_s, step_s=args.step_s)
    mixes = scenario_mixes(bench.sc, args.phase)
    if check_limit and args.target_cpu_limit is not None:
        with CpuLimit(args.target_cpu_limit, label="--target-cpu-limit"):
            pass  # made and removed at once: a limit that cannot be made is bad input now, not after a run
    critical = bench.sc.critical_links
    node_cores = args.target_cpu_limit
    if node_cores is None and bench.builtin:
        node_cores = float(args.target_processes)  # one Python process keeps at most one core busy
    return Search(args=args, say=say, bench=bench, mixes=mixes,
                  budgets={l: b for l, b in spec.latency_budgets.items() if l in critical},
                  ceiling=args.ceiling if args.ceiling is not None else spec.utilization_ceiling,
                  node_cores=node_cores)


def search(s: Search) -> tuple[int, KneeSearch]:
    """Run a prepared search into DIR/<search-id>/ (s.folder): its exit code and what it measured."""
    from capacity_model.contracts.knee import KneeSearch
    from capacity_model.knee import KneeConfig, generator_saturated, measure_step, next_rate, summarize
    from capacity_model.knee_report import write_knee
    from gala.contract.results import load_run
    from loadtests.orchestrator.knee import search_id, step_budget_s
    from loadtests.orchestrator.run_folder import iso_utc

    args, say, bench, mixes, budgets, ceiling, node_cores = (s.args, s.say, s.bench, s.mixes, s.budgets, s.ceiling,
                                                             s.node_cores)
    scenario = bench.scenario
    cfg = KneeConfig(ceiling=ceiling, tolerance=args.tolerance, max_steps=args.max_steps)
    sid = search_id(bench.sc.name)
    bench.out_dir = args.out / sid  # the search's own folder, made once the target can be limited
    started = time.time()
    deadline = started + args.max_time
    results, stopped = [], None
    say(f"knee search of {', '.join(m.name for m in mixes)} ({scenario}), ceiling {ceiling:.0%}, budgets "
        + (", ".join(f"{l} p{b.percentile:g} <= {b.latency_ms:g} ms" for l, b in budgets.items()) or "none")
        + f", at most {args.max_time:.0f} s; results in {bench.out_dir}")
    exit_code = ExitCode.OK
    try:
        with bench:
            if args.target_cpu_limit is not None:
                say(f"target limited to {args.target_cpu_limit:g} core(s) ({bench.mechanism})")
            for i, mix in enumerate(mixes):
                steps, stop = [], None
                rate = args.start_rps or 0.3 * mix.total_rps
                # each mix its share of the time left, so that the last one is searched too
                mix_deadline = time.time() + (deadline - time.time()) / (len(mixes) - i)
                while rate is not None:
                    if time.time() + step_budget_s(args.warm_s, args.step_s) > mix_deadline + 2.0:
                        stop = "time"
                        break
                    if not bench.alive():
                        stop = "target-exited"
                        break
                    folder = bench.run_step(mix, len(steps), rate)
                    step = measure_step(load_run(folder), mix=mix.name, index=len(steps), phase="step", links=list(mix.intended_rps),
                                        budgets=budgets, node_cores=node_cores)
                    steps.append(step)
                    say(_line(step))
                    rate, stop = next_rate(steps, cfg)
                knee = summarize(mix.name, mix.fractions, steps, cfg, node_cores, stop or "time")
                results.append(knee)
                say(_knee_line(knee))
                if stop == "generator":
                    stopped = f"the generator saturated in mix {mix.name}: {generator_saturated(steps[-1], cfg)}"
                    say(f"stopping: {stopped}; that knee is the generator's, not the target's (add --workers "
                        "capacity elsewhere, or lower --target-cpu-limit)")
                    exit_code = ExitCode.RUN_FAILED
                    break
                if stop == "target-exited":
                    stopped = "the target exited"
                    exit_code = ExitCode.RUN_FAILED
                    break
    except KeyboardInterrupt:
        stopped = "interrupted"
        exit_code = ExitCode.INTERRUPTED
    speeds = [st.speed_units_per_cpu_s for k in results for st in k.steps if st.speed_units_per_cpu_s]
    found = KneeSearch(
        search_id=sid, scenario=str(scenario), target="builtin" if bench.builtin else str(bench.url),
        target_processes=args.target_processes, cpu_limit_cores=args.target_cpu_limit, node_cores=node_cores,
        ceiling=ceiling, budgets={l: {"percentile": b.percentile, "latency_ms": b.latency_ms} for l, b in budgets.items()},
        started_at=iso_utc(started), ended_at=iso_utc(time.time()), wall_s=round(time.time() - started, 1),
        speed_units_per_cpu_s=statistics.median(speeds) if speeds else None, mixes=results, stopped=stopped,
    )
    if bench.out_dir.exists():
        write_knee(bench.out_dir, found)
        s.folder = bench.out_dir
        say(f"knee: {bench.out_dir / 'knee.md'} ({found.wall_s:.0f} s)")
    return int(exit_code), found


def _knee_line(k) -> str:
    per = "per node" + (f" of {k.node_cores:g} cores" if k.node_cores else "")
    at_c = f"{k.rps_at_ceiling:.0f} req/s at the {k.ceiling:.0%} ceiling" if k.rps_at_ceiling is not None \
        else "ceiling not bracketed"
    at_b = (f"{'>= ' if k.budget_lower_bound else ''}{k.rps_at_budget:.0f} req/s within budget"
            if k.rps_at_budget is not None else "no step within budget")
    sat = f", saturation {k.rps_at_saturation:.0f} req/s" if k.rps_at_saturation is not None else ""
    return f"{k.mix}: {at_c}, {at_b}{sat} ({per}; stopped: {k.stop_reason}){'; ' + k.note if k.note else ''}"
