"""The target's HTTP layer (aiohttp): routes, request validation, fault injection, metrics, CPU per link.

Written once for both stores: handlers parse and validate, then make one call on the `Store`
(store.py), which does the whole state change or none of it. Every answer is JSON, errors
included (`{"error", "field"}`): 4xx for a refused request, 503 when the store is unreachable.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import random
import time

from aiohttp import web

from .audit import audit
from .config import CARD_KINDS, LinkFaults, TargetConfig
from .faults import apply as apply_fault
from .linkcpu import LINK_KEY, LinkCpu
from .metrics import Metrics
from .store import Rejected, Store, StoreUnavailable

log = logging.getLogger("gala.target")
MAX_ID = 2**53
MAX_POOL_FEN = 10**13
MAX_NAME_CHARS = 64
_MISSING = object()

STORE: web.AppKey[Store] = web.AppKey("store", Store)
METRICS: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)
LINK_CPU: web.AppKey[LinkCpu] = web.AppKey("link_cpu", LinkCpu)
ADMIN_TOKEN: web.AppKey[str] = web.AppKey("admin_token", str)


def reply(data: dict, status: int = 200) -> web.Response:
    try:
        body = json.dumps(data, ensure_ascii=False).encode()
    except UnicodeEncodeError:  # a stray lone surrogate: ASCII escapes keep the answer valid JSON
        body = json.dumps(data).encode()
    return web.Response(body=body, status=status, content_type="application/json", charset="utf-8")


def error(status: int, message: str, field: str | None = None) -> web.Response:
    return reply({"error": message, "field": field}, status)


# ---- request parsing (all checks raise Rejected before any state is touched) ---------------
async def body_of(request: web.Request) -> dict:
    config = request.app[STORE].config
    try:
        async with asyncio.timeout(config.body_timeout_s):
            raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise Rejected(413, f"body larger than {config.max_body_bytes} bytes", "body") from None
    except TimeoutError:
        raise Rejected(408, f"body not received within {config.body_timeout_s:g} s", "body") from None
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Rejected(400, "malformed JSON", "body") from None
    except RecursionError:
        raise Rejected(400, "JSON nested too deeply", "body") from None
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


def text_field(data: dict, name: str, max_chars: int) -> str:
    v = _present(data, name, _MISSING)
    if not isinstance(v, str) or not 1 <= len(v) <= max_chars:
        raise Rejected(400, f"expected a string of 1..{max_chars} characters", name)
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:  # JSON allows "\ud800"; UTF-8 cannot hold it, so it is never stored
        raise Rejected(400, "not valid Unicode (a lone surrogate such as \\ud800)", name) from None
    return v


def int_list(data: dict, name: str, lo: int, hi: int, max_len: int) -> list[int]:
    v = _present(data, name, _MISSING)
    if not isinstance(v, list) or not 1 <= len(v) <= max_len:
        raise Rejected(400, f"expected a list of 1..{max_len} whole numbers", name)
    if any(type(x) is not int or not lo <= x <= hi for x in v):
        raise Rejected(400, f"every item must be a whole number within {lo}..{hi}", name)
    return v


def query_int(request: web.Request, name: str, lo: int, hi: int, default: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    # ASCII digits only: str.isdigit() also accepts "²" and "①", which int() refuses
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 16 or not lo <= int(raw) <= hi:
        raise Rejected(400, f"expected a whole number within {lo}..{hi}", name)
    return int(raw)


def bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Rejected(401, "missing bearer token", "Authorization")
    return token.strip()


async def user_of(request: web.Request) -> int:
    return await request.app[STORE].authenticate(bearer(request))


def require_admin(request: web.Request) -> None:
    if not hmac.compare_digest(bearer(request).encode("utf-8", "surrogateescape"), request.app[ADMIN_TOKEN].encode()):
        raise Rejected(401, "invalid admin token", "Authorization")


# ---- handlers --------------------------------------------------------------------------------
async def healthz(request: web.Request) -> web.Response:
    return reply({"ok": True})


async def create_user(request: web.Request) -> web.Response:
    data = await body_of(request)
    name = text_field(data, "name", MAX_NAME_CHARS)
    uid, token = await request.app[STORE].add_user(name)
    return reply({"user_id": uid, "token": token}, 201)


async def me(request: web.Request) -> web.Response:
    return reply(await request.app[STORE].me_view(await user_of(request)))


async def add_friend(request: web.Request) -> web.Response:
    uid = await user_of(request)
    data = await body_of(request)
    await request.app[STORE].add_friend(uid, int_field(data, "friend_id", 1, MAX_ID))
    return reply({"ok": True})


async def grab(request: web.Request) -> web.Response:
    uid = await user_of(request)
    await body_of(request)  # any body must still be well-formed JSON
    return reply(await request.app[STORE].grab(uid))


async def drop_status(request: web.Request) -> web.Response:
    return reply(await request.app[STORE].drop_status())


async def share_card(request: web.Request) -> web.Response:
    uid = await user_of(request)
    data = await body_of(request)
    card_id, to = int_field(data, "card_id", 0, MAX_ID), int_field(data, "to", 1, MAX_ID)
    await request.app[STORE].give_card(uid, card_id, to)
    return reply({"ok": True, "card_id": card_id, "to": to})


async def share_split(request: web.Request) -> web.Response:
    uid = await user_of(request)
    data = await body_of(request)
    store = request.app[STORE]
    envelope_id = int_field(data, "envelope_id", 0, MAX_ID)
    to = int_list(data, "to", 1, MAX_ID, store.config.max_split_ways)
    amounts = None
    if data.get("amounts_fen") is not None:
        amounts = int_list(data, "amounts_fen", 1, MAX_POOL_FEN, store.config.max_split_ways)
    children = await store.split_envelope(uid, envelope_id, to, amounts)
    return reply({"ok": True, "envelopes": children})


async def chat_send(request: web.Request) -> web.Response:
    uid = await user_of(request)
    data = await body_of(request)
    store = request.app[STORE]
    to = int_field(data, "to", 1, MAX_ID)
    text = text_field(data, "text", store.config.max_chat_chars)
    return reply({"ok": True, "message_id": await store.send_message(uid, to, text)})


async def chat_inbox(request: web.Request) -> web.Response:
    uid = await user_of(request)
    store = request.app[STORE]
    since = query_int(request, "since", 0, MAX_ID, 0)
    limit = query_int(request, "limit", 1, store.config.max_inbox_limit, 100)
    page, cursor = await store.inbox(uid, since, limit)
    return reply({"messages": page, "cursor": cursor})


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
    drop = await request.app[STORE].admin_open_drop(pool, duration, odds, card_odds)
    return reply({"ok": True, **drop})


async def admin_draw(request: web.Request) -> web.Response:
    require_admin(request)
    await body_of(request)
    return reply(await request.app[STORE].make_draw())


async def admin_audit(request: web.Request) -> web.Response:
    require_admin(request)
    return reply(audit(await request.app[STORE].snapshot()))


async def admin_cpu(request: web.Request) -> web.Response:
    """This process's CPU per link, and every process's last published report (store.publish_cpu)."""
    require_admin(request)
    store, own = request.app[STORE], request.app[LINK_CPU].report()
    await store.publish_cpu(os.getpid(), own)
    everyone = await store.cpu_reports() or {os.getpid(): own}
    return reply({**own, "processes": {str(pid): r for pid, r in sorted(everyone.items())}})


async def metrics(request: web.Request) -> web.Response:
    store = request.app[STORE]
    counts, drop = await store.counts(), await store.drop_status()  # reads only: a scrape changes nothing
    gauges = {"gala_target_users": counts["users"], "gala_target_envelopes": counts["envelopes"],
              "gala_target_messages": counts["messages"], "gala_target_drop_open": int(drop["open"]),
              "gala_target_drop_pool_left_fen": drop["pool_left_fen"] or 0}
    text = request.app[METRICS].render(gauges, request.app[LINK_CPU].render())
    return web.Response(text=text, content_type="text/plain", charset="utf-8")


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
    ("GET", "/admin/cpu", admin_cpu, "admin"),
]


def make_middleware(links: dict, faults: dict[str, LinkFaults], metrics: Metrics, link_cpu: LinkCpu, rng: random.Random):
    @web.middleware
    async def middleware(request: web.Request, handler) -> web.StreamResponse:
        started = time.perf_counter()
        link = links.get(handler, "none")
        request[LINK_KEY] = link  # the request's whole path is charged to it (linkcpu.LinkCpu.path)
        guard = getattr(request.protocol, "_gala_guard", None)
        if guard is not None:
            guard.busy(request.protocol, +1)
        try:
            fault = faults.get(link)
            reason = await apply_fault(fault, rng) if fault is not None else None
            if reason is not None:
                response = reply({"error": reason, "field": None, "link": link}, 503)
            else:
                response = await link_cpu.timed(link, handler(request))
        except Rejected as r:
            response = error(r.status, r.error, r.field)
            if r.status == 408:
                response.force_close()  # the rest of the body may never come
        except StoreUnavailable as exc:
            response = error(503, str(exc))
        except web.HTTPException as exc:  # unknown path (404), wrong method (405), too large (413)
            response = error(exc.status, exc.reason.lower(), "path" if exc.status in (404, 405) else None)
        except Exception:  # a bug: say so in JSON like every other answer, and leave the traceback in the log
            log.exception("unhandled error on %s %s", request.method, request.path)
            response = error(500, "internal error")
        finally:
            if guard is not None:
                guard.busy(request.protocol, -1)
        metrics.observe(link, response.status, time.perf_counter() - started)
        return response

    return middleware


def make_app(store: Store, admin_token: str, faults: dict[str, LinkFaults] | None = None,
             link_cpu: bool = True) -> web.Application:
    """Build the aiohttp application around a store (not yet started: the server starts it)."""
    metrics_, cpu = Metrics(), LinkCpu(link_cpu)
    links = {handler: link for _, _, handler, link in ROUTES}
    # The fault dice use their own generator so injected errors do not shift the game's draws.
    mw = make_middleware(links, faults or {}, metrics_, cpu, random.Random())
    app = web.Application(middlewares=[mw], client_max_size=store.config.max_body_bytes)
    app[STORE], app[METRICS], app[LINK_CPU], app[ADMIN_TOKEN] = store, metrics_, cpu, admin_token
    for method, path, handler, _ in ROUTES:
        app.router.add_route(method, path, handler)
    return app


def memory_app(config: TargetConfig, admin_token: str, faults: dict[str, LinkFaults] | None = None) -> web.Application:
    """The default: one process, in-memory state."""
    from .memory import MemoryStore

    return make_app(MemoryStore(config), admin_token, faults)
