"""How a scenario becomes Locust classes: one User class per scenario user, and the shape.

Locust builds user classes before it parses its command line, so the scenario options are peeked
from argv (and the environment) first. Runs inside Locust's processes.
"""

from __future__ import annotations

import argparse
import importlib
import os

from gala.contract.errors import InputError
from loadtests.locust_plugin.shape import ScenarioShape
from loadtests.locust_plugin.users.base import ScenarioUser
from loadtests.locust_plugin.users.http import DeclarativeUser
from loadtests.locust_plugin.users.pacing import paced
from loadtests.scenario import DEFAULT_SCENARIO, Scenario, ScenarioError


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


def build_user_classes(scenario: Scenario, module: str = __name__) -> dict[str, type[ScenarioUser]]:
    """One concrete Locust User class per scenario user, named as the scenario names it."""
    host = None if scenario.target.builtin else scenario.target.url
    arrival = any(p.arrival_rps for p in scenario.phases)
    classes = {}
    for name, spec in scenario.users.items():
        attrs = {"abstract": False, "spec": spec, "scenario_seed": scenario.seed, "fixed_count": 0,
                 "__module__": module, "__doc__": f"Scenario user {name!r} ({spec.class_path or 'declarative'})."}
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


def build_shape(scenario: Scenario, user_classes: dict[str, type], module: str = __name__) -> type[ScenarioShape]:
    return type("ScenarioPhases", (ScenarioShape,), {
        "abstract": False, "scenario": scenario, "user_classes_by_name": user_classes, "__module__": module,
        "__doc__": f"Plays the phases of scenario {scenario.name!r}."})
