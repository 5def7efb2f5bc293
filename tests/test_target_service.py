"""The target as a process and a service: first line, admin token, schedule, draw, metrics, clean exit."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

from conftest import GALA, REPO
from loadtests.target.client import TargetClient
from loadtests.target.config import CARD_KINDS, load_config

REFERENCE = REPO / "loadtests/target/configs/gala-2016.yaml"


def _gala(*args: str, env: dict | None = None, timeout_s: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([*GALA, *args], capture_output=True, text=True, timeout=timeout_s, cwd=REPO,
                          env=dict(os.environ, **(env or {})))


def test_reference_config_has_the_nights_figures():
    cfg = load_config(REFERENCE)
    assert cfg.drops.pool_fen == [10_000_000_000] and cfg.drops.count == 4
    assert cfg.max_envelope_fen == 880
    assert cfg.card_caps == {"敬业": 826_888}
    assert cfg.blessing_pool_fen == 21_500_000_000


def test_bad_inputs_exit_2_with_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("drops:\n  interval_s: 10\n  duration_s: 20\n")
    cases = [
        (["--config", str(bad)], f"{bad}:1: drops: duration_s"),
        (["--config", str(tmp_path / "missing.yaml")], "missing.yaml: no such target config file"),
        (["--inject", "grab:slow=5"], "--inject 'grab:slow=5'"),
        (["--inject", "nolink:latency=5"], "--inject 'nolink:latency=5'"),
        (["--inject", "chat:errors=1.5"], "errors must be a ratio"),
        (["--host", "0.0.0.0"], "--allow-remote"),
    ]
    for extra, expected in cases:
        proc = _gala("target", "serve", "--port", "0", *extra)
        assert proc.returncode == 2, (extra, proc.stdout, proc.stderr)
        assert proc.stdout == "" and "Traceback" not in proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], (extra, proc.stderr)


def test_first_line_token_line_and_clean_sigterm(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "GALA_ADMIN_TOKEN"}
    proc = subprocess.Popen([*GALA, "target", "serve", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)
    try:
        first, second = proc.stdout.readline(), proc.stdout.readline()
        assert re.fullmatch(r"serving on http://127\.0\.0\.1:\d+\n", first), first
        token = second.strip().removeprefix("admin token: ")
        assert second.startswith("admin token: ") and len(token) >= 16
        url = first.split()[-1]
        assert TargetClient(url).call("GET", "/healthz") == (200, {"ok": True})
        assert TargetClient(url, token).call("GET", "/admin/audit")[0] == 200
        assert TargetClient(url, "wrong").call("GET", "/admin/audit")[0] == 401
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)


def test_default_schedule_opens_a_drop_within_two_seconds(target):
    client = TargetClient(target.url)
    deadline = time.monotonic() + 10
    status = client.call("GET", "/drop")[1]
    while not status["open"] and time.monotonic() < deadline:
        time.sleep(0.1)
        status = client.call("GET", "/drop")[1]
    assert status["open"] and status["drop_id"] == 1 and status["pool_left_fen"] > 0
    assert status["next_in_s"] > status["closes_in_s"] > 0


def test_five_card_draw_end_to_end(target_factory, tmp_path):
    cfg = tmp_path / "draw.yaml"
    cfg.write_text("seed: 11\ndrops: {count: 0}\nblessing_pool_fen: 1000003\n")
    t = target_factory("--config", str(cfg))
    admin = TargetClient(t.url, t.admin_token)
    users = [TargetClient(t.url).register(f"u{i}") for i in range(7)]
    # Users 0-2 collect all five kinds, users 3-4 miss 友善, users 5-6 hold nothing.
    for kind in CARD_KINDS:
        admin.call("POST", "/admin/drop", {"pool_fen": 0, "duration_s": 60, "envelope_odds": 0.0, "card_odds": {kind: 1.0}})
        for _, c in users[:3] + (users[3:5] if kind != "友善" else []):
            assert c.call("POST", "/grab", {})[1]["kind"] == kind
    status, draw = admin.call("POST", "/admin/draw", {})
    assert status == 200
    assert draw["winners"] == 3 and sorted(draw["winner_ids"]) == [uid for uid, _ in users[:3]]
    assert draw["share_fen"] == 1000003 // 3 and draw["remainder_fen"] == 1000003 % 3
    assert draw["share_fen"] * draw["winners"] + draw["remainder_fen"] == draw["pool_fen"] == 1000003
    assert [c.call("GET", "/me")[1]["winnings_fen"] for _, c in users] == [333334] * 3 + [0] * 4
    # The game is closed: a second draw, a card gift and a card tap are all refused.
    assert admin.call("POST", "/admin/draw", {})[0] == 409
    (a_id, a), (b_id, _) = users[0], users[1]
    a.call("POST", "/friends", {"friend_id": b_id})
    card_id = a.call("GET", "/me")[1]["cards"][0]["card_id"]
    assert a.call("POST", "/share/card", {"card_id": card_id, "to": b_id})[0] == 409
    assert a.call("POST", "/grab", {})[1] == {"result": "nothing", "reason": "game_closed"}
    report = admin.call("GET", "/admin/audit")[1]
    assert report["passed"], report
    assert report["totals"]["draw_paid_fen"] + report["totals"]["draw_remainder_fen"] == 1000003


def _counters(text: str) -> dict[tuple[str, str], int]:
    return {(m[0], m[1]): int(m[2]) for m in re.findall(r'gala_target_requests_total\{link="(\w+)",status="(\d+)"\} (\d+)', text)}


def test_metrics_count_the_requests_sent(target_factory, tmp_path):
    cfg = tmp_path / "quiet.yaml"
    cfg.write_text("drops: {count: 0}\n")
    t = target_factory("--config", str(cfg))
    (uid, a), (vid, b) = TargetClient(t.url).register("a"), TargetClient(t.url).register("b")
    for _ in range(7):
        a.call("POST", "/grab", {})
    for _ in range(3):
        a.call("GET", "/me")
    for _ in range(2):
        TargetClient(t.url, "1.forged").call("POST", "/grab", {})
    a.call("POST", "/friends", {"friend_id": vid})
    for _ in range(5):
        a.call("POST", "/chat/send", {"to": vid, "text": "新年快乐"})
    b.call("GET", "/chat/inbox?since=0")
    TargetClient(t.url).call("GET", "/nowhere")
    text = TargetClient(t.url).raw("GET", "/metrics")[1].decode()
    counters = _counters(text)
    assert counters == {("setup", "201"): 2, ("grab", "200"): 7, ("setup", "200"): 4, ("grab", "401"): 2,
                        ("chat", "200"): 6, ("none", "404"): 1}, counters
    for link in ("grab", "setup", "chat"):
        count = int(re.search(rf'gala_target_request_duration_seconds_count{{link="{link}"}} (\d+)', text).group(1))
        assert count == sum(n for (lk, _), n in counters.items() if lk == link)
    assert "gala_target_messages 5" in text and "gala_target_users 2" in text
