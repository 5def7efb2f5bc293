"""The rehearsal as a plain locustfile: `locust -f loadtests/locustfile.py` (web UI included) or headless.

Custom arguments: `--scenario FILE` (default: the packaged feb1.yaml), `--duration-scale X`, `--seed N`,
`--gala-out DIR` (gala's per-phase, per-link files; without it none are written and Locust works as
usual). The module exposes exactly one User class per user the scenario names, and one LoadTestShape
that plays its phases. Locust builds the user classes before it parses arguments, so the scenario is
read at import from the command line (`--scenario`, `--duration-scale`, `--seed`) or the environment
(`GALA_SCENARIO`, `GALA_DURATION_SCALE`, `GALA_SEED`); workers must be given the same ones.
"""

from __future__ import annotations

import os
import sys

from locust import events

from gala.contract.errors import InputError
from loadtests.locust_plugin.classes import build_shape, build_user_classes, peek_arguments
from loadtests.locust_plugin.runtime import short_gc_pauses, sigterm_during_shape
from loadtests.locust_plugin.shape import PhaseDispatcher, ScenarioShape
from loadtests.locust_plugin.stats import GalaStats
from loadtests.scenario import DEFAULT_SCENARIO, load_scenario


# A distributed master's start() waits up to 1 s after each ramp for the workers' reports, and the
# shape cannot tick meanwhile: phase edges would drift by up to a second. 0.2 s is enough on loopback.
os.environ.setdefault("LOCUST_WAIT_FOR_WORKERS_REPORT_AFTER_RAMP_UP", "0.2")

try:
    _args = peek_arguments(sys.argv[1:])
    SCENARIO = load_scenario(_args.scenario, duration_scale=_args.duration_scale, seed=_args.seed)
    _user_classes = build_user_classes(SCENARIO, module=__name__)
except InputError as exc:  # one clear line and exit 2, as gala's CLI does: no traceback from Locust's import
    print(f"locust: {exc}", file=sys.stderr)
    sys.exit(exc.exit_code)

globals().update(_user_classes)
ScenarioPhases = build_shape(SCENARIO, _user_classes, module=__name__)


@events.init_command_line_parser.add_listener
def _add_arguments(parser) -> None:
    group = parser.add_argument_group("gala", "the rehearsal scenario (read before other options; give workers the same)")
    group.add_argument("--scenario", default=str(DEFAULT_SCENARIO), help="scenario YAML (default: the packaged feb1.yaml)")
    group.add_argument("--duration-scale", type=float, default=1.0, help="stretch (>1) or shrink (<1) every phase")
    group.add_argument("--seed", type=int, default=None, help="random seed (default: the scenario's)")
    group.add_argument("--gala-out", default=None, help="directory for gala's per-phase, per-link files (default: none)")


@events.init.add_listener
def _on_init(environment, **_kw) -> None:
    opts = environment.parsed_options
    out = getattr(opts, "gala_out", None) if opts else None
    if environment.shape_class is not None and isinstance(environment.shape_class, ScenarioShape):
        environment.dispatcher_class = PhaseDispatcher  # exact per-class counts per phase
    if environment.host is None and not SCENARIO.target.builtin:
        environment.host = SCENARIO.target.url
    stats = GalaStats(environment, SCENARIO, out)
    environment.gala_stats = stats
    ScenarioShape.on_phases = staticmethod(stats.on_phases)
    if opts is not None and opts.headless and not opts.worker and environment.shape_class is not None:
        sigterm_during_shape(environment)
    short_gc_pauses(environment)
