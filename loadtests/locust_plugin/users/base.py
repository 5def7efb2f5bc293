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


class ScenarioUser(FastHttpUser):
    abstract = True
    spec: ClassVar[UserSpec] = UserSpec(class_path="loadtests.locust_plugin.users.base:ScenarioUser")
    scenario_seed: ClassVar[int] = 0
    wait_time = paced()

    def __init__(self, environment) -> None:
        super().__init__(environment)
        cls = type(self).__name__
        runner = environment.runner
        self.worker_index = getattr(runner, "worker_index", 0) or 0
        self.user_index = next(_user_counters[cls])
        self.rng = user_rng(self.scenario_seed, cls, self.worker_index, self.user_index)
        s = self.spec
        self.pacer = Pacer(self.rng, s.pacing, s.rate_per_s, jitter=s.jitter,
                           burst_size=s.burst_size, burst_gap_s=s.burst_gap_s)
        self.params: dict[str, Any] = dict(s.params)

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
