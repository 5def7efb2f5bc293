"""The target's HTTP layer (aiohttp): routes, request validation, fault injection and metrics.

Handlers only parse and validate (awaiting the body is the one await) and then call one
synchronous `State` method: no await sits inside a critical section, so concurrent requests on
this single-threaded event loop cannot interleave a mutation.
"""

from __future__ import annotations

import hmac
import json
import logging
import random
import time

from aiohttp import web

from .audit import audit
from .config import CARD_KINDS, LinkFaults, TargetConfig
from .faults import apply as apply_fault
from .metrics import Metrics
from .state import Rejected, State, User

log = logging.getLogger("gala.target")
MAX_ID = 2**53
MAX_POOL_FEN = 10**13
MAX_NAME_CHARS = 64
_MISSING = object()

STATE: web.AppKey[State] = web.AppKey("state", State)
METRICS: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)
ADMIN_TOKEN: web.AppKey[str] = web.AppKey("admin_token", str)


def reply(data: dict, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(data, ensure_ascii=False).encode(), status=status,
                        content_type="application/json", charset="utf-8")


def error(status: int, message: str, field: str | None = None) -> web.Response:
    return reply({"error": message, "field": field}, status)


# ---- request parsing (all checks raise Rejected before any state is touched) ---------------
async def body_of(request: web.Request) -> dict:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise Rejected(413, f"body larger than {request.app[STATE].config.max_body_bytes} bytes", "body") from None
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Rejected(400, "malformed JSON", "body") from None
    if not isinstance(data, dict):
        raise Rejected(400, "body must be a JSON object", "body")
    return data


def _present(data: dict, name: str, default):
    """The field's value, or `default` when absent (absent and no default: 400 missing field)."""
    v = data.get(name, _MISSING)
    if v is _MISSING and default is _MISSING:
        raise Rejected(400, "missing field", name)
    return v


def int_field(data: dict, name: str, lo: int, hi: int, default=_MISSING) -> int:
    v = _present(data, name, default)
    if v is _MISSING:
        return default
    if type(v) is not int:  # rejects floats, strings and bools (bool is an int subclass)
        raise Rejected(400, f"expected a whole number, got {type(v).__name__}", name)
    if not lo <= v <= hi:
        raise Rejected(400, f"must be within {lo}..{hi}", name)
    return v


def number_field(data: dict, name: str, lo: float, hi: float, default=_MISSING) -> float:
    v = _present(data, name, default)
    if v is _MISSING:
        return default
    if type(v) not in (int, float) or not lo <= v <= hi:
        raise Rejected(400, f"expected a number within {lo}..{hi}", name)
    return float(v)


def int_list(data: dict, name: str, lo: int, hi: int, max_len: int) -> list[int]:
    v = _present(data, name, _MISSING)
    if not isinstance(v, list) or not 1 <= len(v) <= max_len:
        raise Rejected(400, f"expected a list of 1..{max_len} whole numbers", name)
    if any(type(x) is not int or not lo <= x <= hi for x in v):
        raise Rejected(400, f"every item must be a whole number within {lo}..{hi}", name)
    return v


def bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Rejected(401, "missing bearer token", "Authorization")
    return token.strip()


def user_of(request: web.Request) -> User:
    return request.app[STATE].authenticate(bearer(request))


def require_admin(request: web.Request) -> None:
    if not hmac.compare_digest(bearer(request).encode("utf-8", "surrogateescape"), request.app[ADMIN_TOKEN].encode()):
        raise Rejected(401, "invalid admin token", "Authorization")


# ---- handlers --------------------------------------------------------------------------------
async def healthz(request: web.Request) -> web.Response:
    return reply({"ok": True})


async def create_user(request: web.Request) -> web.Response:
    data = await body_of(request)
    name = _present(data, "name", _MISSING)
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME_CHARS:
        raise Rejected(400, f"expected a string of 1..{MAX_NAME_CHARS} characters", "name")
    uid, token = request.app[STATE].add_user(name)
    return reply({"user_id": uid, "token": token}, 201)


async def me(request: web.Request) -> web.Response:
    return reply(request.app[STATE].me_view(user_of(request)))


async def add_friend(request: web.Request) -> web.Response:
    user = user_of(request)
    data = await body_of(request)
    request.app[STATE].add_friend(user, int_field(data, "friend_id", 1, MAX_ID))
    return reply({"ok": True})


async def grab(request: web.Request) -> web.Response:
    user = user_of(request)
    await body_of(request)  # any body must still be well-formed JSON
    return reply(request.app[STATE].grab(user))


async def drop_status(request: web.Request) -> web.Response:
    return reply(request.app[STATE].drop_status())


async def share_card(request: web.Request) -> web.Response:
    user = user_of(request)
    data = await body_of(request)
    card_id, to = int_field(data, "card_id", 0, MAX_ID), int_field(data, "to", 1, MAX_ID)
    request.app[STATE].give_card(user, card_id, to)
    return reply({"ok": True, "card_id": card_id, "to": to})


async def share_split(request: web.Request) -> web.Response:
    user = user_of(request)
    data = await body_of(request)
    state = request.app[STATE]
    envelope_id = int_field(data, "envelope_id", 0, MAX_ID)
    to = int_list(data, "to", 1, MAX_ID, state.config.max_split_ways)
    amounts = None
    if data.get("amounts_fen") is not None:
        amounts = int_list(data, "amounts_fen", 1, MAX_POOL_FEN, state.config.max_split_ways)
    children = state.split_envelope(user, envelope_id, to, amounts)
    return reply({"ok": True, "envelopes": [
        {"envelope_id": c.id, "owner": c.owner, "amount_fen": c.amount_fen} for c in children]})


