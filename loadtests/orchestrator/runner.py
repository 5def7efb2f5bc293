"""`gala run`'s engine: start the target and Locust as subprocesses, sample CPU, show a live line,
stop cleanly on a signal, and leave one results folder (results/README.md) with run.json last.

Nothing here imports Locust or gevent: the generator runs as `python -m locust` children.
"""

from __future__ import annotations

import math
import os
import signal
import time
from typing import Any

import psutil

from gala.contract.atomic import write_csv_atomic, write_json_atomic
from gala.contract.results import RunInfo
from loadtests.orchestrator import generator as gen
from loadtests.orchestrator.cpu import CpuSampler, generator_load, idle_cores, latest_percent
from loadtests.orchestrator.linkcpu import LinkCpuPoller
from loadtests.orchestrator.cpulimit import CpuLimit, CpuLimitError
from loadtests.orchestrator.live import LivePrinter, live_line
from loadtests.orchestrator.options import RunOptions, RunOutcome, builtin_config, check_options
from loadtests.orchestrator.outcome import (display_path, failed_ratio, generator_mode, print_report,
                                            read_phase_link_stats, run_status)
from loadtests.orchestrator import speed
from loadtests.orchestrator.procs import Child
from loadtests.orchestrator.run_folder import (create_run_dir, generator_record, iso_utc, machine_record,
                                               merge_phases, read_json, scenario_record, target_record, versions,
                                               write_run_json)
from loadtests.orchestrator.target_control import AdminCall, TargetError, after_run, start_builtin, store_server_pid
from loadtests.target.launch import redact
from loadtests.scenario import load_scenario

STOP_GRACE_S = 30.0      # how long Locust may take to write its files after a stop
WORKER_GRACE_S = 5.0     # how long workers may outlive their master before they are killed
TICK_S = 0.2             # main loop period: signals and dead children are noticed this fast


