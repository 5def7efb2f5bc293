"""Per-link CPU attribution: the thread CPU a link's handlers spend, measured by the target itself.

The capacity model needs each link's CPU per request identified, not only regressed from totals.
`LinkCpu.timed(link, coro)` drives a handler coroutine step by step and reads `time.thread_time()`
around each resumption, so CPU spent on other requests while this one waits at an await (for the
body, for Redis) is not counted. What stays unattributed (aiohttp's parsing and writing, the event
loop, the middleware) is the process total minus the handlers' sum, reported beside them.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict


class _Timed:
    """An awaitable that runs `coro` exactly as `await coro` would, summing thread CPU per step."""

    __slots__ = ("_coro", "_owner", "_link")

    def __init__(self, coro, owner: "LinkCpu", link: str):
        self._coro, self._owner, self._link = coro, owner, link

    def __await__(self):
        it = self._coro.__await__()
        clock = time.thread_time
        spent, value, error = 0.0, None, None
        try:
            while True:
                t0 = clock()
                try:
                    out = it.send(value) if error is None else it.throw(error)
                except StopIteration as stop:
                    spent += clock() - t0
                    return stop.value
                except BaseException:
                    spent += clock() - t0
                    raise
                spent += clock() - t0
                value, error = None, None
                try:
                    value = yield out
                except GeneratorExit:
                    it.close()
                    raise
                except BaseException as exc:  # e.g. a cancellation thrown into the waiting task: pass it in
                    error = exc
        finally:
            self._owner.cpu_s[self._link] += spent
            self._owner.requests[self._link] += 1


class LinkCpu:
    """Cumulative handler CPU seconds and handled requests per link, for this process."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.cpu_s: dict[str, float] = defaultdict(float)
        self.requests: dict[str, int] = defaultdict(int)

    def timed(self, link: str, coro):
        if not self.enabled:
            return coro
        return _Timed(coro, self, link)

    def report(self) -> dict:
        """This process's figures: `process.cpu_s` is its whole CPU (user + system, every thread)."""
        handlers = sum(self.cpu_s.values())
        total = time.process_time()
        return {"process": {"pid": os.getpid(), "cpu_s": round(total, 6), "handler_cpu_s": round(handlers, 6),
                            "unattributed_cpu_s": round(total - handlers, 6), "attribution": self.enabled,
                            "at": round(time.time(), 3)},
                "links": {link: {"requests": self.requests[link], "handler_cpu_s": round(self.cpu_s[link], 6)}
                          for link in sorted(self.requests)}}

    def render(self) -> list[str]:
        """Prometheus lines for /metrics."""
        lines = ["# HELP gala_target_link_cpu_seconds_total Thread CPU spent inside each link's handlers (this process).",
                 "# TYPE gala_target_link_cpu_seconds_total counter"]
        lines += [f'gala_target_link_cpu_seconds_total{{link="{k}"}} {self.cpu_s[k]:.6f}' for k in sorted(self.cpu_s)]
        lines += ["# HELP gala_target_link_requests_total Requests whose handler ran, by link (this process).",
                  "# TYPE gala_target_link_requests_total counter"]
        lines += [f'gala_target_link_requests_total{{link="{k}"}} {self.requests[k]}' for k in sorted(self.requests)]
        lines += ["# HELP gala_target_process_cpu_seconds_total CPU of this process (user + system).",
                  "# TYPE gala_target_process_cpu_seconds_total counter",
                  f"gala_target_process_cpu_seconds_total {time.process_time():.6f}",
                  "# TYPE gala_target_process_pid gauge", f"gala_target_process_pid {os.getpid()}"]
        return lines
