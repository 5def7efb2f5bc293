"""Fault injection does what it says, on the link it names only, and a failed request changes nothing."""

from __future__ import annotations

import math
import re
import socket
import time

import pytest

from loadtests.target.client import TargetClient


def _histogram(metrics_text: str, link: str) -> tuple[float, int]:
    """Server-side latency sum (s) and count for one link, from /metrics."""
    s = re.search(rf'gala_target_request_duration_seconds_sum{{link="{link}"}} (\S+)', metrics_text)
    n = re.search(rf'gala_target_request_duration_seconds_count{{link="{link}"}} (\S+)', metrics_text)
    return float(s.group(1)), int(n.group(1))


def test_faults_latency_errors_and_stall_each_on_their_link(target_factory, tmp_path):
    cfg = tmp_path / "quiet.yaml"
    cfg.write_text("seed: 5\ndrops: {count: 0}\n")
    t = target_factory("--config", str(cfg), "--inject", "grab:latency=300", "--inject", "chat:errors=0.3",
                       "--inject", "share:stall=30")
    admin = TargetClient(t.url, t.admin_token)
    (a_id, a), (b_id, b) = TargetClient(t.url).register("a"), TargetClient(t.url).register("b")
    assert a.call("POST", "/friends", {"friend_id": b_id})[0] == 200

    # latency: every grab takes at least the injected 300 ms; the setup link is not delayed.
    for _ in range(4):
        started = time.perf_counter()
        status, _ = a.call("POST", "/grab", {})
        assert status == 200 and time.perf_counter() - started >= 0.3
    for _ in range(4):
        assert a.call("GET", "/me")[0] == 200
    text = admin.raw("GET", "/metrics")[1].decode()
    grab_sum, grab_n = _histogram(text, "grab")
    setup_sum, setup_n = _histogram(text, "setup")
    assert grab_n == 4 and grab_sum >= 4 * 0.3
    assert setup_n == 7 and setup_sum / setup_n < 0.3  # no injected delay on setup (a 100x margin)

    # errors: ~30% of chat requests answer 503 (binomial, +-5 sd), and a 503 sends no message.
    n = 300
    statuses = [a.call("POST", "/chat/send", {"to": b_id, "text": f"m{i}"})[0] for i in range(n)]
    failed, sent = statuses.count(503), statuses.count(200)
    assert failed + sent == n
    assert abs(failed - 0.3 * n) <= 5 * math.sqrt(n * 0.3 * 0.7), failed
    totals = admin.call("GET", "/admin/audit")[1]["totals"]
    assert totals["messages"] == sent
    assert admin.call("GET", "/admin/audit")[0] == 200  # the admin link has no fault

    # stall: a share request hangs past the client's timeout; grab and setup still answer meanwhile.
    admin.call("POST", "/admin/drop", {"pool_fen": 0, "duration_s": 60, "envelope_odds": 0.0, "card_odds": {"友善": 1.0}})
    card = a.call("POST", "/grab", {})[1]
    stalled = TargetClient(t.url, a.token, timeout_s=1.0)
    with pytest.raises((socket.timeout, TimeoutError)):
        stalled.call("POST", "/share/card", {"card_id": card["card_id"], "to": b_id})
    stalled.close()
    assert b.call("GET", "/me")[0] == 200
    after = admin.call("GET", "/admin/audit")[1]
    assert after["passed"] and after["totals"]["card_gifts"] == 0
    assert [c["card_id"] for c in a.call("GET", "/me")[1]["cards"]] == [card["card_id"]]
