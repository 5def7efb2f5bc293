"""The target's own CPU attribution per link: the timing wrapper (in-process) and /admin/cpu and /metrics
on real processes, one in-memory and two over Redis (where each process reports its own)."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from conftest import STORES, store_args
from loadtests.target.client import TargetClient
from gala.contract.speed_work import UNITS, batch
from loadtests.target.linkcpu import LinkCpu
from loadtests.target.speedtrack import PER_SLICE, SpeedTrack


def _burn(seconds: float) -> None:
    t0 = time.thread_time()
    while time.thread_time() - t0 < seconds:
        pass


def test_cpu_of_interleaved_requests_is_not_charged_to_a_waiting_one():
    cpu = LinkCpu()

    async def waiter():
        await asyncio.sleep(0.2)  # the burner runs meanwhile, on the same thread
        return "waited"

    async def burner():
        await asyncio.sleep(0)
        _burn(0.05)
        return "burned"

    async def main():
        return await asyncio.gather(cpu.timed("wait", waiter()), cpu.timed("burn", burner()))

    assert asyncio.run(main()) == ["waited", "burned"]
    assert cpu.cpu_s["burn"] >= 0.05
    assert cpu.cpu_s["wait"] < 0.005  # ten times below the CPU it slept through
    assert dict(cpu.requests) == {"wait": 1, "burn": 1}


def test_the_wrapper_passes_errors_and_cancellation_through():
    cpu = LinkCpu()

    async def fails():
        await asyncio.sleep(0)
        raise ValueError("boom")

    async def hangs():
        await asyncio.sleep(60)

    async def main():
        with pytest.raises(ValueError, match="boom"):
            await cpu.timed("x", fails())
        task = asyncio.ensure_future(cpu.timed("y", hangs()))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert dict(cpu.requests) == {"x": 1, "y": 1}
    plain = asyncio.sleep(0)
    assert LinkCpu(enabled=False).timed("z", plain) is plain  # off: the handler runs unwrapped
    plain.close()


@pytest.mark.parametrize("store", STORES)
def test_admin_cpu_counts_each_links_requests(target_factory, tmp_path, request, store):
    cfg = tmp_path / "quiet.yaml"
    cfg.write_text("drops: {count: 0}\n")
    t = target_factory("--config", str(cfg), *store_args(store, request))
    admin = TargetClient(t.url, t.admin_token)
    (_, a), (b_id, _) = TargetClient(t.url).register("a"), TargetClient(t.url).register("b")
    a.call("POST", "/friends", {"friend_id": b_id})
    for _ in range(30):
        assert TargetClient(t.url, a.token).call("POST", "/grab", {})[0] == 200  # new connections: spread over processes
    for _ in range(10):
        assert TargetClient(t.url, a.token).call("POST", "/chat/send", {"to": b_id, "text": "hi"})[0] == 200
    time.sleep(1.5 if t.worker_pids else 0.3)  # each process publishes its report every second
    report = admin.call("GET", "/admin/cpu")[1]
    processes = report["processes"]
    assert sorted(map(int, processes)) == (sorted(t.worker_pids) or [t.pid])
    for link, n in (("grab", 30), ("chat", 10), ("setup", 3)):
        assert sum(p["links"].get(link, {}).get("requests", 0) for p in processes.values()) == n, (link, processes)
    for p in processes.values():
        assert 0 <= p["process"]["handler_cpu_s"] <= p["process"]["cpu_s"]
        assert p["process"]["handler_cpu_s"] == pytest.approx(sum(x["handler_cpu_s"] for x in p["links"].values()), abs=1e-5)
    assert sum(p["links"]["grab"]["handler_cpu_s"] for p in processes.values() if "grab" in p["links"]) > 0
    # a request's whole path (parsing, aiohttp, the middleware, writing) holds its handler and more
    for p in processes.values():
        for link, x in p["links"].items():
            if x["requests"] and link != "admin":
                assert x["path_cpu_s"] > x["handler_cpu_s"] > 0, (link, x)
        assert p["process"]["path_cpu_s"] <= p["process"]["cpu_s"]
        # the core's speed, sampled through the run: a batch a second, its CPU charged to no link
        assert p["process"]["speed"]["units"] >= PER_SLICE and p["process"]["speed"]["cpu_s"] > 0
    # /metrics (one process's view) agrees with that process's report.
    text = TargetClient(t.url).raw("GET", "/metrics")[1].decode()
    pid = re.search(r"^gala_target_process_pid (\d+)$", text, re.M).group(1)
    grabs = re.search(r'^gala_target_link_requests_total\{link="grab"\} (\d+)$', text, re.M)
    own = processes[pid]["links"].get("grab", {}).get("requests", 0)
    assert (int(grabs.group(1)) if grabs else 0) == own


def test_attribution_can_be_switched_off(target_factory):
    t = target_factory("--no-link-cpu")
    _, a = TargetClient(t.url).register("a")
    a.call("POST", "/grab", {})
    report = TargetClient(t.url, t.admin_token).call("GET", "/admin/cpu")[1]
    assert report["process"]["attribution"] is False and report["links"] == {} and report["process"]["cpu_s"] > 0


def test_the_in_run_speed_samples_do_the_reference_batch_whole():
    track = SpeedTrack()
    for _ in range(UNITS // PER_SLICE + 1):  # one batch, and the first slice of the next
        track.step()
    assert track.checksum == batch(UNITS)  # the same work as the speed reference's batch, all of it
    assert track.units == UNITS + PER_SLICE and track.cpu_s > 0
