"""The base of every scenario user: its spec, its own seeded RNG and pacer, and a checked JSON call.

The locustfile makes one concrete subclass per user named in the scenario, setting `spec` (the
scenario's UserSpec), `scenario_seed` and `wait_time`; the classes here stay abstract so that Locust
never runs them directly.
"""

from __future__ import annotations

import itertools
from json import loads as json_loads
from collections import defaultdict
from typing import Any, ClassVar

import gevent
from locust import FastHttpUser

from loadtests.scenario import UserSpec
from loadtests.locust_plugin.users.pacing import Pacer, paced, start_offset, user_rng

_user_counters: dict[str, itertools.count] = defaultdict(itertools.count)


def attach_pacing(user, environment) -> None:
    """Give a user its identity, its own seeded RNG, its pacer and its params (from its class's `spec`)."""
    cls = type(user).__name__
    user.worker_index = getattr(environment.runner, "worker_index", 0) or 0
    user.user_index = next(_user_counters[cls])
    user.rng = user_rng(user.scenario_seed, cls, user.worker_index, user.user_index)
    s = user.spec
    user.pacer = Pacer(user.rng, s.pacing, s.rate_per_s, jitter=s.jitter, burst_size=s.burst_size,
                       burst_gap_s=s.burst_gap_s)
    user.params = dict(s.params)


class PacedPlainUser:
    """Put before a plain Locust user class (HttpUser, FastHttpUser, ...) that a scenario reuses: gala's
    pacing replaces its wait_time (the locustfile sets `wait_time = paced()`), with the same seeded RNG
    and params as gala's own users; its tasks, on_start and request names stay its own."""

    spec: ClassVar[UserSpec]
    scenario_seed: ClassVar[int] = 0

    def __init__(self, environment, *args, **kwargs) -> None:
        super().__init__(environment, *args, **kwargs)
        attach_pacing(self, environment)


class ScenarioUser(FastHttpUser):
    abstract = True
    spec: ClassVar[UserSpec] = UserSpec(class_path="loadtests.locust_plugin.users.base:ScenarioUser")
    scenario_seed: ClassVar[int] = 0
    wait_time = paced()

    def __init__(self, environment) -> None:
        super().__init__(environment)
        attach_pacing(self, environment)

    def start_pacing(self) -> None:
        """Sleep a random part of one cycle before the first action: users spawned together spread out."""
        gevent.sleep(start_offset(self))

    def call(self, method: str, path: str, name: str, *, json: Any = None, headers: dict | None = None) -> dict | None:
        """One request named `<link>:<label>`: success with its JSON reply, or failure (4xx/5xx/no JSON) -> None."""
        with self.client.request(method, path, name=name, json=json, headers=headers, catch_response=True) as resp:
            if not resp.status_code or resp.status_code >= 400:
                resp.failure(f"HTTP {resp.status_code}: {(resp.text or '')[:120]}")
                return None
            try:
                data = json_loads(resp.content)  # bytes: skips decoding to text and guessing its charset
            except (ValueError, TypeError):
                resp.failure(f"HTTP {resp.status_code}: reply is not JSON")
                return None
            resp.success()
            return data
