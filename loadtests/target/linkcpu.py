"""Per-link CPU attribution: the thread CPU each link's requests cost, measured by the target itself.

The capacity model needs each link's CPU per request identified, not only regressed from totals.
Two measures, both summing `time.thread_time()` around each resumption of a coroutine, so CPU spent on
other requests while one waits at an await (for the body, for Redis) is not counted:
- *handler* CPU (`timed`): the link's handler alone;
- *path* CPU (`path`, `conn_step`, and the parser's time that guard.py's connection handler adds): the
  request's whole way through the process: the parser reading it off the socket, aiohttp building the request,
  the middleware, the handler, and writing the answer. It is what the plan takes per link: what no
  request is charged for is then only the event loop's own turns, the speed samples aside.
What stays unattributed is the process total minus the links' path CPU and the in-run speed samples'
CPU (`speedtrack.py`), reported beside them.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict

from .speedtrack import SpeedTrack

LINK_KEY = "gala_link"  # the request key the middleware puts the request's link under


class _Stepped:
    """An awaitable that runs `coro` exactly as `await coro` would, calling `on_step(cpu_s)` after each
    resumption with the thread CPU it took (`before()` first, if given), and `on_end()` once it finished
    (however it finished)."""

    __slots__ = ("_coro", "_on_step", "_on_end", "_before")

    def __init__(self, coro, on_step, on_end=None, before=None):
        self._coro, self._on_step, self._on_end, self._before = coro, on_step, on_end, before

    def __await__(self):
        it = self._coro.__await__()
        clock, on_step, before = time.thread_time, self._on_step, self._before
        value, error = None, None
        try:
            while True:
                if before is not None:
                    before()
                t0 = clock()
                try:
                    out = it.send(value) if error is None else it.throw(error)
                except StopIteration as stop:
                    on_step(clock() - t0)
                    return stop.value
                except BaseException:
                    on_step(clock() - t0)
                    raise
                on_step(clock() - t0)
                value, error = None, None
                try:
                    value = yield out
                except GeneratorExit:
                    it.close()
                    raise
                except BaseException as exc:  # e.g. a cancellation thrown into the waiting task: pass it in
                    error = exc
        finally:
            if self._on_end is not None:
                self._on_end()


class LinkCpu:
    """Cumulative handler and path CPU seconds and handled requests per link, for this process."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.cpu_s: dict[str, float] = defaultdict(float)       # handlers
        self.path_cpu_s: dict[str, float] = defaultdict(float)  # whole request paths
        self.requests: dict[str, int] = defaultdict(int)
        self.path_total_s = 0.0  # every path step so far: a connection step nests none of it (eager tasks)
        self.speed = SpeedTrack()  # sampled only while `speed.run()` runs (the server starts it when enabled)

    def timed(self, link: str, coro):
        """The handler of a request of `link`."""
        if not self.enabled:
            return coro

        def step(spent: float) -> None:
            self.cpu_s[link] += spent

        def end() -> None:
            self.requests[link] += 1

        return _Stepped(coro, step, end)

    def path(self, conn, request, coro):
        """A request's handling task (aiohttp's `_handle_request`): its steps, plus what its connection
        spent since the last request (parsing it, building it: `conn._gala_pending_s`), go to the link the
        middleware put under LINK_KEY; a request no middleware saw (refused by the parser) to nobody."""
        if not self.enabled:
            return coro
        spent = [0.0]

        def step(s: float) -> None:
            spent[0] += s
            self.path_total_s += s

        def end() -> None:
            link = request.get(LINK_KEY)
            if link is not None:
                self.path_cpu_s[link] += spent[0] + conn._gala_pending_s
            conn._gala_pending_s = 0.0

        return _Stepped(coro, step, end)

    def conn_step(self, conn, coro):
        """A connection's own task (aiohttp's `start`): each step's CPU, less any request task run inside
        it, waits on the connection for its next request."""
        if not self.enabled:
            return coro
        mark = [0.0]

        def before() -> None:
            mark[0] = self.path_total_s

        def step(s: float) -> None:
            conn._gala_pending_s += max(s - (self.path_total_s - mark[0]), 0.0)

        return _Stepped(coro, step, before=before)

    def report(self) -> dict:
        """This process's figures: `process.cpu_s` is its whole CPU (user + system, every thread)."""
        handlers, paths = sum(self.cpu_s.values()), sum(self.path_cpu_s.values())
        total = time.process_time()
        charged = paths if self.path_cpu_s else handlers
        return {"process": {"pid": os.getpid(), "cpu_s": round(total, 6), "handler_cpu_s": round(handlers, 6),
                            "path_cpu_s": round(paths, 6),
                            "unattributed_cpu_s": round(total - charged - self.speed.cpu_s, 6),
                            "attribution": self.enabled, "speed": self.speed.report(), "at": round(time.time(), 3)},
                "links": {link: {"requests": self.requests[link], "handler_cpu_s": round(self.cpu_s[link], 6),
                                 "path_cpu_s": round(self.path_cpu_s[link], 6)}
                          for link in sorted(self.requests)}}

    def render(self) -> list[str]:
        """Prometheus lines for /metrics."""
        lines = ["# HELP gala_target_link_cpu_seconds_total Thread CPU spent inside each link's handlers (this process).",
                 "# TYPE gala_target_link_cpu_seconds_total counter"]
        lines += [f'gala_target_link_cpu_seconds_total{{link="{k}"}} {self.cpu_s[k]:.6f}' for k in sorted(self.cpu_s)]
        lines += ["# HELP gala_target_link_path_cpu_seconds_total Thread CPU of each link's requests, parsing to answer.",
                  "# TYPE gala_target_link_path_cpu_seconds_total counter"]
        lines += [f'gala_target_link_path_cpu_seconds_total{{link="{k}"}} {self.path_cpu_s[k]:.6f}'
                  for k in sorted(self.path_cpu_s)]
        lines += ["# HELP gala_target_link_requests_total Requests whose handler ran, by link (this process).",
                  "# TYPE gala_target_link_requests_total counter"]
        lines += [f'gala_target_link_requests_total{{link="{k}"}} {self.requests[k]}' for k in sorted(self.requests)]
        lines += ["# HELP gala_target_process_cpu_seconds_total CPU of this process (user + system).",
                  "# TYPE gala_target_process_cpu_seconds_total counter",
                  f"gala_target_process_cpu_seconds_total {time.process_time():.6f}",
                  "# HELP gala_target_speed_units_total Speed-reference work units done in-run (gala-speed-1).",
                  "# TYPE gala_target_speed_units_total counter", f"gala_target_speed_units_total {self.speed.units}",
                  "# HELP gala_target_speed_cpu_seconds_total Thread CPU those units took.",
                  "# TYPE gala_target_speed_cpu_seconds_total counter",
                  f"gala_target_speed_cpu_seconds_total {self.speed.cpu_s:.6f}",
                  "# TYPE gala_target_process_pid gauge", f"gala_target_process_pid {os.getpid()}"]
        return lines