async def chat_send(request: web.Request) -> web.Response:
    user = user_of(request)
    data = await body_of(request)
    state = request.app[STATE]
    to = int_field(data, "to", 1, MAX_ID)
    text = _present(data, "text", _MISSING)
    if not isinstance(text, str) or not 1 <= len(text) <= state.config.max_chat_chars:
        raise Rejected(400, f"expected a string of 1..{state.config.max_chat_chars} characters", "text")
    return reply({"ok": True, "message_id": state.send_message(user, to, text)})


def _query_int(request: web.Request, name: str, lo: int, hi: int, default: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or len(raw) > 16 or not lo <= int(raw) <= hi:
        raise Rejected(400, f"expected a whole number within {lo}..{hi}", name)
    return int(raw)


async def chat_inbox(request: web.Request) -> web.Response:
    user = user_of(request)
    state = request.app[STATE]
    since = _query_int(request, "since", 0, MAX_ID, 0)
    limit = _query_int(request, "limit", 1, state.config.max_inbox_limit, 100)
    page, cursor = state.inbox(user, since, limit)
    return reply({"messages": [{"message_id": m.message_id, "from": m.sender, "text": m.text, "at": m.at}
                               for m in page], "cursor": cursor})


async def admin_drop(request: web.Request) -> web.Response:
    require_admin(request)
    data = await body_of(request)
    pool = int_field(data, "pool_fen", 0, MAX_POOL_FEN)
    duration = number_field(data, "duration_s", 0.001, 86_400)
    odds = number_field(data, "envelope_odds", 0, 1, None)
    card_odds = data.get("card_odds")
    if card_odds is not None:
        if not isinstance(card_odds, dict) or any(k not in CARD_KINDS for k in card_odds):
            raise Rejected(400, f"expected a mapping from card kinds {', '.join(CARD_KINDS)} to odds", "card_odds")
        card_odds = {k: number_field(card_odds, k, 0, 1) for k in card_odds}
    drop = request.app[STATE].admin_open_drop(pool, duration, odds, card_odds)
    return reply({"ok": True, "drop_id": drop.id, "pool_fen": drop.pool_fen,
                  "closes_in_s": round(drop.closes_at - drop.opens_at, 3)})


async def admin_draw(request: web.Request) -> web.Response:
    require_admin(request)
    await body_of(request)
    draw = request.app[STATE].make_draw()
    return reply({"winners": len(draw.winners), "winner_ids": draw.winners, "share_fen": draw.share_fen,
                  "remainder_fen": draw.remainder_fen, "pool_fen": draw.pool_fen})


async def admin_audit(request: web.Request) -> web.Response:
    require_admin(request)
    return reply(audit(request.app[STATE]))


async def metrics(request: web.Request) -> web.Response:
    state = request.app[STATE]
    drop = state.open_drop()
    gauges = {"gala_target_users": len(state.users) - 1, "gala_target_envelopes": len(state.envelopes),
              "gala_target_messages": state.messages, "gala_target_drop_open": int(drop is not None),
              "gala_target_drop_pool_left_fen": drop.pool_left_fen if drop else 0}
    return web.Response(text=request.app[METRICS].render(gauges), content_type="text/plain", charset="utf-8")


# (method, path, handler, link): the link is the `link` label in /metrics and the --inject name.
ROUTES = [
    ("GET", "/healthz", healthz, "none"),
    ("GET", "/metrics", metrics, "none"),
    ("POST", "/users", create_user, "setup"),
    ("GET", "/me", me, "setup"),
    ("POST", "/friends", add_friend, "setup"),
    ("POST", "/grab", grab, "grab"),
    ("GET", "/drop", drop_status, "grab"),
    ("POST", "/share/card", share_card, "share"),
    ("POST", "/share/split", share_split, "share"),
    ("POST", "/chat/send", chat_send, "chat"),
    ("GET", "/chat/inbox", chat_inbox, "chat"),
    ("POST", "/admin/drop", admin_drop, "admin"),
    ("POST", "/admin/draw", admin_draw, "admin"),
    ("GET", "/admin/audit", admin_audit, "admin"),
]


def make_middleware(links: dict, faults: dict[str, LinkFaults], metrics: Metrics, rng: random.Random):
    @web.middleware
    async def middleware(request: web.Request, handler) -> web.StreamResponse:
        started = time.perf_counter()
        link = links.get(handler, "none")
        try:
            fault = faults.get(link)
            reason = await apply_fault(fault, rng) if fault is not None else None
            if reason is not None:
                response = reply({"error": reason, "field": None, "link": link}, 503)
            else:
                response = await handler(request)
        except Rejected as r:
            response = error(r.status, r.error, r.field)
        except web.HTTPException as exc:  # unknown path (404), wrong method (405), too large (413)
            response = error(exc.status, exc.reason.lower(), "path" if exc.status in (404, 405) else None)
        except Exception:  # a bug: say so in JSON like every other answer, and leave the traceback in the log
            log.exception("unhandled error on %s %s", request.method, request.path)
            response = error(500, "internal error")
        metrics.observe(link, response.status, time.perf_counter() - started)
        return response

    return middleware


def make_app(config: TargetConfig, admin_token: str, faults: dict[str, LinkFaults] | None = None) -> web.Application:
    """Build the aiohttp application around a fresh State."""
    state, metrics_ = State(config), Metrics()
    links = {handler: link for _, _, handler, link in ROUTES}
    # The fault dice use their own generator so injected errors do not shift the game's draws.
    mw = make_middleware(links, faults or {}, metrics_, random.Random())
    app = web.Application(middlewares=[mw], client_max_size=config.max_body_bytes)
    app[STATE], app[METRICS], app[ADMIN_TOKEN] = state, metrics_, admin_token
    for method, path, handler, _ in ROUTES:
        app.router.add_route(method, path, handler)
    return app
