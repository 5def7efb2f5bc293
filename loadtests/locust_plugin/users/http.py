"""A generic declarative user for any HTTP system: the scenario lists its requests (method, path, link,
weight, JSON body); each action picks one by weight from the user's own seeded RNG.

Requests are named `<link>:<label>` (label defaults to the path), so gala's per-link statistics work
for any link names. A 4xx/5xx reply is a failure (Locust's default for FastHttpUser).
"""

from __future__ import annotations

import itertools

from locust import task

from loadtests.locust_plugin.users.base import ScenarioUser


class DeclarativeUser(ScenarioUser):
    """Set `spec.requests` (the locustfile does, from the scenario); no Python needed per system."""

    abstract = True

    def on_start(self) -> None:
        reqs = self.spec.requests or []
        self._requests = reqs
        self._cum_weights = list(itertools.accumulate(r.weight for r in reqs))
        self.start_pacing()

    @task
    def act(self) -> None:
        r = self.rng.choices(self._requests, cum_weights=self._cum_weights)[0]
        headers = r.headers or None
        self.client.request(r.method, r.path, name=r.name, json=r.json_body, headers=headers)
