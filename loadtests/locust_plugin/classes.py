"""How a scenario becomes Locust classes: one User class per scenario user, and the shape.

Locust builds user classes before it parses its command line, so the scenario options are peeked
from argv (and the environment) first. Runs inside Locust's processes.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from locust import User

from gala.contract.errors import InputError
from gala.contract.yamlfile import line_of
from loadtests.locust_plugin.shape import ScenarioShape
from loadtests.locust_plugin.users.base import PacedPlainUser, ScenarioUser
from loadtests.locust_plugin.users.http import DeclarativeUser
from loadtests.locust_plugin.users.pacing import paced
from loadtests.scenario import DEFAULT_SCENARIO, Scenario, ScenarioError
from loadtests.scenario.feeder import feeder_path, read_feeder


def peek_arguments(argv: list[str]) -> argparse.Namespace:
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
    peek.add_argument("--users-scale", type=float, default=None)
    peek.add_argument("--ramp-rate", type=float, default=None)
    return peek.parse_known_args(argv)[0]


class NotAUserClass(Exception):
    """A `class_path` that does not give a Locust User class; the message says what it is and what was expected."""


_EXPECTED = ("expected a Locust User class (a subclass of locust.User: HttpUser, FastHttpUser, or gala's "
             "loadtests.locust_plugin.users.base.ScenarioUser)")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def _what(value: object) -> str:
    """What a module attribute is, said for a person: `a function`, `an int (42)`, `a class not derived ...`."""
    if isinstance(value, type):
        return "a class not derived from locust.User"
    kind = type(value).__name__
    article = "an" if kind[:1].lower() in "aeiou" else "a"
    if callable(value):
        return f"{article} {kind}"
    return f"{article} {kind} ({repr(value)[:60]})"


def import_user_class(class_path: str, search_dir: Path | None = None) -> type[User]:
    """The Locust User class a `class_path` (module:Class) names, imported as Locust's processes import it (a
    module beside the scenario, in `search_dir`, by its name); NotAUserClass, one line, when it is not one."""
    module_name, _, class_name = class_path.partition(":")
    if search_dir is not None and str(search_dir) not in sys.path:
        sys.path.append(str(search_dir))  # a locustfile beside the scenario imports by its name
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise NotAUserClass(f"cannot import {module_name} ({_first_line(exc)}); {_EXPECTED}") from None
    except (Exception, SystemExit) as exc:  # user code: whatever its import raises is a fault of the input
        raise NotAUserClass(f"importing {module_name} raised {_first_line(exc)}; expected a module that "
                            "imports without error") from None
    try:
        value = getattr(module, class_name)
    except AttributeError:
        raise NotAUserClass(f"module {module_name} has no attribute {class_name!r}; {_EXPECTED}") from None
    if isinstance(value, type) and issubclass(value, User):
        return value
    raise NotAUserClass(f"{class_path} is {_what(value)}; {_EXPECTED}")


def _user_bases(scenario: Scenario, name: str) -> tuple[type, ...]:
    """The bases of a scenario user's class: gala's own, or a plain Locust class with gala's pacing first."""
    spec = scenario.users[name]
    if spec.requests is not None:
        return (DeclarativeUser,)
    where = f"{scenario.source_path}:{line_of(scenario.lines, ('users', name, 'class_path'))}: users.{name}.class_path"
    try:
        base = import_user_class(spec.class_path, scenario.source_path.parent if scenario.source_path else None)
    except NotAUserClass as exc:
        raise ScenarioError(f"{where}: {exc}") from None
    return (base,) if issubclass(base, ScenarioUser) else (PacedPlainUser, base)


def build_user_classes(scenario: Scenario, module: str = __name__) -> dict[str, type[User]]:
    """One concrete Locust User class per scenario user, named as the scenario names it."""
    host = None if scenario.target.builtin else scenario.target.url
    arrival = any(p.arrival_rps for p in scenario.phases)
    classes = {}
    for name, spec in scenario.users.items():
        attrs = {"abstract": False, "spec": spec, "scenario_seed": scenario.seed, "fixed_count": 0,
                 "__module__": module, "__doc__": f"Scenario user {name!r} ({spec.class_path or 'declarative'})."}
        bases = _user_bases(scenario, name)
        if host:
            attrs["host"] = host
        if arrival:  # arrival-rate phases set each class's pace from the phase running now
            attrs["wait_time"] = paced(_rate_fn(scenario, name))
        elif bases[0] is PacedPlainUser:  # a plain Locust class's own wait_time gives way to the scenario's pace
            attrs["wait_time"] = paced()
        if spec.feeder is not None:
            attrs["feeder_rows"] = read_feeder(feeder_path(scenario, name))
        classes[name] = type(name, bases, attrs)
    return classes


def _rate_fn(scenario: Scenario, name: str):
    def rate(user) -> float:
        return scenario.user_rates_at(_run_time_s(user))[name]
    return rate


def _run_time_s(user) -> float:
    gala = getattr(user.environment, "gala_stats", None)
    return gala.now_s() if gala else 0.0


def build_shape(scenario: Scenario, user_classes: dict[str, type], module: str = __name__) -> type[ScenarioShape]:
    return type("ScenarioPhases", (ScenarioShape,), {
        "abstract": False, "scenario": scenario, "user_classes_by_name": user_classes, "__module__": module,
        "__doc__": f"Plays the phases of scenario {scenario.name!r}."})
