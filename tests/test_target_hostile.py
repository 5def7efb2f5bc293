"""Hostile input and half-sent requests, for both stores (one in-memory process; two processes over Redis).

Lone surrogates are never stored, deep JSON and Unicode digits are 400s, the HTTP parser's own
refusals are JSON, reads never change state, and half-sent requests neither pin a process nor
keep /healthz from answering, even with `ulimit -n 1024` and 1,100 slowloris connections.
"""

from __future__ import annotations

import json
import resource
import select
import socket
import time
from urllib.parse import urlsplit

import pytest

from conftest import STORES, store_args
from loadtests.target.client import TargetClient

QUIET = "seed: 3\ndrops: {count: 0}\n"
OPEN_NOW = "seed: 3\nenvelope_odds: 1.0\ncard_odds: {}\ndrops: {first_at_s: 0, duration_s: 600, interval_s: 600, count: 1, pool_fen: 5000}\n"


@pytest.fixture(params=STORES)
def store(request):
    return request.param


def _start(target_factory, tmp_path, request, store, text=QUIET, **kw):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(text)
    return target_factory("--config", str(cfg), *store_args(store, request), **kw)


def _raw(url: str, data: bytes, timeout_s: float = 10.0) -> bytes:
    """Send bytes on a fresh connection and read until the target closes it (or the timeout)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout_s) as s:
        s.sendall(data)
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except (socket.timeout, ConnectionResetError):
            pass
    return b"".join(chunks)


def _json_reply(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"application/json" in head.lower(), head
    return status, json.loads(body)


def _digest(admin: TargetClient) -> str:
    report = admin.call("GET", "/admin/audit")[1]
    assert report["passed"], report
    return report["totals"]["state_digest"]


def test_hostile_bodies_and_queries(target_factory, tmp_path, request, store):
    t = _start(target_factory, tmp_path, request, store)
    admin = TargetClient(t.url, t.admin_token)
    (a_id, a), (b_id, b) = TargetClient(t.url).register("a"), TargetClient(t.url).register("b")
    assert a.call("POST", "/friends", {"friend_id": b_id})[0] == 200
    before = _digest(admin)
    cases = [  # (client, method, path, raw body, field at fault)
        (a, "POST", "/chat/send", b'{"to": %d, "text": "\\ud800"}' % b_id, "text"),
        (a, "POST", "/chat/send", b'{"to": %d, "text": "ok \\udfff then"}' % b_id, "text"),
        (TargetClient(t.url), "POST", "/users", b'{"name": "\\ud83d"}', "name"),
        (a, "POST", "/chat/send", b"[" * 2000, "body"),  # 4 KB of nesting: too deep, not a crash
        (a, "POST", "/chat/send", b"[" * 2000 + b"]" * 2000, "body"),
        (TargetClient(t.url), "POST", "/users", b'{"name": ' + b"[" * 3000 + b"]" * 3000 + b"}", "body"),
        (b, "GET", "/chat/inbox?since=%C2%B2", None, "since"),  # since=²
        (b, "GET", "/chat/inbox?limit=%E2%91%A0", None, "limit"),  # limit=①
        (b, "GET", "/chat/inbox?since=%D9%A3", None, "since"),  # an Arabic-Indic 3
    ]
    for client, method, path, body, field in cases:
        status, raw = client.raw(method, path, body)
        reply = json.loads(raw)
        assert status == 400 and reply["field"] == field and reply["error"], (path, body[:40] if body else None, status, reply)
    assert _digest(admin) == before  # nothing stored
    assert b.call("GET", "/chat/inbox?since=0") == (200, {"messages": [], "cursor": 0})
    assert a.call("GET", "/me")[0] == 200 and b.call("GET", "/me")[0] == 200
    # A valid astral character is fine, and renders.
    assert a.call("POST", "/chat/send", {"to": b_id, "text": "福🧧"})[0] == 200
    assert b.call("GET", "/chat/inbox")[1]["messages"][0]["text"] == "福🧧"


def test_parser_refusals_are_json(target_factory, tmp_path, request, store):
    t = _start(target_factory, tmp_path, request, store)
    for data in (b"GARBAGE\r\n\r\n", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 20_000 + b"\r\n\r\n",
                 b"POST /users HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                 b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"):
        status, reply = _json_reply(_raw(t.url, data))
        assert status == 400 and reply["error"].startswith("bad HTTP request") and reply["field"] is None, (data[:40], reply)
    assert TargetClient(t.url).call("GET", "/healthz")[0] == 200


def test_reads_do_not_change_state(target_factory, tmp_path, request, store):
    t = _start(target_factory, tmp_path, request, store, OPEN_NOW)
    admin = TargetClient(t.url, t.admin_token)
    time.sleep(0.2)
    before = _digest(admin)
    for _ in range(3):
        status = TargetClient(t.url).call("GET", "/drop")[1]
        assert status["open"] and status["drop_id"] == 1 and status["pool_left_fen"] == 5000, status
        assert TargetClient(t.url).raw("GET", "/metrics")[0] == 200
    assert _digest(admin) == before
    # The drop a reader saw is the one a writer gets: same id, same pool.
    _, a = TargetClient(t.url).register("a")
    grabbed = a.call("POST", "/grab", {})[1]
    assert grabbed["result"] == "envelope" and grabbed["drop_id"] == 1, grabbed
    assert TargetClient(t.url).call("GET", "/drop")[1]["pool_left_fen"] == 5000 - grabbed["amount_fen"]


def _closed(socks: list[socket.socket], wait_s: float) -> int:
    """How many of `socks` the target has closed (EOF or reset) within `wait_s`."""
    closed, pending, deadline = 0, list(socks), time.monotonic() + wait_s
    while pending and time.monotonic() < deadline:
        readable, _, _ = select.select(pending, [], [], 0.2)
        for s in readable:
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if not data:
                closed += 1
            pending.remove(s)
    return closed


def test_half_sent_requests_time_out_and_the_cap_holds(target_factory, tmp_path, request, store):
    cfg = QUIET + "idle_timeout_s: 1\nbody_timeout_s: 1\nmax_connections: 40\n"
    t = _start(target_factory, tmp_path, request, store, cfg)
    host, port = urlsplit(t.url).hostname, urlsplit(t.url).port
    # Headers never finished: closed after idle_timeout_s (well within 10 s).
    half = socket.create_connection((host, port))
    half.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    assert _closed([half], 10.0) == 1
    # A body that never comes: 408 in JSON after body_timeout_s.
    status, reply = _json_reply(_raw(t.url, b"POST /users HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"na"))
    assert status == 408 and reply["field"] == "body", reply
    # 100 idle connections against a cap of 40 per process: the oldest are closed, /healthz answers.
    socks = [socket.create_connection((host, port)) for _ in range(100)]
    assert TargetClient(t.url).call("GET", "/healthz") == (200, {"ok": True})
    processes = len(t.worker_pids) or 1
    assert _closed(socks, 0.8) >= 100 - 40 * processes, "the cap must close the oldest idle connections"
    for s in socks + [half]:
        s.close()


def test_slowloris_under_ulimit_1024(target_factory, tmp_path, request, store):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 1300:
        pytest.skip(f"this test process may open only {hard} files; 1,100 attacking connections need more")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1300), hard))
    t = _start(target_factory, tmp_path, request, store,
               preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024)))
    host, port = urlsplit(t.url).hostname, urlsplit(t.url).port
    attackers = []
    try:
        for _ in range(1100):
            s = socket.create_connection((host, port), timeout=5)
            s.sendall(b"POST /users HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # and never another byte
            attackers.append(s)
        for _ in range(5):
            assert TargetClient(t.url, timeout_s=5).call("GET", "/healthz") == (200, {"ok": True})
        assert t.proc.poll() is None
    finally:
        for s in attackers:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
