"""A generic declarative user for any HTTP system: the scenario lists its requests (method, path, link,
weight, JSON body, headers); each action picks one by weight from the user's own seeded RNG.

Requests are named `<link>:<label>` (label defaults to the path), so gala's per-link statistics work
for any link names. A reply counts as a failure when it is 4xx/5xx (Locust's default for FastHttpUser)
or, with `expect:`, when its status is not one of `expect.status` or its JSON lacks a field of
`expect.json_has`. With a `feeder:`, every request that uses a `{{column}}` (in its path, headers or JSON
body) takes the next row of the CSV (or a random one) and the placeholder becomes that row's value.
"""

from __future__ import annotations

import itertools
from json import loads as json_loads
from typing import Any, ClassVar

from locust import task

from loadtests.locust_plugin.users.base import ScenarioUser
from loadtests.scenario import RequestSpec
from loadtests.scenario.feeder import FEEDER_FIELD


def fill(value: Any, row: dict[str, str]) -> Any:
    """`value` with every `{{column}}` in its text replaced by the row's value (dicts and lists walked)."""
    if isinstance(value, str):
        return FEEDER_FIELD.sub(lambda m: row.get(m.group(1), m.group(0)), value) if "{{" in value else value
    if isinstance(value, dict):
        return {k: fill(v, row) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, row) for v in value]
    return value


def missing_field(data: Any, dotted: str) -> bool:
    """True when `data` has no field at the dotted path (`a.b`, `items.0`)."""
    for part in dotted.split("."):
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return True
    return False


def reply_fault(r: RequestSpec, status: int, content: bytes | None) -> str | None:
    """Why a reply does not meet the request's `expect:` (None when it does)."""
    expect = r.expect
    accepted = expect.status
    if accepted is not None and status not in accepted:
        return f"HTTP {status}, expected {' or '.join(map(str, accepted))}"
    if accepted is None and (not status or status >= 400):
        return f"HTTP {status}"
    if expect.json_has:
        try:
            data = json_loads(content or b"")
        except (ValueError, TypeError):
            return f"HTTP {status}: reply is not JSON, expected fields {', '.join(expect.json_has)}"
        lacking = [f for f in expect.json_has if missing_field(data, f)]
        if lacking:
            return f"HTTP {status}: reply has no field {', '.join(lacking)}"
    return None


class DeclarativeUser(ScenarioUser):
    """Set `spec.requests` (the locustfile does, from the scenario); no Python needed per system."""

    abstract = True
    feeder_rows: ClassVar[list[dict[str, str]] | None] = None  # the feeder CSV's rows (the locustfile reads it)
    _feeder_next: ClassVar[itertools.count]

    def on_start(self) -> None:
        reqs = self.spec.requests or []
        self._requests = reqs
        self._cum_weights = list(itertools.accumulate(r.weight for r in reqs))
        # only the requests that use a `{{column}}` take a row (so a row is not spent on the others)
        self._fed = {id(r) for r in reqs if FEEDER_FIELD.search(r.path + repr(r.json_body) + repr(r.headers))}
        cls = type(self)
        if cls.feeder_rows and "_feeder_next" not in cls.__dict__:
            cls._feeder_next = itertools.count()  # one sequence per class and process: rows taken in turn
        self.start_pacing()

    def _row(self) -> dict[str, str] | None:
        rows = self.feeder_rows
        if not rows:
            return None
        if self.spec.feeder.order == "random":
            return self.rng.choice(rows)
        return rows[next(type(self)._feeder_next) % len(rows)]

    @task
    def act(self) -> None:
        r = self.rng.choices(self._requests, cum_weights=self._cum_weights)[0]
        row = self._row() if id(r) in self._fed else None
        path, body, headers = (r.path, r.json_body, r.headers) if row is None else \
            (fill(r.path, row), fill(r.json_body, row), fill(r.headers, row))
        if r.expect is None:
            self.client.request(r.method, path, name=r.name, json=body, headers=headers or None)
            return
        with self.client.request(r.method, path, name=r.name, json=body, headers=headers or None,
                                 catch_response=True) as resp:
            fault = reply_fault(r, resp.status_code, resp.content)
            if fault:
                resp.failure(fault)
            else:
                resp.success()
