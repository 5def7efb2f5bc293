"""Benchmark (not a test): what gala's load generator costs and how evenly it spreads requests.

Three real headless Locust runs against the same trivial loopback endpoint (a raw asyncio server in its own
process, answering after a known latency; `--pin` puts it and Locust on different cores):

- `bare`: 2,000 plain FastHttpUsers with `constant_throughput(1)` (what the issue measured);
- `bare-spread`: the same with a random `between(0, 2)` wait (same mean rate, not synchronized);
- `gala`: 2,000 of gala's `GrabUser`s at 1 tap/s with gala's pacing and stats plugin (loadtests/locustfile.py).

For each, over the steady window after the ramp: generator CPU-seconds per request (psutil on the Locust
process; goal: gala <= 1.1x bare), the coefficient of variation of requests per 100 ms bin as the server
saw them (0 = perfectly even), and the latency the generator adds at p99 (the p99 of taps started in
the steady window minus the server's fixed latency; goal <= 10 ms). The figures are noisy on a shared machine: run it alone.

    python benchmarks/generator.py [--users 2000] [--seconds 25] [--latency-ms 20] [--repeat 1] [--pin]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from loadtests.orchestrator.generator import LOCUSTFILE, locust_argv  # noqa: E402

BARE_LOCUSTFILE = """
from locust import FastHttpUser, between, constant_throughput, task

class Bare(FastHttpUser):
    wait_time = {wait}

    @task
    def tap(self):
        self.client.post("/grab", json={{}}, name="grab:tap")
"""
# Loaded next to either locustfile (`-f a.py,b.py`): records the latency of every tap started in the
# steady window, so all three runs are measured the same way, and the ramp's spawning does not count.
WINDOW_PLUGIN = """
import json, os
from locust import events

W0, W1, OUT = float(os.environ["BENCH_W0"]), float(os.environ["BENCH_W1"]), os.environ["BENCH_OUT"]
latencies_ms = []

@events.request.add_listener
def _request(name="", response_time=0.0, start_time=None, **_kw):
    if name == "grab:tap" and start_time is not None and W0 <= start_time < W1:
        latencies_ms.append(response_time)

@events.quit.add_listener
def _quit(**_kw):
    with open(OUT, "w") as f:
        json.dump(latencies_ms, f)
"""

# `bare`: the baseline (users spawned together fire together); `bare-spread`: a plain random
# wait with the same mean, so the CPU comparison is not flattered by batching many requests per wake-up.
BARE_WAITS = {"bare": "constant_throughput(1)", "bare-spread": "between(0.0, 2.0)"}

GALA_SCENARIO = """
name: bench
seed: 1
target: {{url: builtin}}
links: {{grab: {{}}, setup: {{critical: false}}}}
users:
  GrabUser: {{class_path: "loadtests.locust_plugin.users.gala:GrabUser", rate_per_s: 1, pacing: poisson,
              link_shares: {{grab: 1}}, params: {{friends: 0}}}}
phases:
  - {{name: steady, duration_s: {seconds}, users: {{GrabUser: {users}}}, spawn_rate: {spawn_rate}}}
