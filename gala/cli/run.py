"""`gala run`: a rehearsal (target + Locust subprocesses) into one results folder, then the plan
and, with --budgets, the gate. Thin: the work is in loadtests.orchestrator.runner, capacity_model.*."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from gala.cli import run_knee
from gala.contract.errors import ExitCode, InputError, exit_codes_help

EPILOG = """\
examples:
  gala run                                   the 1 February mix against the built-in target, then a plan
  gala run --duration-scale 0.3 --no-plan    a 30-second smoke run
  gala run --host http://127.0.0.1:8080 --target-pid 4242 --scenario my.yaml
                                             your own system on loopback, its CPU sampled
  gala run --workers 2                       a Locust master and 2 worker processes on this machine
  gala run --target-cpu-limit 0.25           the built-in target held to a quarter core: a node to saturate
  gala run --budgets budgets.yaml --abort-on-fail
                                             CI: the gate's exit code; stop early once a budget is broken
  gala run --web-ui                          watch in Locust's web UI on http://127.0.0.1:8089
  gala run --metrics-port 9646 --otel        Prometheus on 127.0.0.1:9646, OpenTelemetry from OTEL_* variables
  gala run -u 100 -t 1m                      the busiest moment scaled to 100 users; stop after a minute
  gala run --knee measure                    then a knee search of the mixes (target held to 0.25 core, ~4 min):
                                             the plan's demand at the ceiling measured, not extrapolated
  gala run --knee results/<knee-search>      plan from the run and an earlier search (gala probe) together

Locust's options: -t/--run-time caps the run as in Locust. -u/--users N scales every phase's users by
the same factor so that the busiest moment runs N users (each class keeps its share and each user its
pace, so every intended rate scales by that factor too); -r/--spawn-rate R makes every phase ramp at R
users/s. The scenario file stays the source of truth: `gala check FILE -u N` shows the scaled plan.
Before anything starts, gala run makes every check `gala check` makes (a fault: exit 2, nothing run).

--knee: the plan after the rehearsal is `gala plan RUN KNEE`'s. `--knee measure` searches only after a
complete rehearsal; a search stopped by the generator's saturation (or the target's exit) leaves the plan
to the run alone (extrapolated) and the exit code 1; Ctrl-C during it exits 130, the run's folder whole.

""" + exit_codes_help(ExitCode.OK, ExitCode.RUN_FAILED, ExitCode.BAD_INPUT, ExitCode.NODE_BUDGET_SHORT,
                    ExitCode.BUDGET_BROKEN, ExitCode.INTERRUPTED,
                    ok="done: a complete or degraded run, whatever the plan says") + """
  (3 only with --fail-on-short; 99 only with --budgets, the gate's verdict; 1 also when --knee measure's
  search stopped short: the generator saturated or the target exited)
