"""A serving process: bind, announce the URL on stdout's first line, serve until SIGTERM/SIGINT.

One process with the in-memory store is the default (`run`). With `--store`, `supervisor.py`
forks N workers that each call `serve` on the listening socket it bound, over a `RedisStore`.
Uses uvloop when it is installed (a measured gain; see benchmarks/target.py), else asyncio's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys

from aiohttp import web

from gala.contract.errors import InputError

from .app import LINK_CPU, make_app
from .config import LinkFaults, TargetConfig
from .guard import ConnectionGuard, connection_cap, protocol_factory
from .store import Store, StoreUnavailable

PUBLISH_EVERY_S = 1.0  # how often a worker shares its CPU report through the store


def bind(host: str, port: int) -> socket.socket:
    """Bind the listening socket ourselves so that `--port 0` can report the port it got."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise InputError(f"--host {host!r}: cannot resolve ({exc.strerror})") from None
    family, type_, proto, _, addr = infos[0]
    sock = socket.socket(family, type_, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        raise InputError(f"--port {port}: cannot listen on {host}:{port} ({exc.strerror})") from None
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def url_of(host: str, sock: socket.socket) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{sock.getsockname()[1]}"


async def _publish_cpu(app: web.Application, store: Store) -> None:
    while True:
        await asyncio.sleep(PUBLISH_EVERY_S)
        with contextlib.suppress(StoreUnavailable):
            await store.publish_cpu(os.getpid(), app[LINK_CPU].report())


async def serve(sock: socket.socket, store: Store, admin_token: str, faults: dict[str, LinkFaults],
                announce: list[str], link_cpu: bool = True, ready=None) -> None:
    """Serve `sock` until SIGTERM/SIGINT; `ready()` is called once requests can be answered."""
    await store.start()
    cfg = store.config
    app = make_app(store, admin_token, faults, link_cpu)
    # No access log: it would cost more than the handlers. The keep-alive timer doubles as the
    # header timeout (guard.py); a short linger bounds an unread body after the answer.
    handler_kwargs = {"access_log": None, "keepalive_timeout": cfg.idle_timeout_s, "lingering_time": 2.0}
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0, **handler_kwargs)
    await runner.setup()
    loop = asyncio.get_running_loop()
    guard = ConnectionGuard(connection_cap(cfg.max_connections, getattr(store, "max_connections", 0)))
    factory = protocol_factory(runner, guard, loop, handler_kwargs, app[LINK_CPU])
    server = await loop.create_server(factory, sock=sock, backlog=1024)
    for line in announce:
        print(line, flush=True)
    if ready is not None:
        ready()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    publisher = asyncio.create_task(_publish_cpu(app, store)) if store.kind != "memory" else None
    # the core's speed through the run, for the plan (speedtrack.py); only where CPU is attributed
    sampler = asyncio.create_task(app[LINK_CPU].speed.run()) if link_cpu else None
    await stop.wait()
    for task in (publisher, sampler):
        if task is not None:
            task.cancel()
    server.close()
    await runner.cleanup()
    await store.close()


def event_loop_runner():
    try:
        import uvloop  # optional speed-up

        return uvloop.run
    except ImportError:
        return asyncio.run


def run(host: str, port: int, config: TargetConfig, admin_token: str, token_printed: bool,
        faults: dict[str, LinkFaults], fault_specs: list[str], link_cpu: bool = True) -> int:
    """One process, in-memory state: serve until a signal; returns the process exit code."""
    from .memory import MemoryStore

    sock = bind(host, port)
    announce = [f"serving on {url_of(host, sock)}"]
    if token_printed:
        announce.append(f"admin token: {admin_token}")
    if fault_specs:
        announce.append(f"injected faults: {' '.join(fault_specs)}")
    event_loop_runner()(serve(sock, MemoryStore(config), admin_token, faults, announce, link_cpu))
    print("target stopped", file=sys.stderr, flush=True)
    return 0
