"""Real headless Locust runs of loadtests/locustfile.py on 127.0.0.1: gala's users against the built-in
target, declarative users against another small server (other link names, an arrival-rate step), a
distributed master + 2 workers, and a SIGTERM mid-run. Each checks gala's files against Locust's own."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from aiohttp import web

from loadtests.orchestrator.generator import locust_argv

REPO = Path(__file__).resolve().parent.parent
TINY_GALA = REPO / "tests/scenarios/tiny-gala.yaml"
OTHER = REPO / "tests/scenarios/other-system.yaml"


# ---------------------------------------------------------------- another system: a tiny aiohttp server

class OtherServer:
    """A small real HTTP server on 127.0.0.1 (its own thread and event loop) with non-gala paths."""

    def __init__(self) -> None:
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def items(request):
            return web.json_response({"items": [1, 2, 3]})

        async def item(request):
            return web.json_response({"id": int(request.match_info["id"])})

        async def order(request):
            body = await request.json()
            return web.json_response({"ok": True, "item": body["item"]}, status=201)

        async def health(request):
            return web.json_response({"ok": True})

        app = web.Application()
        app.add_routes([web.get("/items", items), web.get("/items/{id}", item), web.post("/orders", order),
                        web.get("/healthz", health)])
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())

    def __enter__(self) -> "OtherServer":
        self._thread.start()
        assert self._started.wait(10), "the test server did not start"
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture
def other_server():
    with OtherServer() as server:
        yield server


# ---------------------------------------------------------------- running Locust

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_locust(out: Path, argv: list[str], log: str = "locust.log") -> subprocess.Popen:
    out.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(argv, cwd=REPO, stdout=open(out / log, "w"), stderr=subprocess.STDOUT,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))


def wait(proc: subprocess.Popen, out: Path, timeout_s: float = 90, log: str = "locust.log") -> int:
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        raise AssertionError(f"locust did not finish in {timeout_s} s; log:\n{(out / log).read_text()[-3000:]}")


def headless(out: Path, scenario: Path, host: str, **options) -> list[str]:
    """A headless run of gala's locustfile writing into `out`, as gala's one argv builder makes it."""
    return locust_argv(scenario=scenario, host=host, out=out, **options)


def locust_total(out: Path) -> tuple[int, int]:
    agg = pd.read_csv(out / "locust_stats.csv").set_index("Name").loc["Aggregated"]
    return int(agg["Request Count"]), int(agg["Failure Count"])


def check_results(out: Path, scenario_phases: list[str], *, finished: bool = True) -> pd.DataFrame:
    """The invariants every run's gala files keep, whatever the scenario; returns phase_link_stats."""
    log = (out / "locust.log").read_text()
    assert "Traceback" not in log, log[-3000:]
    phases = json.loads((out / "phases.json").read_text())
    assert [p["name"] for p in phases["phases"]] == scenario_phases
    started = [p for p in phases["phases"] if p["started_s"] is not None]
    assert started and all(p["ended_s"] is not None and p["ended_s"] >= p["started_s"] for p in started)
    if finished:
        assert phases["stopped_by"] == "shape"
        starts = [p["started_s"] for p in phases["phases"]]
        assert None not in starts and starts == sorted(starts), phases  # phases ran in order

    pl = pd.read_csv(out / "phase_link_stats.csv")
    total = pl[(pl.phase == "_all") & (pl.link == "_all")]
    assert len(total) == 1
    requests, failures = locust_total(out)
    assert int(total.requests.iloc[0]) == requests > 0          # gala's total == Locust's own
    assert int(total.failures.iloc[0]) == failures
    per_link = pl[(pl.phase == "_all") & (pl.link != "_all")].set_index("link")
    per_phase_link = pl[(pl.phase != "_all") & (pl.link != "_all")]
    assert per_link.requests.sum() == requests
    assert per_phase_link.groupby("link").requests.sum().to_dict() == per_link.requests.to_dict()

    hist = json.loads((out / "histograms.json").read_text())
    assert {k: sum(v.values()) for k, v in hist["all"].items()} == per_link.requests.to_dict()
    ts = pd.read_csv(out / "timeseries.csv")
    assert ts.requests.sum() == requests
    assert not ts.duplicated(["t_s", "link"]).any()
    return pl


