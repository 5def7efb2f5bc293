"""Connections: JSON answers for HTTP the parser refuses, and a cap that half-sent requests cannot exhaust.

aiohttp answers a request its parser refuses (a bad request line, an oversized header) itself, as
text, before any middleware runs: `JsonRequestHandler` answers those in JSON like every other
reply. Slowloris: aiohttp's keep-alive timer runs from a connection's opening and from each answer,
and closes a connection still waiting for a whole request, so `idle_timeout_s` bounds both idle and
half-sent headers; the handler bounds the body (`body_timeout_s`, app.py). `ConnectionGuard` keeps
at most `max_connections` open (and fewer than the process's open-file limit): at the cap a new
connection closes the oldest one that is not inside a handler, so `/healthz` stays answerable.
It also tells `linkcpu.LinkCpu` each request's whole path (parsing, the connection's task, the
request's task), so the target charges every link what its requests cost, not only their handlers.
This subclasses aiohttp's RequestHandler, `_handle_request` included (pyproject pins aiohttp below 4
for it; tests/test_target_cpu.py fails if the path is no longer seen).
"""

from __future__ import annotations

import json
import resource
import time
from collections import OrderedDict

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from .linkcpu import LinkCpu

FD_RESERVE = 64  # files, the Redis pool's sockets and the listening socket beside the connections


def connection_cap(configured: int, redis_connections: int = 0) -> int:
    """The configured cap, held below the open-file limit so accept() never fails with EMFILE."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    return max(8, min(configured, soft - FD_RESERVE - redis_connections))


class ConnectionGuard:
    """Open connections, oldest activity first; `busy` marks those inside a handler."""

    def __init__(self, cap: int):
        self.cap = cap
        self.open: OrderedDict[RequestHandler, int] = OrderedDict()  # handler -> requests in progress
        self.evicted = 0

    def opened(self, conn: RequestHandler) -> None:
        self.open[conn] = 0
        if len(self.open) > self.cap:
            victim = next((c for c, busy in self.open.items() if not busy and c is not conn), None)
            if victim is not None:
                self.evicted += 1
                self.open.pop(victim, None)
                victim.force_close()

    def closed(self, conn: RequestHandler) -> None:
        self.open.pop(conn, None)

    def busy(self, conn, delta: int) -> None:
        if conn in self.open:
            self.open[conn] += delta
            if delta < 0:
                self.open.move_to_end(conn)  # just answered: the most recently active


class JsonRequestHandler(RequestHandler):
    """aiohttp's connection handler, with parser errors answered in JSON and the guard told of each connection."""

    __slots__ = ("_gala_guard", "_gala_cpu", "_gala_pending_s")

    def __init__(self, manager: web.Server, guard: ConnectionGuard, link_cpu: LinkCpu | None = None, **kwargs):
        super().__init__(manager, **kwargs)
        self._gala_guard = guard
        self._gala_cpu = link_cpu if link_cpu is not None and link_cpu.enabled else None
        self._gala_pending_s = 0.0  # CPU spent on the next request before its task runs (parsing, building)

    def data_received(self, data: bytes) -> None:
        if self._gala_cpu is None:
            return super().data_received(data)
        t0 = time.thread_time()
        super().data_received(data)
        self._gala_pending_s += time.thread_time() - t0

    async def start(self) -> None:
        if self._gala_cpu is None:
            return await super().start()
        return await self._gala_cpu.conn_step(self, super().start())

    async def _handle_request(self, request, *args):
        if self._gala_cpu is None:
            return await super()._handle_request(request, *args)
        return await self._gala_cpu.path(self, request, super()._handle_request(request, *args))

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._gala_guard.opened(self)

    def connection_lost(self, exc) -> None:
        self._gala_guard.closed(self)
        super().connection_lost(exc)

    def handle_error(self, request, status: int = 500, exc=None, message=None) -> web.StreamResponse:
        if request.writer.output_size > 0:  # an answer is already on the wire: nothing more can be said
            raise ConnectionError("response already sent")
        reason = "internal error" if status >= 500 else f"bad HTTP request: {(message or 'malformed')[:200]}"
        body = json.dumps({"error": reason, "field": None}).encode()
        resp = web.Response(body=body, status=status, content_type="application/json", charset="utf-8")
        resp.force_close()
        return resp


def protocol_factory(runner: web.AppRunner, guard: ConnectionGuard, loop, handler_kwargs: dict,
                     link_cpu: LinkCpu | None = None):
    """What `loop.create_server` calls per connection, in place of aiohttp's own Server."""
    server = runner.server
    return lambda: JsonRequestHandler(server, guard, link_cpu, loop=loop, **handler_kwargs)