"""


# ---------------------------------------------------------------- the endpoint (its own process)

def serve(port: int, latency_ms: float) -> None:
    """A trivial gala-shaped endpoint on raw asyncio (cheap enough not to be the bottleneck on a busy
    core, unlike a framework): every reply after a fixed latency, and the arrival time of every tap kept."""
    arrivals: list[float] = []
    ids = iter(range(1, 10**9))
    replies = {b"/grab": b'{"result": "nothing", "reason": "no_luck"}', b"/friends": b'{"ok": true}'}

    def response(body: bytes, status: bytes = b"200 OK") -> bytes:
        return b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nContent-Length: " + \
            str(len(body)).encode() + b"\r\n\r\n" + body

    class Endpoint(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport, self.buf = transport, b""

        def data_received(self, data):
            self.buf += data
            loop = asyncio.get_running_loop()
            while b"\r\n\r\n" in self.buf:
                head, _, rest = self.buf.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if len(rest) < length:
                    return
                self.buf = rest[length:]
                path = head.split(b" ", 2)[1]
                if path == b"/grab":
                    arrivals.append(time.time())
                    body = replies[path]
                elif path == b"/users":
                    body = b'{"user_id": %d, "token": "t"}' % next(ids)
                elif path == b"/_arrivals":
                    body = json.dumps(arrivals).encode()
                else:
                    body = replies.get(path, b"{}")
                loop.call_later(latency_ms / 1000, self.transport.write, response(body))

    async def main():
        server = await asyncio.get_running_loop().create_server(Endpoint, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# ---------------------------------------------------------------- one run

PIN = False  # --pin: server on core 0, Locust on core 1 (helps on an idle machine, hurts on a busy one)


def _pin(proc: subprocess.Popen, core: int) -> None:
    try:
        if PIN and len(os.sched_getaffinity(0)) > 1:
            os.sched_setaffinity(proc.pid, {core})
    except (AttributeError, OSError):
        pass


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(kind: str, users: int, seconds: float, latency_ms: float, workdir: Path, name: str) -> dict:
    port = _free_port()
    server = subprocess.Popen([sys.executable, __file__, "serve", "--port", str(port), "--latency-ms", str(latency_ms)])
    _pin(server, 0)
    host = f"http://127.0.0.1:{port}"
    out = workdir / name
    out.mkdir(parents=True)
    spawn_rate = 500
    if kind in BARE_WAITS:
        lf = workdir / f"{name}_locustfile.py"
        lf.write_text(textwrap.dedent(BARE_LOCUSTFILE.format(wait=BARE_WAITS[kind])))
        args = ["-f", str(lf), "-u", str(users), "-r", str(spawn_rate), "-t", f"{int(seconds)}s"]
    else:
        sc = workdir / f"{name}.yaml"
        sc.write_text(GALA_SCENARIO.format(seconds=seconds, users=users, spawn_rate=spawn_rate))
    plugin = workdir / "bench_window.py"
    plugin.write_text(WINDOW_PLUGIN)
    if kind in BARE_WAITS:
        args[1] = f"{args[1]},{plugin}"
        cmd = [sys.executable, "-m", "locust", *args, "--headless", "--host", host, "--csv", str(out / "locust"),
               "--only-summary", "--stop-timeout", "0"]
    else:  # gala's locustfile, as gala runs it (the one argv builder), with the window plugin beside it
        cmd = locust_argv(scenario=sc, host=host, out=out, locustfile=f"{LOCUSTFILE},{plugin}",
                          extra=["--stop-timeout", "0"])
    time.sleep(1.0)
    t0 = time.time()
    ramp_s = users / spawn_rate + 3.0  # steady window: after the ramp, until 2 s before the end
    window = (t0 + ramp_s, t0 + seconds - 2.0)
    env = dict(os.environ, BENCH_W0=str(window[0]), BENCH_W1=str(window[1]), BENCH_OUT=str(out / "window.json"))
    with open(out / "locust.log", "w") as log:
        locust = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
    _pin(locust, 1)
    ps = psutil.Process(locust.pid)
    while time.time() < window[0]:
        time.sleep(0.05)
    cpu0 = sum(ps.cpu_times()[:2])
    while time.time() < window[1]:
        time.sleep(0.05)
    cpu1 = sum(ps.cpu_times()[:2])
    locust.wait(timeout=seconds + 60)
    import urllib.request
    arrivals = np.asarray(json.loads(urllib.request.urlopen(f"{host}/_arrivals", timeout=30).read()))
    server.terminate()
    server.wait(10)
    in_window = arrivals[(arrivals >= window[0]) & (arrivals < window[1])]
    bins = np.arange(window[0], window[1] + 1e-9, 0.1)
    counts, _ = np.histogram(in_window, bins=bins)
    stats = pd.read_csv(out / "locust_stats.csv").set_index("Name")
    tap = stats.loc["grab:tap"]
    steady = np.asarray(json.loads((out / "window.json").read_text()))
    p50, p99 = np.percentile(steady, [50, 99])
    return {
        "kind": kind, "users": users, "requests_in_window": int(len(in_window)),
        "rps": round(len(in_window) / (window[1] - window[0]), 1),
        "cpu_s_per_request_us": round((cpu1 - cpu0) / max(1, len(in_window)) * 1e6, 1),
        "generator_cpu_percent": round((cpu1 - cpu0) / (window[1] - window[0]) * 100, 1),
        "cv_per_100ms": round(float(counts.std() / counts.mean()), 3) if counts.mean() else None,
        "p50_ms": round(float(p50), 1), "p99_ms": round(float(p99), 1),
        "added_p99_ms": round(float(p99) - latency_ms, 1),  # steady window only
        "p99_whole_run_ms": float(tap["99%"]),                # Locust's, ramp included
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd")
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--latency-ms", type=float, default=20.0)
    p.add_argument("--users", type=int, default=2000)
    p.add_argument("--seconds", type=int, default=25)
    p.add_argument("--latency-ms", type=float, default=20.0)
    p.add_argument("--repeat", type=int, default=1, help="runs per kind (interleaved); the median is shown")
    p.add_argument("--pin", action="store_true", help="pin the server to core 0 and Locust to core 1")
    args = p.parse_args()
    global PIN
    PIN = args.pin
    if args.cmd == "serve":
        serve(args.port, args.latency_ms)
        return 0
    load_before = os.getloadavg()[0]
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="gala-bench-"))  # kept: Locust's logs and CSVs of both runs
    for i in range(args.repeat):  # kinds interleaved, so a change in the machine's load hits all of them
        for kind in ("bare", "bare-spread", "gala"):
            print(f"running {kind} ({i + 1}/{args.repeat}): {args.users} users, {args.seconds} s "
                  f"(files in {tmp / f'{kind}-{i}'}) ...", file=sys.stderr, flush=True)
            rows.append(run(kind, args.users, args.seconds, args.latency_ms, tmp, f"{kind}-{i}"))
    df = pd.DataFrame(rows).groupby("kind", sort=False).median()  # the median of the repeats
    print(df.T.to_string())
    ratio = df.loc["gala", "cpu_s_per_request_us"] / df.loc["bare", "cpu_s_per_request_us"]
    spread = df.loc["gala", "cpu_s_per_request_us"] / df.loc["bare-spread", "cpu_s_per_request_us"]
    print(f"\ngala CPU per request / bare: {ratio:.2f}x, / bare-spread: {spread:.2f}x (goal <= 1.1x); "
          f"gala added p99: {df.loc['gala', 'added_p99_ms']:.0f} ms (goal <= 10 ms); "
          f"CV per 100 ms: gala {df.loc['gala', 'cv_per_100ms']}, bare {df.loc['bare', 'cv_per_100ms']}; "
          f"machine: {os.cpu_count()} cores, load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    return 0


if __name__ == "__main__":
    sys.exit(main())
