"""Benchmark-style fuzz run of the built-in target: 10,000+ hostile requests, then the audit.

Not a test. Starts a real target (one in-memory process, or `--store URL` for two processes over
Redis), sends cases drawn from the test suite's strategies (tests/target_fuzz_cases.py: every
endpoint, hostile bodies, queries and tokens), and reports how many got a 2xx, a 4xx, a 5xx (goal
0), refusals that changed state (goal 0), the final audit and the peak RSS of every target process.

    .venv/bin/python benchmarks/fuzz_target.py [--requests 10000] [--store redis://127.0.0.1:6379/0]

`main(argv)` returns 0 when every case was clean; `run(requests, store)` returns the figures as a
dict (benchmarks/fuzz.py calls it for the target half of its report).
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402

from loadtests.target import launch  # noqa: E402
from target_fuzz_cases import FUZZ_CONFIG, Unclean, audit, cases, make_world, send  # noqa: E402


def _start(store: str | None) -> tuple[subprocess.Popen, str, str]:
    folder = Path(tempfile.mkdtemp(prefix="gala-fuzz-"))
    (folder / "fuzz.yaml").write_text(FUZZ_CONFIG)
    t = launch.start(folder / "target.log", config=folder / "fuzz.yaml", extra=["--processes", "2", "--store", store] if store else [])
    return t.proc, t.url, t.admin_token


def _peak_rss_mb(pid: int) -> dict[int, float]:
    """VmHWM (peak resident set) of a process and its children, in MB."""
    import psutil

    out = {}
    root = psutil.Process(pid)
    for p in [root, *root.children(recursive=True)]:
        try:
            for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    out[p.pid] = int(line.split()[1]) / 1024
        except FileNotFoundError:
            pass
    return out


def run(requests: int = 10_000, store: str | None = None) -> dict:
    """Send `requests` fuzz cases to a fresh target; the figures as a dict."""
    proc, url, token = _start(store)
    counts, failures = collections.Counter(), []
    started = time.monotonic()
    try:
        world = make_world(url, token)

        @settings(max_examples=requests, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=cases())
        def fuzz(case):
            try:
                status = send(world, case)
                counts[f"{status // 100}xx"] += 1
            except Unclean as exc:  # record and go on: a benchmark counts, it does not stop at the first
                counts["unclean"] += 1
                counts["5xx"] += exc.status >= 500
                if len(failures) < 5:
                    failures.append(repr(exc.args[0])[:300])

        fuzz()
        final = audit(world)
        rss = _peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    return {"store": "redis, 2 processes" if store else "memory, 1 process", "requests": counts["2xx"] + counts["4xx"] + counts["unclean"],
            "2xx": counts["2xx"], "4xx": counts["4xx"], "5xx": counts["5xx"], "unclean": counts["unclean"],
            "audit_passed": final["passed"], "audit_totals": final["totals"], "peak_rss_mb": rss,
            "wall_s": round(time.monotonic() - started, 1), "examples_of_unclean": failures}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=10_000, help="fuzz cases to send (default: %(default)s)")
    ap.add_argument("--store", metavar="URL", help="fuzz two processes over this Redis (default: one in-memory process)")
    args = ap.parse_args(argv)
    if args.requests < 1:
        ap.error("--requests must be >= 1")
    r = run(args.requests, args.store)
    model = next((x.split(":", 1)[1].strip() for x in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
                  if x.startswith("Model name")), platform.processor())
    print(f"Machine: {os.cpu_count()} cores, {model}; load average {os.getloadavg()[0]:.2f}; "
          f"target {r['store']}; {r['wall_s']} s\n")
    print("| requests | 2xx | 4xx | 5xx | refusals that changed state or unclean answers | audit | peak RSS per process (MB) |")
    print("|---:|---:|---:|---:|---:|---|---|")
    rss = ", ".join(f"{v:.0f}" for v in r["peak_rss_mb"].values())
    print(f"| {r['requests']:,} | {r['2xx']:,} | {r['4xx']:,} | {r['5xx']} | {r['unclean']} | "
          f"{'passed' if r['audit_passed'] else 'FAILED'} | {rss} |")
    for example in r["examples_of_unclean"]:
        print(f"\nunclean: {example}")
    return 0 if r["unclean"] == 0 and r["audit_passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