class Runner:
    """One run, from an empty folder to a written run.json."""

    def __init__(self, opts: RunOptions):
        self.opts = opts
        self.sc = load_scenario(opts.scenario, duration_scale=opts.duration_scale, seed=opts.seed,
                                users_scale=opts.users_scale, spawn_rate=opts.spawn_rate)
        self.url, self.builtin = check_options(opts, self.sc)
        self.planned = self.sc.planned_phases()
        self.printer = LivePrinter(quiet=opts.quiet)
        self.children: list[Child] = []
        self.target_child: Child | None = None
        self.admin_token: str | None = None if self.builtin else os.environ.get(self.sc.target.admin_token_env)
        self.main: Child | None = None
        self.workers: list[Child] = []
        self.external: dict[int, psutil.Process] = {}  # --target-pid processes, watched for exits
        self.sampler = CpuSampler()
        self.idle: dict[str, Any] | None = None  # the target's idle CPU, measured before the load
        self.link_cpu: LinkCpuPoller | None = None  # the built-in target's own CPU per link
        self.store_pid: int | None = None  # the shared store's redis-server, when on this machine
        self.stop_reason: str | None = None
        self.failure: str | None = None  # why the run could not go on (not the user's input)
        self.signalled = 0
        self.degraded: list[dict[str, Any]] = []
        self.t0: float | None = None
        self.t_end: float | None = None
        self.created_at = time.time()
        self.speed_start: speed.SpeedRef | None = None
        self.speed_end: speed.SpeedRef | None = None
        self.cpu_limit = self._limit_cpu()  # before the folder: what cannot be limited is bad input
        self.run_dir = create_run_dir(opts.out, self.sc.name, self.sc.source_path, self.created_at)

    def _limit_cpu(self) -> CpuLimit | None:
        """--target-cpu-limit: the cgroup made, and the --target-pid processes in it (the built-in
        target joins when it starts); its children, then and later, are limited with it."""
        if self.opts.target_cpu_limit is None:
            return None
        limit = CpuLimit(self.opts.target_cpu_limit, label="--target-cpu-limit")
        try:
            limit.create()
            for pid in self.opts.target_pids:
                limit.apply(pid)
        except BaseException:
            limit.remove()
            raise
        return limit

    # ------------------------------------------------------------------ the run

    def run(self) -> RunOutcome:
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._write_info("running")
            self.printer.say(f"gala run: scenario {self.sc.name}, results in {self.run_dir}")
            self.speed_start = speed.measure()  # before the load: the machine's speed as the run begins
            try:
                self._start_target()
            except TargetError as exc:
                self.failure = str(exc)
                self.printer.say(f"gala run: {exc}")
            if not self.stop_reason and not self.failure:
                self._quiet_window()
                self._start_generator()
                self._watch()
            self._stop_generator()
            audit = self._after_run()
            self._stop_target()
            return self._finish(audit)
        finally:
            self.sampler.stop()
            if self.link_cpu is not None and self.link_cpu.is_alive():
                self.link_cpu.stop()
            for child in self.children:
                child.kill_group()  # no orphans, whatever happened above
            if self.cpu_limit is not None:
                self.cpu_limit.remove()  # --target-pid processes go back where they came from
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _on_signal(self, signum, _frame) -> None:
        self.signalled += 1
        if self.stop_reason is None:
            self.stop_reason = signal.Signals(signum).name
            self.printer.say(f"gala run: {self.stop_reason}: stopping Locust and keeping what was measured "
                             "(again to stop at once)")

    def _start_target(self) -> None:
        if self.builtin:
            inject = [*self.sc.target.inject, *self.opts.inject]
            target = start_builtin(self.run_dir, config=builtin_config(self.opts, self.sc), inject=inject,
                                   processes=self.opts.target_processes, store=self.opts.target_store)
            self.children.append(target.child)
            self.target_child, self.url, self.admin_token = target.child, target.url, target.admin_token
            self.sampler.watch(target.child.pid, "target")  # with a store: the supervisor and its workers
            if self.opts.target_store:
                store_pid = store_server_pid(self.opts.target_store)
                if store_pid is not None:
                    self.sampler.watch(store_pid, "target")  # the shared store is part of the system under test
                    self.store_pid = store_pid
                self.printer.say(f"gala run: built-in target on {self.url}: {len(target.workers)} processes "
                                 f"(pids {' '.join(map(str, target.workers))}) sharing {redact(self.opts.target_store)}"
                                 f"{f' (redis-server pid {store_pid})' if store_pid else ''} (log: target.log)")
            else:
                self.printer.say(f"gala run: built-in target on {self.url} (log: target.log)")
            if self.cpu_limit is not None:
                try:
                    self.cpu_limit.apply(target.child.pid)
                except CpuLimitError as exc:
                    raise TargetError(str(exc)) from None
        if self.cpu_limit is not None:
            rec = self.cpu_limit.record()
            self.printer.say(f"gala run: target limited to {rec.cores:g} core(s) ({rec.mechanism} {rec.cgroup})")
        for pid in self.opts.target_pids:
            self.sampler.watch(pid, "target")
            try:
                self.external[pid] = psutil.Process(pid)
            except psutil.Error:
                pass  # gone already: its exit is noted with the others'

    def _quiet_window(self) -> None:
        """The target's idle CPU before any load (the demand fit subtracts it), then the first /admin/cpu poll."""
        pids = [self.target_child.pid] if self.target_child is not None else list(self.opts.target_pids)
        pids += [self.store_pid] if self.store_pid is not None else []
        if pids:
            t = time.time()
            self.idle = {"window_start": round(t, 3), "cores": idle_cores(pids),
                         "window_s": round(time.time() - t, 3)}
        if self.builtin and self.url:
            self.link_cpu = LinkCpuPoller(self.url, self.admin_token)
            self.link_cpu.poll()

    def _start_generator(self) -> None:
        o = self.opts
        margin = max(30.0, 0.2 * self.sc.total_duration_s)
        # -t caps the run as Locust's --run-time does (the shape stops there); otherwise it is a safety bound
        planned = self.sc.total_duration_s if o.run_time_s is None else min(self.sc.total_duration_s, o.run_time_s)
        self.plan = gen.GeneratorPlan(
            scenario=self.sc.source_path, host=self.url, run_dir=self.run_dir,
            duration_scale=o.duration_scale, seed=self.sc.seed,
            run_time_s=math.ceil(self.sc.total_duration_s + margin) if o.run_time_s is None else math.ceil(planned),
            workers=o.workers, remote_workers=o.remote_workers,
            master_bind_port=o.master_bind_port, workers_wait_s=o.workers_wait_s,
            users_scale=o.users_scale, ramp_rate=o.spawn_rate, metrics_port=o.metrics_port, otel=o.otel,
            web_port=o.web_port,
        )
        self.launched_at = time.time()
        wait = self.plan.connect_wait_s if self.plan.mode == "distributed" else 0
        linger = gen.WEB_UI_LINGER_S if o.web_port is not None else 0
        self.deadline = self.launched_at + wait + planned + linger + margin
        self.main, self.workers = gen.start(self.plan)
        self.children += [self.main, *self.workers]
        for child in [self.main, *self.workers]:
            self.sampler.watch(child.pid, "generator")
        self.sampler.start()  # after every spawn: forking beside a running thread is not safe
        if self.link_cpu is not None:
            self.link_cpu.start()
        if o.web_port is not None:
            self.printer.say(f"gala run: Locust's web UI on http://127.0.0.1:{o.web_port} (driven by the "
                             f"scenario's shape; it stays up {gen.WEB_UI_LINGER_S} s after the last phase)")
        if o.metrics_port is not None:
            self.printer.say(f"gala run: Prometheus metrics on http://127.0.0.1:{o.metrics_port}/metrics")
        if self.plan.mode == "distributed":
            where = f"{self.plan.workers} local workers" if self.plan.workers else \
                f"{self.plan.remote_workers} remote workers on port {self.plan.master_bind_port or 5557}"
            self.printer.say(f"gala run: Locust master waiting for {where}")

    def _watch(self) -> None:
        """Once a second: live line, abort check, dead workers; until Locust ends or a stop is asked."""
        next_tick = time.time()
        while self.stop_reason is None and self.main.alive():
            time.sleep(TICK_S)
            self._note_exits()
            now = time.time()
            if now < next_tick:
                continue
            next_tick = now + 1.0
            live = read_json(self.run_dir / "live.json")
            self._learn_t0(live)
            cpu = latest_percent(self.sampler.samples, "generator")
            self.printer.update(live_line(live, elapsed_s=now - self.launched_at, generator_cpu=cpu,
                                          links=list(self.sc.links)))
            if live and self.opts.abort_check is not None:
                self._check_abort(live)
            if now > self.deadline and self.stop_reason is None:
                self.stop_reason = f"time bound: Locust still running {now - self.launched_at:.0f} s after start"
        self.printer.end()
        if self.stop_reason:
            self.printer.say(f"gala run: stopping ({self.stop_reason})")

    def _check_abort(self, live: dict) -> None:
        try:
            reason = self.opts.abort_check(live)
        except Exception as exc:  # a broken check must not lose the run: say so and go on without it
            self.printer.say(f"gala run: warning: --abort-on-fail check failed ({type(exc).__name__}: {exc}); "
                             "continuing without it")
            self.opts.abort_check = None
            return
        if reason:
            self.stop_reason = f"abort-on-fail: {reason}"

    def _learn_t0(self, live: dict | None) -> None:
        phases = read_json(self.run_dir / "phases.json")
        if not (phases and phases.get("started_at_epoch")) and live and live.get("started_at_epoch"):
            phases = live  # while the run goes on, live.json carries the run's clock (phases.json comes at the end)
        if phases and phases.get("started_at_epoch"):
            if self.t0 != float(phases["started_at_epoch"]):
                self.sampler.align(float(phases["started_at_epoch"]))  # CPU ticks on the counting seconds
            self.t0 = float(phases["started_at_epoch"])
        elif self.t0 is None and live and "t_s" in live:
            self.t0 = time.time() - float(live["t_s"])

    def _t_s(self, epoch: float) -> float:
        return round(epoch - (self.t0 or self.launched_at), 1)

    def _note_exits(self) -> None:
        """A worker or target that dies while the load runs makes the numbers partial: say so."""
        master_alive = self.main is not None and self.main.alive()
        for child in [*self.workers, self.target_child]:
            if child is None or child.noted or child.alive():
                continue
            child.noted = True
            code = child.proc.returncode
            t_s = self._t_s(child.exited_at)
            # a worker quits with 0 when its master ends the test: only an early or failed exit counts
            early = child is self.target_child or t_s < self.sc.total_duration_s - 1.0
            if master_alive and self.stop_reason is None and (code != 0 or early):
                what = "target-exited" if child is self.target_child else "worker-exited"
                detail = f"{child.role} pid {child.pid}, exit code {code}"
                self._degrade(t_s, what, detail)
        for pid, proc in list(self.external.items()):
            if master_alive and self.stop_reason is None and _gone(proc):
                del self.external[pid]
                self._degrade(self._t_s(time.time()), "target-exited", f"--target-pid {pid} is gone")

    def _degrade(self, t_s: float, what: str, detail: str) -> None:
        self.degraded.append({"t_s": t_s, "what": what, "detail": detail})
        self.printer.say(f"gala run: warning: {what} at {t_s:.0f} s ({detail})")

    def _stop_generator(self) -> None:
        if self.main is None:
            return
        if self.main.alive():
            # SIGINT, not SIGTERM: on SIGINT Locust still writes its HTML report (and the stats
            # plugin its files); on SIGTERM it skips the report
            self.main.send(signal.SIGINT)
            deadline = time.time() + STOP_GRACE_S
            while self.main.alive() and time.time() < deadline and self.signalled < 2:
                time.sleep(TICK_S)
            if self.main.alive():
                self.main.stop(signal.SIGTERM, grace_s=0 if self.signalled >= 2 else 5)
        self.main.kill_group()
        self._note_exits()
        self.t_end = self.main.exited_at or time.time()
        if self.link_cpu is not None:
            self.link_cpu.stop()  # and a last reading: after the load, before the scenario's admin calls
        # a master gone means workers lose it; they notice only after a 60 s heartbeat, so help them
        deadline = time.time() + (0 if self.signalled >= 2 else WORKER_GRACE_S)
        for w in self.workers:
            w.wait(deadline - time.time())
            if w.alive():
                w.stop(signal.SIGTERM, grace_s=3)
            w.kill_group()
        self._learn_t0(None)

    def _after_run(self) -> dict[str, Any]:
        """The scenario's admin calls (the draw), then its audit; only if the target still answers."""
        tgt = self.sc.target
        summary: dict[str, Any] = {"available": False, "passed": None}
        if not tgt.audit_path and not tgt.after_run:
            return summary
        if self.url is None or (self.target_child is not None and not self.target_child.alive()):
            summary["error"] = "the target was not running after the load"
            return summary
        calls = [AdminCall(c.method, c.path, c.json_body) for c in tgt.after_run]
        done = after_run(self.url, self.admin_token, calls, tgt.audit_path)
        summary["after_run"] = [{k: c[k] for k in ("method", "path", "status")} for c in done.calls]
        if done.audit is not None:
            audit = dict(done.audit, fetched_at=iso_utc(time.time()))
            write_json_atomic(self.run_dir / "audit.json", audit)
            summary.update(available=True, passed=bool(audit.get("passed")))
        if done.error:
            summary["error"] = done.error
        return summary

    def _stop_target(self) -> None:
        if self.target_child is not None:
            self.target_child.stop(signal.SIGTERM, grace_s=10)

    # ------------------------------------------------------------------ the folder

    def _base_info(self, status: str) -> dict[str, Any]:
        sc = self.sc
        return {
            "run_id": self.run_dir.name,
            "status": status,
            "scenario": scenario_record(sc, self.opts, display_path(self.opts.scenario)),
            "duration_scale": self.opts.duration_scale,
            "links": list(sc.links),
            "critical_links": sc.critical_links,
            "target": target_record(self.opts, sc, self.url, self.builtin,
                                    self.cpu_limit.record() if self.cpu_limit is not None else None),
            "started_at": iso_utc(self.created_at),
            "phases": merge_phases(self.planned, None),
            "generator": generator_record(self.opts, generator_mode(self.opts)),
            "versions": versions(),
            "machine": machine_record(self.speed_start, self.speed_end),
            "command": self.opts.command,
        }

    def _write_info(self, status: str) -> RunInfo:
        return write_run_json(self.run_dir, self._base_info(status))

    def _finish(self, audit: dict[str, Any]) -> RunOutcome:
        self.sampler.stop()
        self.speed_end = speed.measure()  # after the load: a core's speed drifts within minutes here
        phases_json = read_json(self.run_dir / "phases.json")
        t0 = self.t0 or getattr(self, "launched_at", self.created_at)
        t_end = self.t_end or time.time()
        cpu = self.sampler.to_frame(t0, t_end)
        write_csv_atomic(self.run_dir / "cpu.csv", cpu)
        if self.link_cpu is not None and self.link_cpu.rows:
            write_csv_atomic(self.run_dir / "link_cpu.csv", self.link_cpu.frame(t0))
        load = generator_load(cpu, t_end - t0)

        code = self.main.proc.returncode if self.main is not None else None
        stats = read_phase_link_stats(self.run_dir)
        status, reason, exit_code = run_status(
            stop_reason=self.stop_reason, signalled=bool(self.signalled), generator_started=self.main is not None,
            started=self.t0 is not None,  # phases.json or live.json seen: Locust began the test
            locust_code=code, failure=self.failure, degraded=self.degraded, locust_log=self.run_dir / "locust.log",
            failed=failed_ratio(stats))

        info = self._base_info(status)
        seen_links = [l for l in stats["link"].unique() if l != "_all" and l not in info["links"]] if not stats.empty else []
        target_pids = self.sampler.pids("target") or self.opts.target_pids
        info.update({
            "interrupted": status in ("interrupted", "failed"),
            "interrupt_reason": reason,
            "degraded": self.degraded,
            "links": [*info["links"], *seen_links],
            "started_at": iso_utc(t0),
            "ended_at": iso_utc(t_end),
            "duration_s": round(t_end - t0, 3),
            "phases": merge_phases(self.planned, phases_json),
            "audit": audit,
            "stopped_by": (phases_json or {}).get("stopped_by"),
        })
        info["target"].update(pids=target_pids, processes=max(1, len(target_pids)))
        if self.idle is not None:
            idle = dict(self.idle)
            info["target"]["idle"] = {"cores": idle["cores"], "window_s": idle["window_s"],
                                      "window_start_s": round(idle["window_start"] - t0, 3)}
        info["cpu_sampling"] = {"interval_s": self.sampler.interval_s,
                                "aligned_from_s": None if self.sampler.aligned_at is None
                                else round(self.sampler.aligned_at - t0, 3)}
        info["generator"].update(
            peak_cpu_percent=load.peak_cpu_percent, saturated=load.saturated,
            pids=self.sampler.pids("generator"), saturated_pids=load.saturated_pids,
            exit_code=code,
        )
        model = write_run_json(self.run_dir, info)  # last, atomically: the folder is now whole
        print_report(model, stats, load, self.run_dir)
        return RunOutcome(run_dir=self.run_dir, info=model, exit_code=exit_code)


def _gone(proc: psutil.Process) -> bool:
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def run(opts: RunOptions) -> RunOutcome:
    return Runner(opts).run()
