"""The supervisor's lease and the sweep of dead runs' keys (real supervisors, real kill -9, real Redis).

A supervisor killed with -9 leaves its run's keys; once its lease lapses, the next supervisor's
start (or `gala target sweep`) deletes them, while a live run, a kept run (--keep-store), a run
that is just starting and every key outside gala's prefixes stay. Everything here lives in a
database of its own (LEASE_DB) so the sweeps never meet another test's runs.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import time
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from conftest import GALA, REPO, gala
from gala.cli.target import DEFAULT_LEASE_S as CLI_DEFAULT_LEASE_S
from loadtests.target import lease
from loadtests.target.client import TargetClient
from loadtests.target.redis_store import prefix_for

LEASE_DB = 13  # no other test uses it
TTL = "2"  # seconds: the shortest lease --lease-ttl allows, so the test waits seconds, not a minute
LIVE_TTL = "6"  # a live run's: renewed every 2 s, so a thread held up a few seconds does not lose it
QUIET = "seed: 7\ndrops: {count: 0}\n"
OUTSIDERS = {"gala-other:{x}:meta": "1", "gala:{lease-notahash}:meta": "1", "gala:notarun": "1",  # never swept
             "other:{lease-x}:meta": "1", "gala:{bad id!}:meta": "1"}


@pytest.fixture
def store(redis_url):
    """The test Redis's LEASE_DB: its URL and a client; earlier leftovers of these tests removed first, outsiders after."""
    parts = urlsplit(redis_url)
    url = urlunsplit((parts.scheme, parts.netloc, f"/{LEASE_DB}", "", ""))
    r = redis.Redis.from_url(url, decode_responses=True)
    try:
        r.ping()
    except redis.ResponseError as exc:  # a Redis configured with fewer databases
        pytest.skip(f"database {LEASE_DB} is not available at {redis_url} ({exc})")
    leftovers = list(r.scan_iter("gala:{lease-*", count=1000))  # an earlier run of these tests cut short
    if leftovers:
        r.delete(*leftovers)
    yield url, r
    r.delete(*OUTSIDERS)
    r.close()


def _serve(factory, tmp_path, url: str, run_id: str, *extra: str):
    """A supervisor with 2 workers and a 2 s lease (unless extra says); the factory stops it after the test, even a failed one."""
    cfg = tmp_path / "quiet.yaml"
    cfg.write_text(QUIET)
    return factory("--config", str(cfg), "--processes", "2", "--store", url, "--run-id", run_id, "--lease-ttl", TTL, *extra)


def _keys(r, run_id: str) -> set[str]:
    return set(r.scan_iter(prefix_for(run_id) + "*", count=1000))


def _kill_9(t) -> None:
    """kill -9 the supervisor and its workers: nobody is left to tidy up."""
    workers = t.worker_pids
    os.kill(t.pid, signal.SIGKILL)
    t.proc.wait(timeout=10)
    for pid in workers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while any(os.path.exists(f"/proc/{pid}") and _state(pid) != "Z" for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0]
    except FileNotFoundError:
        return "gone"


def _wait_lapsed(r, run_id: str) -> None:
    """Until the dead run's lease has expired and its meta is older than the TTL, by Redis's clock."""
    prefix = prefix_for(run_id)
    deadline = time.monotonic() + 60  # a hang guard, not a speed bound: the TTL is 2 s
    while time.monotonic() < deadline:
        sec, usec = r.time()
        if r.ttl(prefix + "lease") == -2 and sec + usec / 1e6 - float(r.hget(prefix + "meta", "started")) > float(TTL):
            return
        time.sleep(0.2)
    raise AssertionError(f"the lease {prefix}lease did not lapse: TTL {r.ttl(prefix + 'lease')}")


def _wait_renewed(r, run_id: str) -> None:
    """Until the live run's lease is seen renewed: its remaining time goes up again."""
    key = prefix_for(run_id) + "lease"
    before = r.pttl(key)
    deadline = time.monotonic() + 60  # a hang guard: it renews every third of its TTL
    while time.monotonic() < deadline:
        now = r.pttl(key)
        assert now > 0, f"the live run's lease is gone ({now})"
        if now > before:
            return
        before = now
        time.sleep(0.05)
    raise AssertionError(f"the live supervisor did not renew {key}")


