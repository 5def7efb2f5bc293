"""`gala run --knee`: the knee search a rehearsal's plan rests on (issue 11), so that the plan's demand
at the utilization ceiling is measured rather than extrapolated linearly from the rehearsal's load.

`--knee DIR` names an earlier search (`gala probe`'s folder, knee.json); `--knee measure` runs one after
the rehearsal, with `gala probe`'s own code (gala.cli.probe: prepare, search). Either way the plan is
`gala plan RUN KNEE`'s (capacity_model.api.plan_run over both folders). Everything is checked before
any load is sent: a bad folder or a search that cannot run is one line and exit 2, nothing made.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from gala.contract.errors import ExitCode, InputError

MEASURE = "measure"
DEFAULT_LIMIT = 0.25  # a quarter core: a node this machine's generator can saturate (docs/capacity-model.md)


def add_options(o) -> None:
    """The options of `gala run` that ask for a knee (in its "output and after the run" group)."""
    o.add_argument("--knee", metavar="DIR|measure",
                   help="plan from the run and a knee search together, as `gala plan RUN KNEE` does: DIR is an "
                        "earlier search's folder (gala probe, results/<search-id>), `measure` runs one after the "
                        "rehearsal on the scenario's mixes (the target held to --target-cpu-limit, else 0.25 core)")
    o.add_argument("--knee-phase", action="append", metavar="NAME",
                   help="with --knee measure: search this phase's mix only; repeatable (default: every phase that "
                        "loads a critical link, as gala probe --phase)")
    o.add_argument("--knee-max-time", type=float, metavar="S",
                   help="with --knee measure: wall-time bound of the search (default 240, as gala probe --max-time)")
    o.add_argument("--knee-step-s", type=float, metavar="S",
                   help="with --knee measure: measured seconds per step (default 6, as gala probe --step-s)")


@dataclass
class Knee:
    """What --knee asked for, checked: a folder to plan with, or a search ready to run."""

    folder: Path | None = None
    search: object | None = None   # gala.cli.probe.Search
    default_limit: bool = False    # the search's CPU limit is DEFAULT_LIMIT, not the user's

    def after(self, outcome, quiet: bool) -> tuple[Path | None, int]:
        """The knee folder to plan with (None: the run alone) and the search's exit code (0 without one)."""
        if self.search is None:
            return self.folder, int(ExitCode.OK)
        if outcome.info.status != "complete":
            print(f"gala run: the rehearsal is {outcome.info.status}, not complete: no knee search; the plan is "
                  "from the run alone", file=sys.stderr, flush=True)
            return None, int(ExitCode.OK)
        return _measure(self, outcome.run_dir, quiet)


def check(args) -> Knee | None:
    """--knee and its options, before anything starts (InputError: one line, exit 2, nothing made)."""
    extra = [f for f, v in (("--knee-phase", args.knee_phase), ("--knee-max-time", args.knee_max_time),
                            ("--knee-step-s", args.knee_step_s)) if v is not None]
    if args.knee is None:
        if extra:
            raise InputError(f"{extra[0]}: only with --knee measure")
        return None
    if args.no_plan:
        raise InputError("--knee: a knee is for the plan; drop --no-plan (or --knee)")
    if args.knee != MEASURE:
        if extra:
            raise InputError(f"{extra[0]}: only with --knee measure (--knee {args.knee} is a search made already)")
        return Knee(folder=check_folder(Path(args.knee), args.scenario))
    return _prepare(args)


