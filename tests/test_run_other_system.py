"""The harness is not tied to the gala: a scenario with other links, against a small server of its own
(aiohttp on 127.0.0.1, in a subprocess), its CPU sampled through --target-pid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from run_helpers import assert_totals_match_locust, start_run

from gala.contract.results import load_run

pytestmark = pytest.mark.timeout(180)

SERVER = textwrap.dedent("""
    import asyncio

    from aiohttp import web

    async def search(request):
        return web.json_response({"hits": [1, 2, 3]})

    async def checkout(request):
        body = await request.json()
        if body.get("sku") == "bad":
            return web.json_response({"error": "no such sku"}, status=404)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/search", search)
    app.router.add_post("/checkout", checkout)
    runner = web.AppRunner(app)

    async def main():
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        print(f"serving on http://127.0.0.1:{port}", flush=True)
        await asyncio.Event().wait()
    asyncio.run(main())
""")

SCENARIO = textwrap.dedent("""
    name: shop
    seed: 7
    target: {url: "http://127.0.0.1:1"}   # replaced by --host
    links:
      search: {critical: true}
      checkout: {critical: true}
    users:
      Shopper:
        rate_per_s: 5
        pacing: poisson
        requests:
          - {method: GET, path: /search, link: search, weight: 3}
          - {method: POST, path: /checkout, link: checkout, weight: 1, json: {sku: "a1"}}
          - {method: POST, path: /checkout, link: checkout, label: bad, weight: 0.2, json: {sku: "bad"}}
    phases:
      - {name: browse, duration_s: 5, users: {Shopper: 10}, spawn_rate: 20}
      - {name: buy, duration_s: 5, users: {Shopper: 20}, spawn_rate: 20}
""")


@pytest.fixture
def shop_server(tmp_path):
    script = tmp_path / "shop.py"
    script.write_text(SERVER)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        deadline = time.monotonic() + 30
        line = ""
        while time.monotonic() < deadline and "http://" not in line:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
        assert "http://" in line, f"shop server did not start: {line!r}"
        yield line.split()[-1], proc.pid
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_other_links_against_another_server(tmp_path, shop_server):
    url, pid = shop_server
    scenario = tmp_path / "shop.yaml"
    scenario.write_text(SCENARIO)
    run = start_run(tmp_path / "out", "--scenario", str(scenario), "--host", url, "--target-pid", str(pid),
                    "--target-nodes", "3", "--target-cores-per-node", "4", "--quiet")
    code = run.finish(timeout_s=150)
    assert code == 0, run.output()
    assert run.survivors() == []
    folder = run.run_dir()
    r = load_run(folder)
    assert r.info.status == "complete"
    assert r.info.links == ["search", "checkout"] and r.info.critical_links == ["search", "checkout"]
    assert not r.info.target.builtin and r.info.target.url == url
    assert r.info.target.pids == [pid] and r.info.target.nodes == 3
    assert r.info.target.model_extra["cores_per_node"] == 4.0
    assert not (folder / "target.log").exists() and r.audit is None and not r.info.audit.available
    totals = assert_totals_match_locust(folder)
    assert totals.loc["search", "Request Count"] > totals.loc["checkout", "Request Count"] > 0
    # the 404s of the "bad" sku are failures of the checkout link, and only of it
    assert totals.loc["checkout", "Failure Count"] > 0 and totals.loc["search", "Failure Count"] == 0
    st = r.phase_link.set_index(["phase", "link"])
    assert st.loc[("buy", "_all"), "requests"] > 0 and st.loc[("browse", "_all"), "requests"] > 0
    assert [p.name for p in r.info.phases] == ["browse", "buy"]
    target_cpu = r.cpu[r.cpu["role"] == "target"]
    assert set(target_cpu["pid"]) == {pid} and target_cpu["cpu_s"].iloc[-1] > 0


def test_external_target_dying_mid_run_is_recorded(tmp_path, shop_server):
    url, pid = shop_server
    scenario = tmp_path / "shop.yaml"
    scenario.write_text(SCENARIO)
    run = start_run(tmp_path / "out", "--scenario", str(scenario), "--host", url, "--target-pid", str(pid), "--quiet")
    code, _ = run.signal_when(lambda: (run.live() or {}).get("t_s", 0) >= 2, "2 s of load", lambda: pid,
                              signal.SIGKILL)
    assert code == 1, run.output()  # the target died: the run failed (docs/exit-codes.md)
    r = load_run(run.run_dir())
    assert r.info.status == "degraded"
    assert [(e.what, e.detail) for e in r.info.degraded] == [("target-exited", f"--target-pid {pid} is gone")]
    assert r.phase_link.set_index(["phase", "link"]).loc[("_all", "_all"), "failures"] > 0