def _with_state(t) -> None:
    """A user and a friend: keys beyond the meta and the lease."""
    a_id, a = TargetClient(t.url).register("a")
    b_id, _ = TargetClient(t.url).register("b")
    assert a.call("POST", "/friends", {"friend_id": b_id})[0] == 200


def _stop(t, r, run_id: str) -> None:
    t.stop()
    assert _keys(r, run_id) == set(), "a clean stop deletes the run's keys, the lease included"


def test_a_killed_supervisors_keys_are_swept_by_the_next_start(target_factory, tmp_path, store):
    url, r = store
    live_id, dead_id, next_id = (f"lease-{name}-{secrets.token_hex(3)}" for name in ("live", "dead", "next"))
    starting = prefix_for(f"lease-starting-{secrets.token_hex(3)}")
    live = _serve(target_factory, tmp_path, url, live_id, "--lease-ttl", LIVE_TTL)  # a margin for a busy machine
    dead = _serve(target_factory, tmp_path, url, dead_id)
    _with_state(live)
    _with_state(dead)
    assert f"lease {LIVE_TTL} s" in live.log_path.read_text() and "lease 2 s" in dead.log_path.read_text()
    os.kill(live.worker_pids[0], signal.SIGKILL)  # the lease is the supervisor's: losing a worker does not lose it
    _kill_9(dead)
    dead_keys = _keys(r, dead_id)
    assert {prefix_for(dead_id) + k for k in ("meta", "lease", "seq:user")} <= dead_keys  # killed: nothing tidied

    _wait_lapsed(r, dead_id)
    _wait_renewed(r, live_id)
    sec, _ = r.time()
    r.hset(starting + "meta", mapping={"started": sec, "lease_s": lease.DEFAULT_LEASE_S})  # just started, no lease yet
    r.mset(OUTSIDERS)
    live_keys = _keys(r, live_id)
    assert _keys(r, dead_id) == dead_keys - {prefix_for(dead_id) + "lease"}  # only the lease expired

    nxt = _serve(target_factory, tmp_path, url, next_id)
    log = nxt.log_path.read_text()
    swept = re.search(r"gala: swept (\d+) dead runs? \((\d+) keys\)", log)
    assert swept, log
    assert (int(swept[1]), int(swept[2])) == (1, len(dead_keys) - 1), (log, dead_keys)
    assert _keys(r, dead_id) == set()
    assert _keys(r, live_id) == live_keys  # the live run untouched...
    assert TargetClient(live.url).call("GET", "/healthz")[0] == 200  # ...and still serving
    assert r.exists(starting + "meta") and all(r.get(k) == v for k, v in OUTSIDERS.items())
    r.delete(starting + "meta")
    for t, run_id in ((live, live_id), (nxt, next_id)):
        _stop(t, r, run_id)


def test_sweep_command_dry_run_then_sweep_and_a_kept_run_stays(target_factory, tmp_path, store):
    url, r = store
    dead_id, kept_id = f"lease-dead-{secrets.token_hex(3)}", f"lease-kept-{secrets.token_hex(3)}"
    kept = _serve(target_factory, tmp_path, url, kept_id, "--keep-store")
    dead = _serve(target_factory, tmp_path, url, dead_id)
    _with_state(kept)
    _with_state(dead)
    kept.stop()
    assert r.get(prefix_for(kept_id) + "lease") == lease.KEPT and r.ttl(prefix_for(kept_id) + "lease") == -1
    kept_keys = _keys(r, kept_id)
    _kill_9(dead)
    r.mset({f"{prefix_for(dead_id)}filler:{i}": i for i in range(2500)})  # more than two UNLINK batches
    _wait_lapsed(r, dead_id)
    dead_keys = _keys(r, dead_id)
    assert len(dead_keys) > 2500

    dry = gala("target", "sweep", "--store", url, "--dry-run", timeout_s=60)
    assert dry.returncode == 0 and dry.stderr == "", dry
    assert dry.stdout.splitlines() == [f"would sweep 1 dead run ({len(dead_keys)} keys) from {url}: {prefix_for(dead_id)}; "
                                       "untouched: 0 live, 1 kept (--keep-store), 0 starting"], dry.stdout
    assert _keys(r, dead_id) == dead_keys  # a dry run deletes nothing

    done = gala("target", "sweep", "--store", url, timeout_s=60)
    assert done.returncode == 0 and done.stdout.startswith(f"swept 1 dead run ({len(dead_keys)} keys) from {url};"), done
    assert _keys(r, dead_id) == set() and _keys(r, kept_id) == kept_keys
    again = gala("target", "sweep", "--store", url, timeout_s=60)
    assert again.returncode == 0 and again.stdout.startswith("swept 0 dead runs (0 keys)"), again
    r.delete(*kept_keys)


