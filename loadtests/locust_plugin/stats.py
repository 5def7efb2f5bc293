"""gala's Locust event plugin: per-phase, per-link and per-second statistics, merged exactly across workers.

On every `request` event the request is attributed to a phase (the most recently started phase still
running when it was made) and a link (the text before the first ':' of its name), and counted with a
latency histogram rounded as Locust rounds (`gala.contract.histogram.LatencyStats`). Workers ship their
increments through `report_to_master` in the same message as Locust's own stats, and the master adds
them key by key in `worker_report`, so gala's totals equal Locust's. The master (or the local process)
writes into `--gala-out DIR`: `histograms.json`, `timeseries.csv`, `phase_link_stats.csv` (formats in
results/README.md), `phases.json` (actual phase times, how the run stopped) and, every second while
running, `live.json`. Files are written atomically, on every way a run ends (shape done, stop, SIGTERM,
Ctrl-C): `test_stop` writes them and `quit` writes them again once the last worker reports are in.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import gevent
from locust.runners import MasterRunner, WorkerRunner
from locust.stats import CSV_STATS_INTERVAL_SEC

from gala.contract.atomic import write_csv_atomic, write_json_atomic
from gala.contract.histogram import LatencyStats, merge_table, table_rows
from gala.contract.phases import Timeline
from gala.contract.tables import histograms_doc, phase_link_table, timeseries_table
from loadtests.scenario import Scenario

log = logging.getLogger("gala.stats")
TIMELINE_MSG = "gala_timeline"
WORKER_REPORT_LAG_S = 4  # a distributed master has seconds complete only after the workers' 3 s report


# ---------------------------------------------------------------- the plugin

class GalaStats:
    """Collects on every process; merges and writes on the master or the local process."""

    def __init__(self, environment, scenario: Scenario, out_dir: str | None) -> None:
        self.env, self.scenario = environment, scenario
        self.out = Path(out_dir) if out_dir else None
        self.timeline = Timeline([p.name for p in scenario.phases])
        self.plans = {p.name: p for p in scenario.planned_phases()}
        self.phase_link: dict = {}    # (phase, link) -> LatencyStats (totals on master/local, pending on a worker)
        self.second_link: dict = {}   # (t_s, link) -> LatencyStats
        self._links: dict[str, str] = {}  # request name -> link (Scenario.link_of, cached)
        self.stopped_by: str | None = None
        self.stop_t_s: float | None = None
        self._local_epoch0 = time.time()
        self._live: gevent.Greenlet | None = None
        self._quitting = False
        # called for every request (OpenTelemetry) as observer(phase, link, name, response_time_ms, exception,
        # request_type=, response= (Locust's, or None), start_epoch= (when it began, time.time() seconds))
        self.observers: list = []
        if self.out:
            self.out.mkdir(parents=True, exist_ok=True)
        ev = environment.events
        ev.request.add_listener(self.on_request)
        ev.test_start.add_listener(self.on_test_start)
        ev.test_stop.add_listener(self.on_test_stop)
        ev.quitting.add_listener(self.on_quitting)
        ev.quit.add_listener(self.on_quit)
        runner = environment.runner
        if isinstance(runner, WorkerRunner):
            ev.report_to_master.add_listener(self.on_report_to_master)
            runner.register_message(TIMELINE_MSG, self.on_timeline_msg)
        elif isinstance(runner, MasterRunner):
            ev.worker_report.add_listener(self.on_worker_report)

    @property
    def is_worker(self) -> bool:
        return isinstance(self.env.runner, WorkerRunner)

    @property
    def writes(self) -> bool:
        return self.out is not None and not self.is_worker

    def now_s(self) -> float:
        return time.time() - (self.timeline.epoch0 or self._local_epoch0)

    # ------------------------------------------------------------ events

    def on_request(self, request_type, name, response_time, response_length=0, exception=None,
                   start_time=None, **_kw) -> None:
        epoch0 = self.timeline.epoch0 or self._local_epoch0
        t = (start_time if start_time is not None else time.time() - response_time / 1000.0) - epoch0
        link = self._links.get(name) or self._links.setdefault(name, self.scenario.link_of(name))
        failed = exception is not None
        rt = response_time or 0.0
        phase = self.timeline.owner(t)
        key = (phase, link)
        cell = self.phase_link.get(key) or self.phase_link.setdefault(key, LatencyStats())
        cell.add(rt, failed)
        key = (max(0, int(t)), link)
        cell = self.second_link.get(key) or self.second_link.setdefault(key, LatencyStats())
        cell.add(rt, failed)
        if self.observers:  # last: an observer that raises cannot leave gala's own counts half done
            for observe in self.observers:
                observe(phase, link, name, rt, exception, request_type=request_type, response=_kw.get("response"),
                        start_epoch=t + epoch0)

    def on_test_start(self, environment, **_kw) -> None:
        self.phase_link, self.second_link = {}, {}
        self._local_epoch0 = time.time()
        if self.is_worker:
            return  # the master's timeline (sent before any spawn message) is the clock
        self.stopped_by = self.stop_t_s = None
        self.timeline.reset(time.time())
        shape = environment.shape_class
        if shape is not None and hasattr(shape, "current_phases"):
            self.timeline.update(shape.current_phases(), 0.0)
        self.broadcast()
        if self.writes and self._live is None:
            self._live = gevent.spawn(self._live_loop)

    def on_phases(self, active: list[str]) -> None:
        """Called by the shape when the set of running phases changes."""
        if self.timeline.epoch0 is None:
            return
        if self.timeline.update(active, self.now_s()):
            self.broadcast()

    def broadcast(self) -> None:
        if isinstance(self.env.runner, MasterRunner):
            self.env.runner.send_message(TIMELINE_MSG, self.timeline.as_wire())

    def on_timeline_msg(self, environment, msg, **_kw) -> None:
        self.timeline.load_wire(msg.data)

    def on_report_to_master(self, client_id, data: dict, **_kw) -> None:
        data["gala"] = {"pl": table_rows(self.phase_link), "sl": table_rows(self.second_link)}
        self.phase_link, self.second_link = {}, {}

    def on_worker_report(self, client_id, data: dict, **_kw) -> None:
        gala = data.get("gala")
        if gala:
            merge_table(self.phase_link, gala["pl"])
            merge_table(self.second_link, gala["sl"])

    def on_test_stop(self, environment, **_kw) -> None:
        if self.is_worker or self.timeline.epoch0 is None:
            return
        self._settle_stop()
        self.write_all()

    def on_quitting(self, environment, **_kw) -> None:
        self._quitting = True

    def on_quit(self, exit_code=None, **_kw) -> None:
        if self.is_worker or self.timeline.epoch0 is None:
            return
        self._settle_stop()
        if self._live is not None:
            self._live.kill(block=False)
        self.write_all()
        self._flush_locust_csv()

    def _settle_stop(self) -> None:
        if self.stopped_by is not None:
            return
        t = self.now_s()
        shape = self.env.shape_class
        opts = self.env.parsed_options
        run_time = getattr(opts, "run_time", None) if opts else None
        if shape is not None and getattr(shape, "finished", False):
            self.stopped_by = getattr(shape, "end_reason", None) or "shape"
        elif run_time and t >= run_time - 1:
            self.stopped_by = "run-time"
        elif self._quitting or (opts is not None and getattr(opts, "headless", False)):
            self.stopped_by = "signal"
        else:
            self.stopped_by = "stopped"
        self.stop_t_s = t
        self.timeline.end_all(t)

    # ------------------------------------------------------------ live view

    def _live_loop(self) -> None:
        gevent.sleep(0.05)  # once the runner is spawning: gala run learns the run's clock from the first file
        while True:
            try:
                if self.env.runner.state in ("spawning", "running"):
                    write_json_atomic(self.out / "live.json", self.live())
            except Exception:  # a live view must never stop a run
                log.exception("gala: could not write live.json")
            gevent.sleep(1.0)

    def live_second(self) -> int:
        """The last second whose counts are complete (a master waits for the workers' reports)."""
        lag = WORKER_REPORT_LAG_S if isinstance(self.env.runner, MasterRunner) else 1
        return int(self.now_s()) - lag

    def live(self) -> dict[str, Any]:
        t = self.now_s()
        runner = self.env.runner
        last_second = self.live_second()
        phase = self.timeline.owner(t) if any(se[0] is not None for se in self.timeline.times.values()) else None
        links: dict[str, LatencyStats] = {}
        phase_links: dict[str, LatencyStats] = {}
        for (ph, link), cell in list(self.phase_link.items()):
            links.setdefault(link, LatencyStats()).merge(cell)
            if ph == phase:
                phase_links.setdefault(link, LatencyStats()).merge(cell)
        # look the last second up per link rather than scanning every second of the run, once a second
        rps = {link: cell.requests for link in links if (cell := self.second_link.get((last_second, link)))}

        def view(table: dict[str, LatencyStats]) -> dict[str, dict]:
            out = {}
            for link, cell in sorted(table.items()):
                p50, p95, p99 = cell.percentiles([0.5, 0.95, 0.99])
                out[link] = {"rps": rps.get(link, 0), "requests": cell.requests, "failures": cell.failures,
                             "p50_ms": p50, "p95_ms": p95, "p99_ms": p99}
            return out

        classes = getattr(runner, "reported_user_classes_count", None) if isinstance(runner, MasterRunner) \
            else runner.user_classes_count
        # the run's clock, so that gala run can tick its CPU sampler on the same whole seconds
        return {"t_s": round(t, 3), "started_at_epoch": self.timeline.epoch0, "phase": phase, "users": runner.user_count,
                "user_classes": dict(classes or {}), "rps_second": last_second,
                "links": view(links), "phase_links": view(phase_links)}

    # ------------------------------------------------------------ files

    def write_all(self) -> None:
        if not self.writes:
            return
        try:
            epoch0 = self.timeline.epoch0
            phases = [{"name": n, "started_s": se[0], "ended_s": se[1]} for n, se in self.timeline.times.items()]
            write_json_atomic(self.out / "phases.json", {
                "started_at_epoch": epoch0, "phases": phases, "stopped_by": self.stopped_by,
                "stopped_s": self.stop_t_s})
            write_json_atomic(self.out / "histograms.json", histograms_doc(self.phase_link))
            write_csv_atomic(self.out / "phase_link_stats.csv",
                             phase_link_table(self.phase_link, self.timeline, self.plans, self.stop_t_s), decimals=6)
            write_csv_atomic(self.out / "timeseries.csv", timeseries_table(self.second_link, self.timeline), decimals=6)
        except Exception:  # never lose Locust's own shutdown over ours; say so loudly
            log.exception("gala: could not write results into %s", self.out)

    def _flush_locust_csv(self) -> None:
        """Let Locust's `--csv` writer run once more: it rewrites its files every second, so without this
        its last write may predate the last second (and the last workers' reports), and locust_stats.csv
        would count fewer requests than were made."""
        opts = self.env.parsed_options
        if opts is not None and getattr(opts, "csv_prefix", None):
            gevent.sleep(CSV_STATS_INTERVAL_SEC + 0.2)
