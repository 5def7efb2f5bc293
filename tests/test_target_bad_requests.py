"""Every kind of bad request gets a 4xx with a JSON reason, and changes nothing (the audit is unchanged)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from conftest import start_target
from loadtests.target.client import TargetClient


@dataclass
class World:
    url: str
    admin: TargetClient
    ids: dict[str, int]
    tokens: dict[str, str]
    card_id: int
    envelope_id: int
    envelope_fen: int


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One target: a and b are friends, b and c are friends, a and c are not; a holds a card and an envelope."""
    tmp = tmp_path_factory.mktemp("bad-requests")
    cfg = tmp / "quiet.yaml"
    cfg.write_text("seed: 3\ndrops: {count: 0}\nmax_body_bytes: 4096\n")
    t = start_target("--config", str(cfg), log_dir=tmp)
    try:
        admin = TargetClient(t.url, t.admin_token)
        reg = {n: TargetClient(t.url).register(n) for n in "abc"}
        ids = {n: uid for n, (uid, _) in reg.items()}
        tokens = {n: c.token for n, (_, c) in reg.items()}
        a, b = reg["a"][1], reg["b"][1]
        a.call("POST", "/friends", {"friend_id": ids["b"]})
        b.call("POST", "/friends", {"friend_id": ids["c"]})
        admin.call("POST", "/admin/drop", {"pool_fen": 500, "duration_s": 600, "envelope_odds": 1.0})
        env = a.call("POST", "/grab", {})[1]
        admin.call("POST", "/admin/drop", {"pool_fen": 0, "duration_s": 600, "envelope_odds": 0.0, "card_odds": {"和谐": 1.0}})
        card = a.call("POST", "/grab", {})[1]
        assert env["result"] == "envelope" and card["result"] == "card", (env, card)
        yield World(t.url, admin, ids, tokens, card["card_id"], env["envelope_id"], env["amount_fen"])
    finally:
        t.stop()


