"""The target process: bind, announce the URL on stdout's first line, serve until SIGTERM/SIGINT.

Uses uvloop when it is installed (a measured gain; see benchmarks/target.py), else asyncio's loop.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys

from aiohttp import web

from gala.contract.errors import InputError

from .app import make_app
from .config import LinkFaults, TargetConfig


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


async def serve(sock: socket.socket, config: TargetConfig, admin_token: str, faults: dict[str, LinkFaults],
                announce: list[str]) -> None:
    app = make_app(config, admin_token, faults)
    # No access log: it would cost more than the handlers. Short shutdown: stalled requests must not delay exit.
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    await web.SockSite(runner, sock, shutdown_timeout=1.0, backlog=1024).start()
    for line in announce:
        print(line, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def run(host: str, port: int, config: TargetConfig, admin_token: str, token_printed: bool,
        faults: dict[str, LinkFaults], fault_specs: list[str]) -> int:
    """Serve until a signal; returns the process exit code."""
    sock = bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    announce = [f"serving on http://{shown}:{sock.getsockname()[1]}"]
    if token_printed:
        announce.append(f"admin token: {admin_token}")
    if fault_specs:
        announce.append(f"injected faults: {' '.join(fault_specs)}")
    try:
        import uvloop  # optional speed-up
        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    runner(serve(sock, config, admin_token, faults, announce))
    print("target stopped", file=sys.stderr, flush=True)
    return 0