"""


def register(sub) -> None:
    p = sub.add_parser(
        "run", help="rehearse a scenario against a target and write results/<run-id>/",
        description="Rehearse a scenario (default: the 1 February 2016 mix) with Locust against the built-in "
                    "target or your own system; write one results folder, print a table per phase and link, "
                    "then plan capacity from it.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_argument_group("what to run")
    g.add_argument("--scenario", type=Path, metavar="FILE",
                   help="scenario YAML (default: the packaged loadtests/scenarios/feb1.yaml)")
    g.add_argument("--duration-scale", type=float, default=1.0, metavar="X",
                   help="stretch (>1) or shrink (<1) every phase; 0.2 makes feb1 an ~20 s run (default 1)")
    g.add_argument("--seed", type=int, metavar="N", help="random seed (default: the scenario's)")
    t = p.add_argument_group("target")
    t.add_argument("--host", metavar="URL",
                   help="your own system's base URL; no built-in target is started (loopback only unless the "
                        "scenario sets target.allow_remote_target)")
    t.add_argument("--target-pid", type=int, action="append", default=[], metavar="PID",
                   help="sample this process's CPU (and its children's) as the target; repeatable")
    t.add_argument("--target-nodes", type=int, default=1, metavar="N",
                   help="nodes behind the target, recorded in run.json for the plan (default 1)")
    t.add_argument("--target-cores-per-node", type=float, metavar="C",
                   help="cores of each node behind --host, recorded in run.json so the plan scales a staging "
                        "node to the night's node shape (default: unknown; one staging node = one night node)")
    t.add_argument("--target-cpu-limit", type=float, metavar="CORES",
                   help="confine the target (the built-in one, or each --target-pid process and its children) to "
                        "CORES cores with a cgroup CPU quota: a small node this machine's generator can saturate; "
                        "recorded in run.json (needs a writable cgroup v2 with the cpu controller, or v1 cpu: root)")
    t.add_argument("--target-config", type=Path, metavar="FILE", help="configuration for the built-in target")
    t.add_argument("--target-processes", type=int, default=1, metavar="N",
                   help="run the built-in target as N processes on one port sharing their state in --target-store; "
                        "their CPU is sampled per process and the plan pools them as one service (default 1)")
    t.add_argument("--target-store", metavar="URL",
                   help="the Redis the built-in target's processes share, e.g. redis://127.0.0.1:6379/0 "
                        "(default: in memory, one process); its server's CPU is sampled as a service of its own")
    t.add_argument("--inject", action="append", default=[], metavar="LINK:KIND=VALUE",
                   help="a fault for the built-in target: LINK:latency=MS, LINK:errors=RATIO or LINK:stall=S; repeatable")
    lh = p.add_argument_group("Locust's habits")
    lh.add_argument("-t", "--run-time", type=timespan, metavar="TIME",
                    help="stop the run after TIME (e.g. 30s, 2m, 1h30m), as Locust does (default: the scenario's end)")
    lh.add_argument("-u", "--users", type=int, metavar="N",
                    help="scale every phase's users so that the busiest moment runs N users (see below)")
    lh.add_argument("-r", "--spawn-rate", type=float, metavar="R",
                    help="every phase ramps its users at R per second (default: each phase's spawn_rate)")
    w = p.add_argument_group("watch it live")
    w.add_argument("--web-ui", nargs="?", type=int, const=8089, metavar="PORT",
                   help="Locust's web UI on http://127.0.0.1:PORT (default 8089), driven by the scenario's shape")
    w.add_argument("--metrics-port", type=int, metavar="PORT",
                   help="serve Prometheus metrics on http://127.0.0.1:PORT/metrics from the generator "
                        "(examples/grafana/gala-dashboard.json reads them)")
    w.add_argument("--otel", action="store_true",
                   help="Locust's OpenTelemetry (configured by the OTEL_* variables), with gala's phase and link "
                        "as attributes; needs pip install 'gala[otel]'")
    l = p.add_argument_group("generator")
    l.add_argument("--workers", type=int, default=0, metavar="N",
                   help="run a Locust master and N worker processes on this machine (default 0: one process)")
    l.add_argument("--remote-workers", type=int, default=0, metavar="N",
                   help="master only: wait for N workers connecting from elsewhere (a Kubernetes master pod)")
    l.add_argument("--master-bind-port", type=int, metavar="PORT",
                   help="with --remote-workers: the port workers connect to (default 5557)")
    l.add_argument("--workers-wait", type=int, metavar="S",
                   help="how long the master waits for its workers to connect (default 60 s local, 300 s remote)")
    o = p.add_argument_group("output and after the run")
    o.add_argument("--out", type=Path, default=Path("results"), metavar="DIR",
                   help="parent folder; the run is written to DIR/<run-id>/ (default: ./results)")
    o.add_argument("--no-plan", action="store_true", help="do not make a capacity plan after the run")
    o.add_argument("--spec", type=Path, metavar="FILE", help="capacity spec for the plan (default: the packaged one)")
    run_knee.add_options(o)
    o.add_argument("--fail-on-short", action="store_true",
                   help="exit 3 when the plan says the node budget is short (default: the plan is a report; exit 0)")
    o.add_argument("--budgets", type=Path, metavar="FILE", help="gate the run on these latency budgets (CI)")
    o.add_argument("--abort-on-fail", action="store_true",
                   help="with --budgets: stop the run as soon as a budget is clearly broken")
    o.add_argument("--quiet", action="store_true", help="no live line (the final table is still printed)")
    p.set_defaults(func=main)


def timespan(text: str) -> float:
    """Locust's time format: 90, 90s, 2m, 1h30m, 1h2m3s -> seconds."""
    m = re.fullmatch(r"\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text or "")
    if not text or not m or not any(m.groups()):
        raise argparse.ArgumentTypeError(f"expected a time like 30s, 2m or 1h30m, got {text!r}")
    h, mi, sec = m.groups()
    return int(h or 0) * 3600 + int(mi or 0) * 60 + float(sec or 0)


def check_or_refuse(args, scenario: Path) -> float | None:
    """Every check `gala check` makes, before anything starts: faults are printed and refused (exit 2).
    Returns the users scale of -u."""
    from gala.cli.check import check_inputs, refuse, users_scale_for

    scale = users_scale_for(scenario, args.users) if args.users is not None else None
    report = check_inputs(scenario, args.budgets, args.spec, duration_scale=args.duration_scale,
                          users_scale=scale, spec=not args.no_plan)
    refuse(report.faults)
    return scale


def _plan(run_dir: Path, spec: Path | None, quiet: bool, knee: Path | None = None) -> int:
    from capacity_model.api import plan_run

    progress = (lambda _msg: None) if quiet else (lambda msg: print(f"gala plan: {msg}", flush=True))
    # with a knee search: `gala plan RUN KNEE` (its default report folder is RUN/plan too)
    outcome = plan_run([run_dir] + ([knee] if knee is not None else []), spec_path=spec, out_dir=run_dir / "plan",
                       progress=progress)
    print(outcome.headline, flush=True)
    return int(outcome.exit_code)


def _gate(run_dir: Path, budgets: Path) -> int:
    from gala.gate.verdict import gate_run

    outcome = gate_run(run_dir, budgets, out_dir=run_dir / "gate")
    print(outcome.table, flush=True)
    return int(outcome.exit_code)


def main(args) -> int:
    from loadtests.orchestrator.options import RunOptions
    from loadtests.orchestrator.runner import run
    from loadtests.scenario import DEFAULT_SCENARIO

    if args.abort_on_fail and not args.budgets:
        raise InputError("--abort-on-fail: needs --budgets FILE (the budgets to check while running)")
    if args.master_bind_port is not None and not args.remote_workers:
        raise InputError("--master-bind-port: only with --remote-workers N")
    if args.workers_wait is not None and (args.workers_wait < 1 or not (args.workers or args.remote_workers)):
        raise InputError("--workers-wait: expected seconds >= 1, with --workers or --remote-workers")
    if args.budgets is not None and not args.budgets.is_file():
        raise InputError(f"--budgets {args.budgets}: no such file")
    if args.fail_on_short and args.no_plan:
        raise InputError("--fail-on-short: needs the plan (drop --no-plan)")
    # a bad scenario, budget or spec is bad input now, not after the rehearsal
    scale = check_or_refuse(args, args.scenario or DEFAULT_SCENARIO)
    knee = run_knee.check(args)  # a bad --knee folder, or a search that cannot run: before any load
    check = None
    if args.budgets is not None and args.abort_on_fail:
        from gala.gate.abort import abort_check
        from gala.gate.budgets import load_budgets

        budgets = load_budgets(args.budgets)
        check = lambda live: abort_check(budgets, live)  # noqa: E731
    outcome = run(RunOptions(
        scenario=args.scenario or DEFAULT_SCENARIO, host=args.host, target_pids=args.target_pid,
        target_nodes=args.target_nodes, target_cores_per_node=args.target_cores_per_node,
        target_cpu_limit=args.target_cpu_limit,
        out=args.out, duration_scale=args.duration_scale, seed=args.seed,
        workers=args.workers, remote_workers=args.remote_workers, master_bind_port=args.master_bind_port,
        workers_wait_s=args.workers_wait,
        target_config=args.target_config, target_processes=args.target_processes, target_store=args.target_store,
        inject=args.inject, abort_check=check, quiet=args.quiet,
        command=["gala", *sys.argv[1:]], users_scale=scale, spawn_rate=args.spawn_rate,
        run_time_s=args.run_time, metrics_port=args.metrics_port, otel=args.otel, web_port=args.web_ui,
    ))
    return after_run(outcome, args, knee)


def after_run(outcome, args, knee: run_knee.Knee | None = None) -> int:
    """Plan (with the knee search `knee` names or measures) and gate a finished run as the options ask;
    the exit code of the whole `gala run`."""
    if outcome.exit_code == ExitCode.INTERRUPTED or outcome.info.status == "failed":
        return outcome.exit_code
    code = outcome.exit_code
    if code == ExitCode.RUN_FAILED:  # the target died or most requests failed: nothing to plan from
        print("gala run: the run failed (see the warnings above); no plan", file=sys.stderr, flush=True)
    elif not args.no_plan and not outcome.info.interrupted:
        folder, knee_code = knee.after(outcome, args.quiet) if knee is not None else (None, ExitCode.OK)
        if knee_code == ExitCode.INTERRUPTED:
            return knee_code
        plan_code = _plan(outcome.run_dir, args.spec, args.quiet, folder)
        if knee_code != ExitCode.OK:  # the search stopped short (generator saturated, target exited): as probe's
            code = knee_code
        elif args.fail_on_short and plan_code == ExitCode.NODE_BUDGET_SHORT:
            code = plan_code
    if args.budgets is not None:
        gate_code = _gate(outcome.run_dir, args.budgets)  # its verdict is written either way, for CI's page
        code = code if code == ExitCode.RUN_FAILED else (gate_code or code)
    return code