def _bad_cases(w: World):
    """(name, method, path, raw body, who, expected status, expected field)."""
    a, b, c = w.ids["a"], w.ids["b"], w.ids["c"]
    X, E, K = w.envelope_fen, w.envelope_id, w.card_id
    j = lambda d: json.dumps(d).encode()  # noqa: E731
    return [
        ("malformed json", "POST", "/friends", b'{"friend_id": ', "a", 400, "body"),
        ("not an object", "POST", "/share/card", b"[1, 2]", "a", 400, "body"),
        ("not utf-8", "POST", "/chat/send", b'{"to": 2, "text": "\xff\xfe"}', "a", 400, "body"),
        ("missing field", "POST", "/friends", j({}), "a", 400, "friend_id"),
        ("wrong type (string id)", "POST", "/friends", j({"friend_id": str(b)}), "a", 400, "friend_id"),
        ("float card id", "POST", "/share/card", j({"card_id": float(K), "to": b}), "a", 400, "card_id"),
        ("bool card id", "POST", "/share/card", j({"card_id": True, "to": b}), "a", 400, "card_id"),
        ("negative card id", "POST", "/share/card", j({"card_id": -1, "to": b}), "a", 400, "card_id"),
        ("huge user id", "POST", "/share/card", j({"card_id": K, "to": 10**30}), "a", 400, "to"),
        ("missing amounts target", "POST", "/share/split", j({"envelope_id": E}), "a", 400, "to"),
        ("negative amount", "POST", "/share/split", j({"envelope_id": E, "to": [b, b], "amounts_fen": [-1, X + 1]}), "a", 400, "amounts_fen"),
        ("zero amount", "POST", "/share/split", j({"envelope_id": E, "to": [b, b], "amounts_fen": [0, X]}), "a", 400, "amounts_fen"),
        ("float amount", "POST", "/share/split", j({"envelope_id": E, "to": [b], "amounts_fen": [X + 0.0]}), "a", 400, "amounts_fen"),
        ("bool amount", "POST", "/share/split", j({"envelope_id": E, "to": [b], "amounts_fen": [True]}), "a", 400, "amounts_fen"),
        ("huge amount", "POST", "/share/split", j({"envelope_id": E, "to": [b], "amounts_fen": [10**12]}), "a", 400, "amounts_fen"),
        ("amounts not summing", "POST", "/share/split", j({"envelope_id": E, "to": [b], "amounts_fen": [X + 1]}), "a", 400, "amounts_fen"),
        ("amounts count mismatch", "POST", "/share/split", j({"envelope_id": E, "to": [b], "amounts_fen": [1, X - 1]}), "a", 400, "amounts_fen"),
        ("more ways than fen", "POST", "/share/split", j({"envelope_id": E, "to": [b] * (X + 1)}), "a", 400, "to"),
        ("unknown friend", "POST", "/friends", j({"friend_id": 99_999}), "a", 404, "friend_id"),
        ("befriend oneself", "POST", "/friends", j({"friend_id": a}), "a", 400, "friend_id"),
        ("chat to unknown user", "POST", "/chat/send", j({"to": 99_999, "text": "hi"}), "a", 404, "to"),
        ("unknown card", "POST", "/share/card", j({"card_id": 99_999, "to": b}), "a", 404, "card_id"),
        ("unknown envelope", "POST", "/share/split", j({"envelope_id": 99_999, "to": [b]}), "a", 404, "envelope_id"),
        ("someone else's card", "POST", "/share/card", j({"card_id": K, "to": b}), "c", 403, "card_id"),
        ("someone else's envelope", "POST", "/share/split", j({"envelope_id": E, "to": [b]}), "c", 403, "envelope_id"),
        ("card to a non-friend", "POST", "/share/card", j({"card_id": K, "to": c}), "a", 403, "to"),
        ("split to a non-friend", "POST", "/share/split", j({"envelope_id": E, "to": [b, c]}), "a", 403, "to"),
        ("chat to a non-friend", "POST", "/chat/send", j({"to": c, "text": "hi"}), "a", 403, "to"),
        ("empty chat", "POST", "/chat/send", j({"to": b, "text": ""}), "a", 400, "text"),
        ("chat too long", "POST", "/chat/send", j({"to": b, "text": "福" * 501}), "a", 400, "text"),
        ("chat not a string", "POST", "/chat/send", j({"to": b, "text": 42}), "a", 400, "text"),
        ("oversized body", "POST", "/chat/send", j({"to": b, "text": "x" * 5000}), "a", 413, "body"),
        ("forged token", "POST", "/grab", b"{}", "forged", 401, "Authorization"),
        ("token of a user who does not exist", "POST", "/grab", b"{}", "ghost", 401, "Authorization"),
        ("token with non-ascii bytes", "POST", "/grab", b"{}", "binary", 401, "Authorization"),
        ("digits that are not ascii", "POST", "/grab", b"{}", "arabic", 401, "Authorization"),
        ("admin token with non-ascii bytes", "GET", "/admin/audit", None, "binary", 401, "Authorization"),
        ("missing token", "POST", "/share/card", j({"card_id": K, "to": b}), None, 401, "Authorization"),
        ("user token on admin call", "POST", "/admin/draw", b"{}", "a", 401, "Authorization"),
        ("unknown path", "POST", "/steal", b"{}", "a", 404, "path"),
        ("wrong method", "GET", "/grab", None, "a", 405, "path"),
        ("bad inbox cursor", "GET", "/chat/inbox?since=-1", None, "a", 400, "since"),
        ("bad inbox limit", "GET", "/chat/inbox?limit=0", None, "a", 400, "limit"),
        ("user without a name", "POST", "/users", j({"name": 7}), None, 400, "name"),
        ("negative drop pool", "POST", "/admin/drop", j({"pool_fen": -5, "duration_s": 5}), "admin", 400, "pool_fen"),
        ("bool drop duration", "POST", "/admin/drop", j({"pool_fen": 5, "duration_s": True}), "admin", 400, "duration_s"),
        ("odds above one", "POST", "/admin/drop", j({"pool_fen": 5, "duration_s": 5, "envelope_odds": 1.5}), "admin", 400, "envelope_odds"),
    ]


CASE_NAMES = [c[0] for c in _bad_cases(World("", None, {"a": 1, "b": 2, "c": 3}, {}, 0, 0, 10))]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_request_is_rejected_and_changes_nothing(world, name):
    _, method, path, body, who, status, field = next(c for c in _bad_cases(world) if c[0] == name)
    token = {"forged": f"{world.ids['a']}.forged-secret", "ghost": "99999.nope", "admin": world.admin.token,
             "binary": b"1.\xff\xfe\x80", "arabic": "\u0661." + world.tokens["a"].split(".", 1)[1],
             None: None}.get(who, world.tokens.get(who))
    before = world.admin.call("GET", "/admin/audit")[1]["totals"]
    client = TargetClient(world.url, token)  # a fresh connection: an oversized body may close it
    got_status, raw = client.raw(method, path, body)
    client.close()
    reply = json.loads(raw)
    assert got_status == status, (got_status, reply)
    assert isinstance(reply.get("error"), str) and reply["error"]
    assert reply.get("field") == field, reply
    after = world.admin.call("GET", "/admin/audit")[1]
    assert after["passed"], after
    assert after["totals"] == before