def test_a_batch_is_not_deleted_once_the_run_holds_a_lease_again(store):
    """The check and the delete are one script: a supervisor restarting the run id between two batches wins."""
    url, r = store
    prefix = prefix_for(f"lease-back-{secrets.token_hex(3)}")
    r.mset({prefix + "meta": "x", prefix + "seq:user": "3", prefix + "lease": "host:1"})
    client = lease.client_for(url)
    try:
        assert lease.delete_run(client, prefix, guarded=True) == (0, False)
        assert len(list(r.scan_iter(prefix + "*"))) == 3
        r.delete(prefix + "lease")
        assert lease.delete_run(client, prefix, guarded=True) == (2, True)
        assert list(r.scan_iter(prefix + "*")) == []
    finally:
        client.close()


def test_sweep_unreachable_store_and_bad_lease_ttl_exit_2():
    url = "redis://127.0.0.1:1/13"  # port 1: nothing listens there
    proc = subprocess.run([*GALA, "target", "sweep", "--store", url], capture_output=True, text=True, timeout=60, cwd=REPO)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and proc.stdout == "" and len(lines) == 1 and url in lines[0], proc
    for ttl in ("1", "3601"):
        proc = subprocess.run([*GALA, "target", "serve", "--port", "0", "--lease-ttl", ttl], capture_output=True,
                              text=True, timeout=60, cwd=REPO)
        assert proc.returncode == 2 and proc.stderr.strip() == f"gala: --lease-ttl {ttl}: expected 2..3600 seconds", proc
    assert CLI_DEFAULT_LEASE_S == lease.DEFAULT_LEASE_S  # the CLI's default is the lease's (not imported there)


def test_a_sweep_out_of_time_leaves_the_run_findable(store):
    """Past its time budget (a supervisor's start gives it 10 s) the sweep stops; the next one finds the run whole."""
    url, r = store
    prefix = prefix_for(f"lease-slow-{secrets.token_hex(3)}")
    sec, _ = r.time()
    r.hset(prefix + "meta", mapping={"started": sec - 3600, "lease_s": 60})  # a dead run: no lease, an old meta
    r.mset({f"{prefix}filler:{i}": i for i in range(10)})
    out = lease.sweep(url, budget_s=0)
    assert (out.dead, out.keys, out.left) == ([], 0, 1) and "1 dead left for the next sweep" in out.line(url, False)
    assert len(list(r.scan_iter(prefix + "*"))) == 11
    out = lease.sweep(url)
    assert (out.dead, out.keys, out.left) == ([prefix], 11, 0) and list(r.scan_iter(prefix + "*")) == []


def test_a_supervisor_stalled_past_its_lease_says_so_when_it_resumes(target_factory, tmp_path, store):
    """SIGSTOP longer than the TTL: the run counts as dead (a sweep takes it); on SIGCONT the supervisor says so."""
    url, r = store
    run_id = f"lease-stalled-{secrets.token_hex(3)}"
    t = _serve(target_factory, tmp_path, url, run_id)
    os.kill(t.pid, signal.SIGSTOP)
    try:
        _wait_lapsed(r, run_id)
        out = lease.sweep(url)
        assert prefix_for(run_id) in out.dead and _keys(r, run_id) == set()
    finally:
        os.kill(t.pid, signal.SIGCONT)
    deadline = time.monotonic() + 30  # a hang guard: it renews within a third of the TTL
    while "the run's lease had lapsed" not in t.log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "gala: the run's lease had lapsed" in t.log_path.read_text()
    assert r.ttl(prefix_for(run_id) + "lease") >= 0  # held again, so no further sweep takes what it writes next
    _stop(t, r, run_id)


def test_a_refused_port_is_one_line_and_leaves_no_keys(store):
    url, r = store
    run_id = f"lease-port-{secrets.token_hex(3)}"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([*GALA, "target", "serve", "--port", str(port), "--processes", "2", "--store", url,
                               "--run-id", run_id], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"gala: --port {port}: cannot listen on 127.0.0.1:{port} (Address already in use)"], proc
    assert _keys(r, run_id) == set()  # its meta and lease were written, then deleted: nothing waits for a sweep
