"""A target of known cost, to check the capacity model against a truth set from outside.

A thread-per-request HTTP server on 127.0.0.1 where each path burns a set CPU time per request
(`--cost /grab=1.0` is 1.0 CPU-ms), measured on the handling thread's own CPU clock so the burn is
CPU, not wall time. With `--growth G` the burn grows with the requests in flight, as a service
with locks or coherency costs does: cost = base × (1 + G × (in_flight − 1)).

Runs as a program (tests and benchmarks start it with `started()`, as a subprocess whose pid they sample):
    python benchmarks/costed_target.py --port 0 --cost /grab=1.0 --cost /share=2.5 [--growth 0.05]
It prints `serving on http://127.0.0.1:PORT` once listening. Any other path answers 404; every
reply is a small JSON body.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def burn(cpu_s: float) -> None:
    """Spin until this thread has used `cpu_s` of CPU (waiting for the GIL does not count)."""
    end = time.thread_time() + cpu_s
    while time.thread_time() < end:
        pass


class _InFlight:
    """The number of requests being handled now."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.n = 0

    def __enter__(self) -> int:
        with self.lock:
            self.n += 1
            return self.n

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.n -= 1


def make_handler(costs_ms: dict[str, float], growth: float) -> type[BaseHTTPRequestHandler]:
    in_flight = _InFlight()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as Locust's clients use it

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(min(length, 1 << 16))
            path = self.path.split("?", 1)[0]
            cost = costs_ms.get(path)
            if cost is None:
                status, body = 404, {"error": f"no such path {path}"}
            else:
                with in_flight as n:
                    burn(cost / 1000.0 * (1.0 + growth * (n - 1)))
                status, body = 200, {"ok": True}
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:  # quiet: a log line per request costs CPU
            pass

    return Handler


class QuietServer(ThreadingHTTPServer):
    """A client that hangs up mid-reply (Locust stopping with requests in flight) is no error worth
    a traceback: a test reading only the first line of the output must never fill its pipe."""

    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def scenario_yaml(phases: list[tuple[str, float, int]], *, rate_per_s: float = 2.0, seed: int = 11) -> str:
    """A scenario for this target: one critical link `grab` (POST /grab), Poisson-paced declarative users at
    `rate_per_s` each, and `phases` as (name, seconds, users); its target URL is replaced by --host."""
    rows = "\n".join(f"  - {{name: {n}, duration_s: {d:g}, users: {{Grabber: {u}}}, spawn_rate: {max(u, 20)}}}"
                     for n, d, u in phases)
    return (f"name: costed\nseed: {seed}\ntarget: {{url: \"http://127.0.0.1:1\"}}\nlinks:\n  grab: {{critical: true}}\n"
            f"users:\n  Grabber:\n    rate_per_s: {rate_per_s}\n    pacing: poisson\n    requests:\n"
            f"      - {{method: POST, path: /grab, link: grab}}\nphases:\n{rows}\n")


@contextmanager
def started(costs_ms: dict[str, float], growth: float = 0.0, timeout_s: float = 30.0):
    """This target as a process on a free loopback port: yields (url, pid); killed afterwards."""
    argv = [sys.executable, __file__, "--port", "0", "--growth", str(growth)]
    for path, ms in costs_ms.items():
        argv += ["--cost", f"{path}={ms}"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        deadline, line = time.monotonic() + timeout_s, ""
        while time.monotonic() < deadline and "http://" not in line:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
        if "http://" not in line:
            raise RuntimeError(f"the costed target did not start: {line!r}")
        yield line.split()[-1], proc.pid
    finally:
        proc.kill()
        proc.wait(timeout=10)


def parse_cost(text: str) -> tuple[str, float]:
    path, _, ms = text.partition("=")
    try:
        value = float(ms)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--cost {text!r}: expected PATH=CPU_MS, for example /grab=1.0") from None
    if not path.startswith("/") or not 0 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"--cost {text!r}: expected PATH=CPU_MS with a path from / and 0..1000 ms")
    return path, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free one)")
    parser.add_argument("--cost", type=parse_cost, action="append", required=True, metavar="PATH=CPU_MS",
                        help="CPU-ms one request to PATH burns (repeat per path)")
    parser.add_argument("--growth", type=float, default=0.0,
                        help="extra cost per other request in flight, as a fraction of the base (default 0)")
    args = parser.parse_args(argv)
    if not 0 <= args.growth <= 10:
        parser.error("--growth: expected 0..10")
    server = QuietServer(("127.0.0.1", args.port), make_handler(dict(args.cost), args.growth))
    print(f"serving on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