def per_link_requests(pl: pd.DataFrame) -> dict[str, int]:
    return pl[(pl.phase == "_all") & (pl.link != "_all")].set_index("link").requests.to_dict()


# ---------------------------------------------------------------- the runs

def test_gala_users_against_the_builtin_target(tmp_path, target):
    out = tmp_path / "run"
    proc = start_locust(out, headless(out, TINY_GALA, target.url))
    assert wait(proc, out) == 0, (out / "locust.log").read_text()[-3000:]
    pl = check_results(out, ["grab", "share-burst", "chat"])
    counts = per_link_requests(pl)
    assert set(counts) == {"grab", "share", "chat", "setup"} and min(counts.values()) > 0
    assert pl.failures.max() == 0, pl[pl.failures > 0].to_string()
    by_phase = pl[pl.link == "share"].set_index("phase").requests.to_dict()
    assert "grab" not in by_phase and by_phase.get("share-burst", 0) > 0  # sharers start with their phase
    grab_row = pl[(pl.phase == "grab") & (pl.link == "grab")].iloc[0]
    assert grab_row.intended_rps == pytest.approx(12 * 4 * 1.5 / 2.5)  # 12 users x 4/s for the 1.5 s it owns / 2.5 s
    live = json.loads((out / "live.json").read_text())
    assert {"t_s", "phase", "users", "user_classes", "links", "phase_links"} <= set(live)
    assert set(live["user_classes"]) == {"GrabUser", "ShareUser", "ChatUser"}


def test_distributed_declarative_users_against_another_system(tmp_path, other_server):
    """Master + 2 workers, declarative users with other link names: gala's merged totals equal Locust's."""
    out = tmp_path / "run"
    port = free_port()
    master = start_locust(out, headless(out, OTHER, other_server.url, master=True, expect_workers=2, workers_wait_s=60,
                                        master_bind_host="127.0.0.1", master_port=port))
    workers = [start_locust(out, locust_argv(scenario=OTHER, worker=True, master_port=port), log=f"worker{i}.log")
               for i in range(2)]
    try:
        assert wait(master, out) == 0, (out / "locust.log").read_text()[-3000:]
        for i, w in enumerate(workers):
            wait(w, out, 30, log=f"worker{i}.log")
    finally:
        for p in (master, *workers):
            if p.poll() is None:
                p.kill()
                p.wait(5)
    pl = check_results(out, ["browse", "buy", "step"])
    counts = per_link_requests(pl)
    assert set(counts) == {"catalog", "orders", "health"} and min(counts.values()) > 0
    assert pl.failures.max() == 0
    step = pl[(pl.phase == "step") & (pl.link == "orders")].iloc[0]
    assert step.intended_rps == pytest.approx(30.0) and step.requests > 0
    names = set(pd.read_csv(out / "locust_stats.csv").Name)
    assert {"catalog:list", "catalog:item", "orders:place", "health:/healthz"} <= names
    live = json.loads((out / "live.json").read_text())  # the master's live view, from the workers' reports
    assert set(live["user_classes"]) == {"Browser", "Buyer"} and set(live["links"]) <= set(counts)
    for i in range(2):
        assert "Traceback" not in (out / f"worker{i}.log").read_text()


def test_sigterm_mid_run_still_writes_every_file(tmp_path, other_server):
    out = tmp_path / "run"
    proc = start_locust(out, headless(out, OTHER, other_server.url, duration_scale=10.0))
    try:
        deadline = time.monotonic() + 60
        while not (out / "live.json").exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        time.sleep(1.5)
        proc.send_signal(signal.SIGTERM)
        wait(proc, out, 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    pl = check_results(out, ["browse", "buy", "step"], finished=False)
    phases = json.loads((out / "phases.json").read_text())
    assert phases["stopped_by"] == "signal"
    assert phases["phases"][0]["started_s"] == 0.0 and phases["phases"][2]["started_s"] is None
    assert per_link_requests(pl)["catalog"] > 0
