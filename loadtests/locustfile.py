"""The rehearsal as a plain locustfile: `locust -f loadtests/locustfile.py` (web UI included) or headless.

Custom arguments: `--scenario FILE` (default: the packaged feb1.yaml), `--duration-scale X`, `--seed N`,
`--gala-out DIR` (gala's per-phase, per-link files; without it none are written and Locust works as
usual). The module exposes exactly one User class per user the scenario names, and one LoadTestShape
that plays its phases. Locust builds the user classes before it parses arguments, so the scenario is
read at import from the command line (`--scenario`, `--duration-scale`, `--seed`) or the environment
(`GALA_SCENARIO`, `GALA_DURATION_SCALE`, `GALA_SEED`); workers must be given the same ones.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import os
import signal
import sys
import time

import gevent
import greenlet

from locust import events

from gala.contract.errors import InputError
from loadtests.scenario import DEFAULT_SCENARIO, Scenario, ScenarioError, load_scenario
from loadtests.locust_plugin.shape import PhaseDispatcher, ScenarioShape
from loadtests.locust_plugin.stats import GalaStats
from loadtests.locust_plugin.users.base import ScenarioUser
from loadtests.locust_plugin.users.http import DeclarativeUser
from loadtests.locust_plugin.users.pacing import paced


def _peek_arguments(argv: list[str]) -> argparse.Namespace:
    """The scenario options, read before Locust parses its command line (it needs the classes first)."""
    try:
        scale = float(os.environ.get("GALA_DURATION_SCALE") or 1.0)
        seed = int(os.environ["GALA_SEED"]) if os.environ.get("GALA_SEED") else None
    except ValueError as exc:
        raise InputError(f"GALA_DURATION_SCALE / GALA_SEED: expected a number ({exc})") from None
    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument("--scenario", default=os.environ.get("GALA_SCENARIO") or str(DEFAULT_SCENARIO))
    peek.add_argument("--duration-scale", type=float, default=scale)
    peek.add_argument("--seed", type=int, default=seed)
    return peek.parse_known_args(argv)[0]


def _user_base(scenario: Scenario, name: str) -> type[ScenarioUser]:
    spec = scenario.users[name]
    if spec.requests is not None:
        return DeclarativeUser
    module_name, _, class_name = spec.class_path.partition(":")
    try:
        base = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ScenarioError(f"{scenario.source_path}: users.{name}.class_path: cannot import {spec.class_path} ({exc})") from None
    if not (isinstance(base, type) and issubclass(base, ScenarioUser)):
        raise ScenarioError(f"{scenario.source_path}: users.{name}.class_path: {spec.class_path} is not a "
                            "loadtests.locust_plugin.users.base.ScenarioUser subclass")
    return base


def build_user_classes(scenario: Scenario) -> dict[str, type[ScenarioUser]]:
    """One concrete Locust User class per scenario user, named as the scenario names it."""
    host = None if scenario.target.builtin else scenario.target.url
    arrival = any(p.arrival_rps for p in scenario.phases)
    classes = {}
    for name, spec in scenario.users.items():
        attrs = {"abstract": False, "spec": spec, "scenario_seed": scenario.seed, "fixed_count": 0,
                 "__module__": __name__, "__doc__": f"Scenario user {name!r} ({spec.class_path or 'declarative'})."}
        if host:
            attrs["host"] = host
        if arrival:  # arrival-rate phases set each class's pace from the phase running now
            attrs["wait_time"] = paced(_rate_fn(scenario, name))
        classes[name] = type(name, (_user_base(scenario, name),), attrs)
    return classes


def _rate_fn(scenario: Scenario, name: str):
    def rate(user) -> float:
        return scenario.user_rates_at(_run_time_s(user))[name]
    return rate


def _run_time_s(user) -> float:
    gala = getattr(user.environment, "gala_stats", None)
    return gala.now_s() if gala else 0.0


def build_shape(scenario: Scenario, user_classes: dict[str, type]) -> type[ScenarioShape]:
    return type("ScenarioPhases", (ScenarioShape,), {
        "abstract": False, "scenario": scenario, "user_classes_by_name": user_classes, "__module__": __name__,
        "__doc__": f"Plays the phases of scenario {scenario.name!r}."})


# A distributed master's start() waits up to 1 s after each ramp for the workers' reports, and the
# shape cannot tick meanwhile: phase edges would drift by up to a second. 0.2 s is enough on loopback.
os.environ.setdefault("LOCUST_WAIT_FOR_WORKERS_REPORT_AFTER_RAMP_UP", "0.2")
GC_FREEZE_AGAIN_S = 3.0  # after spawning completes: the last users' on_start and first request are done

try:
    _args = _peek_arguments(sys.argv[1:])
    SCENARIO = load_scenario(_args.scenario, duration_scale=_args.duration_scale, seed=_args.seed)
    _user_classes = build_user_classes(SCENARIO)
except InputError as exc:  # one clear line and exit 2, as gala's CLI does: no traceback from Locust's import
    print(f"locust: {exc}", file=sys.stderr)
    sys.exit(exc.exit_code)

globals().update(_user_classes)
ScenarioPhases = build_shape(SCENARIO, _user_classes)


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
        _sigterm_during_shape(environment)
    _short_gc_pauses(environment)


def _short_gc_pauses(environment) -> None:
    """Keep Python's full garbage collections from stopping the load for tens of milliseconds.

    A full collection walks every tracked object while the gevent loop waits: measured with 2,000 users,
    ~190k objects (half of them pandas, numpy and pydantic, imported for the stats) took 80-135 ms, about
    every 10 s, which was most of the p99 the generator added. `gc.freeze()` moves objects out of the
    collector's reach: the imported modules now, and the running users once spawning completes, so a
    full collection only walks what changed since (a few ms). Frozen objects are still freed by reference
    counting; only cycles are kept, and stopped users are cycles (user <-> client), so when any user frozen
    last time has stopped, one full collection (at that moment, not at random) reclaims them.
    """
    gc.collect()  # do not freeze the imports' garbage
    gc.freeze()
    frozen_users: list = []  # the user greenlets alive at the last freeze

    def freeze() -> None:
        nonlocal frozen_users
        if any(g.dead for g in frozen_users):
            return  # keep track of the stopped ones: the next spawning_complete reclaims them
        gc.freeze()
        frozen_users = list(getattr(environment.runner, "user_greenlets", ()))

    def on_spawning_complete(**_kw) -> None:
        nonlocal frozen_users
        if any(g.dead for g in frozen_users):
            frozen_users = []  # (the list must not keep them alive)
            t0 = time.perf_counter()
            gc.unfreeze()
            gc.collect()
            logging.getLogger("gala").debug("gc: reclaimed stopped users in %.0f ms", (time.perf_counter() - t0) * 1000)
        freeze()
        # The last users spawned have not run yet: freeze again once they have started and connected.
        gevent.spawn_later(GC_FREEZE_AGAIN_S, freeze)

    environment.events.spawning_complete.add_listener(on_spawning_complete)


def _sigterm_during_shape(environment) -> None:
    """Make SIGTERM end a headless shape run cleanly, as Ctrl-C does.

    Locust (2.47) blocks on the shape greenlet before it installs its own SIGTERM handler, so a SIGTERM
    during a headless shape run would kill the process with no stop, no events and no files. Until the
    run stops, SIGTERM raises KeyboardInterrupt in the main greenlet: Locust then stops the shape, fires
    test_stop/quitting/quit and writes its reports, as for Ctrl-C.
    """
    main = greenlet.getcurrent()
    hub = gevent.get_hub()

    def on_sigterm() -> None:
        logging.getLogger("gala").info("Got SIGTERM during the shape: stopping the run")
        hub.loop.run_callback(main.throw, KeyboardInterrupt)

    handler = gevent.signal_handler(signal.SIGTERM, on_sigterm)
    # Once the shape has stopped, Locust's own handler is in place: ours would interrupt its shutdown.
    environment.events.test_stop.add_listener(lambda **_kw: handler.cancel())