def check_folder(folder: Path, scenario: Path | None) -> Path:
    """A knee search's folder the plan can use: whole (knee.json is written last), with a mix measured on
    a critical link of the scenario, and the steps' folders the plan reads (a black-box search's)."""
    from capacity_model.knee_report import KNEE_FILE, blind_step_runs, is_knee_search, load_knee
    from loadtests.scenario import DEFAULT_SCENARIO, load_scenario

    if not folder.is_dir():
        raise InputError(f"--knee {folder}: no such folder; expected a knee search's folder (results/<search-id>, "
                         f"written by gala probe) or the word {MEASURE}")
    if not is_knee_search(folder):
        raise InputError(f"--knee {folder}: no {KNEE_FILE} (a search still running or cut short before writing it, "
                         "or not a knee search's folder); expected a folder written by gala probe")
    try:
        knee = load_knee(folder)
    except InputError as exc:  # it names the file and the field; say which option gave it
        raise InputError(f"--knee {exc}") from None
    if not any(k.steps for k in knee.mixes):
        raise InputError(f"--knee {folder / KNEE_FILE}: mixes: no step measured"
                         + (f" (the search stopped: {knee.stopped})" if knee.stopped else "") + "; nothing to plan on")
    critical = set(load_scenario(scenario or DEFAULT_SCENARIO).critical_links)
    if not any(set(k.fractions) & critical for k in knee.mixes):
        raise InputError(f"--knee {folder / KNEE_FILE}: mixes: none loads a critical link of this scenario "
                         f"({', '.join(sorted(critical))}); expected a search of the same system")
    if knee.stopped:  # gala plan RUN KNEE takes it as it is; say what it rests on
        print(f"gala run: warning: --knee {folder}: that search stopped early ({knee.stopped}); the plan uses what "
              "it measured", file=sys.stderr, flush=True)
    for step in blind_step_runs(folder, knee):  # without the target's CPU the plan reads the steps as runs
        if not (step / "run.json").is_file():
            raise InputError(f"--knee {step}: no run.json; the black-box search's steps are what the plan reads")
    return folder


def _prepare(args) -> Knee:
    from gala.cli import probe

    if args.host and not args.target_pid:
        raise InputError("--knee measure: needs the target's CPU: the built-in target, or --host with --target-pid "
                         "(a black-box search is gala probe's; then --knee DIR)")
    limit = args.target_cpu_limit if args.target_cpu_limit is not None else DEFAULT_LIMIT
    knobs = {"max_time": args.knee_max_time, "step_s": args.knee_step_s}
    pargs = probe.defaults(
        scenario=args.scenario, phase=args.knee_phase, spec=args.spec, host=args.host, target_pid=args.target_pid,
        target_cpu_limit=limit, target_config=args.target_config, target_processes=args.target_processes,
        target_store=args.target_store, out=args.out, quiet=args.quiet,
        **{k: v for k, v in knobs.items() if v is not None})
    try:
        search = probe.prepare(pargs, _say(args.quiet), check_limit=True)
    except InputError as exc:  # probe's messages name its options: say which of gala run's they are
        msg = str(exc).replace("--max-time", "--knee-max-time").replace("--phase", "--knee-phase") \
            .replace("--step-s/--warm-s", "--knee-step-s").replace("--step-s", "--knee-step-s")
        raise InputError(msg) from None
    return Knee(search=search, default_limit=args.target_cpu_limit is None)


def _say(quiet: bool):
    return (lambda _m: None) if quiet else (lambda m: print(f"gala run (knee): {m}", flush=True))


def _measure(knee: Knee, run_dir: Path, quiet: bool) -> tuple[Path | None, int]:
    from gala.cli import probe

    s = knee.search
    if knee.default_limit:
        s.say(f"the search holds the target to {DEFAULT_LIMIT:g} core (no --target-cpu-limit given): the node "
              "measured at its edge")
    code, found = probe.search(s)
    if code == ExitCode.INTERRUPTED:
        print(f"gala run: the knee search was interrupted; the rehearsal's folder {run_dir} is whole "
              f"(gala plan {run_dir} plans from it)", file=sys.stderr, flush=True)
        return s.folder, code
    if code != ExitCode.OK:
        print(f"gala run: the knee search stopped: {found.stopped}; its figures are not the node's, so the plan is "
              f"from the run alone (extrapolated); exit {code}", file=sys.stderr, flush=True)
        return None, code
    print(f"gala run: knee search {s.folder} ({found.wall_s:.0f} s); the plan rests on it", flush=True)
    return s.folder, code
