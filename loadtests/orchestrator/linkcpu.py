"""Polling the target's own CPU per link (`GET /admin/cpu`, the built-in target) during a run into
`link_cpu.csv`, so the capacity model can take each link's CPU per request from what the target
attributed, not only regress it from totals (issue 10). Plain urllib: this runs in the `gala` process.

One poll before the load (after the idle window), one a second while it runs (a thread of its own),
one after it stops, before the scenario's admin calls. Rows are cumulative counters, one per (poll, process, link), plus a
`_process` row per process with its whole CPU and, where the target samples it, a `_speed` row with the
speed reference's work done in-run and its CPU; results/README.md documents the file.
"""

from __future__ import annotations

import threading
import time
import urllib.error
from urllib.parse import urljoin

import pandas as pd

from gala.contract.results import LINK_CPU_COLUMNS, PROCESS_ROW, SPEED_ROW
from loadtests.orchestrator.target_control import http_json

POLL_TIMEOUT_S = 2.0
GIVE_UP_AFTER = 3  # consecutive failed polls: the target does not offer /admin/cpu (or is gone)


class LinkCpuPoller(threading.Thread):
    """Cumulative per-link handler CPU and requests of every target process, as the target reports them.
    Its own thread, so a slow target never holds up the run's main loop (live line, abort checks)."""

    def __init__(self, url: str, token: str | None, path: str = "/admin/cpu", interval_s: float = 1.0):
        super().__init__(name="gala-link-cpu", daemon=True)
        self.url = urljoin(url, path)
        self.token = token
        self.interval_s = interval_s
        self.rows: list[list] = []
        self.failures = 0
        self.enabled = True
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        while not self._halt.wait(self.interval_s):
            self.poll()

    def stop(self) -> None:
        """Stop polling and take one last reading (after the load, before the scenario's admin calls)."""
        self._halt.set()
        if self.is_alive():
            self.join(timeout=POLL_TIMEOUT_S + 1)
        self.poll()

    def poll(self) -> bool:
        if not self.enabled:
            return False
        try:
            status, reply = http_json("GET", self.url, token=self.token, timeout_s=POLL_TIMEOUT_S)
        except (urllib.error.URLError, OSError, ValueError):
            status, reply = 0, None
        if status != 200 or not isinstance(reply, dict) or not reply.get("links"):
            self.failures += 1
            self.enabled = self.failures < GIVE_UP_AFTER
            return False
        self.failures = 0
        now = time.time()
        procs = reply.get("processes") or {str(reply.get("process", {}).get("pid", 0)): reply}
        rows = []
        for pid, rep in procs.items():
            proc = rep.get("process", {})
            at = float(proc.get("at") or now)
            links = rep.get("links", {})
            rows.append([at, int(pid), PROCESS_ROW, sum(int(v.get("requests", 0)) for v in links.values()),
                         float(proc.get("cpu_s", 0.0))])
            # what the target charged each link: its requests' whole path where it reports that, else the handlers'
            rows += [[at, int(pid), str(link), int(v.get("requests", 0)),
                      float(v["path_cpu_s"] if "path_cpu_s" in v else v.get("handler_cpu_s", 0.0))]
                     for link, v in links.items()]
            speed = proc.get("speed") or {}
            if speed.get("units"):  # the core's speed through the run: units of work done and their CPU
                rows.append([at, int(pid), SPEED_ROW, int(speed["units"]), float(speed.get("cpu_s", 0.0))])
        with self._lock:
            self.rows += rows
        return True

    def frame(self, t0: float) -> pd.DataFrame:
        """The rows on the run's clock (t_s = seconds since t0; before the load it is negative)."""
        with self._lock:
            rows = list(self.rows)
        if not rows:
            return pd.DataFrame(columns=LINK_CPU_COLUMNS)
        df = pd.DataFrame(rows, columns=["ts", "pid", "link", "requests", "cpu_s"])
        # a process publishes its report once a second: the same report seen twice is one row
        df = df.drop_duplicates(["ts", "pid", "link"])
        df["t_s"] = (df["ts"] - t0).round(3)
        df["ts"] = df["ts"].round(3)
        return df[LINK_CPU_COLUMNS].sort_values(["ts", "pid", "link"], kind="stable")
