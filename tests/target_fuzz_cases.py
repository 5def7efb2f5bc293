"""Hypothesis strategies for hostile requests to every endpoint of the built-in target, and the check
each case must pass: a 2xx, or a 4xx with a JSON reason that changed nothing; never a 5xx; the audit
passing. Shared by tests/test_target_fuzz.py (a few hundred cases) and benchmarks/fuzz_target.py
(10,000 and more)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import quote

from hypothesis import strategies as st

from loadtests.target.client import TargetClient

# A schedule whose one drop is open for an hour: grabs win envelopes and cards, so ids that fuzzed
# bodies name sometimes exist and gifts and splits really happen.
FUZZ_CONFIG = ("seed: 5\ndrops: {first_at_s: 0, duration_s: 3600, interval_s: 3600, count: 1, pool_fen: 100000000}\n"
               "envelope_odds: 0.5\nmax_body_bytes: 8192\n")

# (method, path, body fields, query fields)
ENDPOINTS = [
    ("GET", "/healthz", (), ()), ("GET", "/metrics", (), ()), ("POST", "/users", ("name",), ()),
    ("GET", "/me", (), ()), ("POST", "/friends", ("friend_id",), ()), ("POST", "/grab", (), ()),
    ("GET", "/drop", (), ()), ("POST", "/share/card", ("card_id", "to"), ()),
    ("POST", "/share/split", ("envelope_id", "to", "amounts_fen"), ()), ("POST", "/chat/send", ("to", "text"), ()),
    ("GET", "/chat/inbox", (), ("since", "limit")), ("POST", "/admin/drop", ("pool_fen", "duration_s", "envelope_odds", "card_odds"), ()),
    ("POST", "/admin/draw", (), ()), ("GET", "/admin/audit", (), ()), ("GET", "/admin/cpu", (), ()),
    ("POST", "/nowhere", (), ()), ("GET", "/grab", (), ()),
]
UNICODE_DIGITS = ["²", "①", "٣", "１", "߁", "𝟘", "፩"]  # str.isdigit() says yes; int() says no (or a surprise)
HOSTILE_TEXT = ["\ud800", "a\udfffb", *UNICODE_DIGITS, "福", "", " ", "0", "-1", "1e3", "9" * 40, "\x00", "%00", "NaN"]

any_text = st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(st.characters(exclude_categories=()), max_size=12))
numbers = st.one_of(st.integers(-2, 12), st.integers(), st.floats(), st.sampled_from([2**53, 2**53 + 1, 10**13, 10**30, -0.0]))
scalars = st.one_of(numbers, st.booleans(), st.none(), any_text)
json_values = st.recursive(scalars, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                           st.dictionaries(any_text, kids, max_size=4)), max_leaves=12)
known_ids = st.sampled_from([0, 1, 2, 3])  # users 1 and 2 exist; envelopes and cards 0.. often do
field_values = {
    "to": st.one_of(known_ids, known_ids, st.lists(known_ids, min_size=1, max_size=4), numbers, json_values),
    "friend_id": st.one_of(known_ids, numbers, json_values),
    "card_id": st.one_of(known_ids, numbers, json_values), "envelope_id": st.one_of(known_ids, numbers, json_values),
    "amounts_fen": st.one_of(st.lists(st.integers(-5, 1000), max_size=6), json_values),
    "card_odds": st.one_of(st.dictionaries(st.sampled_from(["爱国", "敬业", "富强", "和谐", "友善", "x"]),
                                           st.one_of(st.floats(), st.integers(-1, 2)), max_size=5), json_values),
    "name": st.one_of(st.sampled_from(HOSTILE_TEXT), any_text, json_values),
    "text": st.one_of(st.sampled_from(HOSTILE_TEXT), any_text, json_values),
}


def _body(fields: tuple[str, ...]):
    typed = st.fixed_dictionaries({}, optional={f: field_values.get(f, st.one_of(numbers, json_values)) for f in fields})
    as_json = st.one_of(typed, json_values).map(lambda v: json.dumps(v).encode())
    raw = st.one_of(st.binary(max_size=48), st.integers(1, 3000).map(lambda n: b"[" * n),
                    st.integers(1, 1500).map(lambda n: b'{"a":' * n), st.just(b""), st.just(b"null"))
    return st.one_of(as_json, as_json, raw)


def _query(fields: tuple[str, ...]):
    if not fields:
        return st.just("")
    value = st.one_of(st.sampled_from(UNICODE_DIGITS), st.integers(-5, 2**60).map(str),
                      any_text, st.binary(max_size=6).map(lambda b: "".join(f"%{x:02X}" for x in b))
                      ).map(lambda v: v if v.startswith("%") else quote(v, safe="", errors="surrogatepass"))
    return st.dictionaries(st.sampled_from(fields), value, max_size=2).map(
        lambda q: ("?" + "&".join(f"{k}={v}" for k, v in q.items())) if q else "")


WHO = ["a", "b", "admin", "none", "forged"]
header_bytes = st.binary(max_size=24).filter(lambda b: not any(c in b for c in b"\r\n\x00"))


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    body: bytes | None
    who: str | bytes


def cases(endpoint: tuple | None = None):
    """Hostile bodies and queries for one endpoint (or any), from any caller (or a token of raw bytes)."""
    def for_endpoint(ep):
        method, path, fields, query = ep
        body = _body(fields) if method == "POST" else st.one_of(st.none(), st.none(), _body(()))
        who = st.one_of(st.sampled_from(WHO), st.sampled_from(WHO), st.sampled_from(WHO), header_bytes)
        return st.builds(Case, st.just(method), _query(query).map(lambda q: path + q), body, who)
    return for_endpoint(endpoint) if endpoint else st.sampled_from(ENDPOINTS).flatmap(for_endpoint)


@dataclass
class FuzzWorld:
    url: str
    admin: TargetClient
    tokens: dict[str, str | bytes | None]


def make_world(url: str, admin_token: str) -> FuzzWorld:
    """Users a and b, friends; a holds an envelope and a card when the dice allow."""
    admin = TargetClient(url, admin_token)
    (a_id, a), (b_id, b) = TargetClient(url).register("a"), TargetClient(url).register("b")
    a.call("POST", "/friends", {"friend_id": b_id})
    for _ in range(20):
        a.call("POST", "/grab", {})
    return FuzzWorld(url, admin, {"a": a.token, "b": b.token, "admin": admin_token, "none": None,
                                  "forged": f"{a_id}.not-the-secret"})


def audit(world: FuzzWorld) -> dict:
    status, report = world.admin.call("GET", "/admin/audit")
    assert status == 200, report
    return report


def _valid_unicode(value) -> bool:
    """No lone surrogate anywhere in a decoded JSON value (one would mean one was stored)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return True
        except UnicodeEncodeError:
            return False
    if isinstance(value, dict):
        return all(_valid_unicode(k) and _valid_unicode(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_valid_unicode(v) for v in value)
    return True


class Unclean(AssertionError):
    """A case the target did not answer cleanly (`status` is what it answered)."""

    def __init__(self, status: int, detail):
        super().__init__(detail)
        self.status = status


def _read_back(world: FuzzWorld, case: Case, reply: dict) -> tuple | None:
    """What a 2xx stored must render as valid Unicode: the new user's name, the chat message."""
    if case.path == "/users":
        shown = TargetClient(world.url, reply["token"]).call("GET", "/me")
    elif case.path == "/chat/send":
        shown = TargetClient(world.url, world.tokens["b"]).call("GET", f"/chat/inbox?since={reply['message_id'] - 1}")
    else:
        return None
    return None if shown[0] == 200 and _valid_unicode(shown[1]) else ("stored text renders badly", shown)


def send(world: FuzzWorld, case: Case, check_digest: bool = True) -> int:
    """Send one case; raise Unclean unless it was answered well and, when refused, changed nothing."""
    before = audit(world)["totals"]["state_digest"] if check_digest else None
    token = world.tokens[case.who] if isinstance(case.who, str) else case.who
    client = TargetClient(world.url, token)
    try:
        status, raw = client.raw(case.method, case.path, case.body)
    finally:
        client.close()
    if status >= 500:
        raise Unclean(status, (case, raw[:300]))
    if case.path.startswith("/metrics") and status == 200:
        if not raw.startswith(b"# HELP"):
            raise Unclean(status, (case, raw[:100]))
    else:
        try:
            reply = json.loads(raw)
        except ValueError:
            raise Unclean(status, ("not JSON", case, raw[:200])) from None
        if not isinstance(reply, dict) or not _valid_unicode(reply):
            raise Unclean(status, ("not a JSON object of valid Unicode", case, raw[:200]))
        if status >= 400 and not (isinstance(reply.get("error"), str) and reply["error"]):
            raise Unclean(status, ("a refusal without a reason", case, reply))
        if status < 400 and (bad := _read_back(world, case, reply)):
            raise Unclean(status, (*bad, case))
    after = audit(world)
    if not after["passed"]:
        raise Unclean(status, ("audit failed", case, [i for i in after["invariants"] if not i["passed"]]))
    if check_digest and status >= 400 and after["totals"]["state_digest"] != before:
        raise Unclean(status, ("a refusal changed state", case, raw[:200]))
    return status
