"""Benchmark-style fuzz run of every input-file loader (and, with --target, of the built-in target).

Not a test. For each loader (scenario, budgets, capacity spec, target config) it writes 10,000+
hostile mutants of the default file (tests/input_fuzz_cases.py: the test suite's strategies) and
counts clean refusals (one `FILE:LINE: ...` InputError line), acceptances (and what was accepted was
used: phases planned, budgets held to the scenario, the spec's assumptions listed) and crashes (any
other exception, or a refusal that is not one clean line: goal 0). It also loads the worst shapes of a
file just under the 1 MiB limit and measures each one's time and peak memory (tracemalloc; goal under
200 MB), and reports the process's peak RSS. `--target N` adds benchmarks/fuzz_target.py's run of N
requests against a real target (its figures are in benchmarks/README.md; run it under the load lock).

    .venv/bin/python benchmarks/fuzz.py [--cases 10000] [--loader scenario ...] [--target 10000]

Exit 0 when no case crashed.
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "benchmarks")]
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402

from input_fuzz_cases import LOADERS, Unclean, big_files, check_case, mutants  # noqa: E402


def fuzz_loader(name: str, cases: int, folder: Path) -> dict:
    """`cases` mutants of one loader's default file: counts, wall time, the slowest case, examples of crashes."""
    loader = LOADERS[name]
    path = folder / f"{name}.yaml"
    counts: collections.Counter = collections.Counter()
    crashes: list[str] = []
    slowest = [0.0, b""]
    started = time.monotonic()

    @settings(max_examples=cases, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(raw=mutants(loader.default))
    def one(raw: bytes) -> None:
        path.write_bytes(raw)
        t0 = time.perf_counter()
        try:
            counts[check_case(loader, path)] += 1
        except Unclean as exc:  # record and go on: a benchmark counts, it does not stop at the first
            counts["crashed"] += 1
            if len(crashes) < 5:
                crashes.append(f"{exc.args[0][:300]} <- {raw[:200]!r}")
        took = time.perf_counter() - t0
        if took > slowest[0]:
            slowest[:] = [took, raw]

    one()
    return {"loader": name, "cases": sum(counts.values()), "refused": counts["refused"], "accepted": counts["accepted"],
            "crashed": counts["crashed"], "wall_s": time.monotonic() - started, "slowest_ms": slowest[0] * 1000,
            "crashes": crashes}


def big_file_figures(folder: Path) -> list[dict]:
    """Each worst-shape file under 1 MiB through each loader: outcome, seconds, tracemalloc peak."""
    rows = []
    for shape, raw in big_files().items():
        path = folder / "big.yaml"
        path.write_bytes(raw)
        for name, loader in LOADERS.items():
            t0 = time.perf_counter()  # timed without tracemalloc, which slows Python ~5x
            try:
                outcome = check_case(loader, path)
            except Unclean as exc:
                outcome = f"CRASHED: {exc.args[0][:200]}"
            seconds = time.perf_counter() - t0
            tracemalloc.start()
            try:
                check_case(loader, path)
            except Unclean:
                pass
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            rows.append({"shape": shape, "bytes": len(raw), "loader": name, "outcome": outcome,
                         "ms": seconds * 1000, "peak_mb": peak / 1e6})
    return rows


def machine() -> str:
    model = next((x.split(":", 1)[1].strip() for x in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
                  if x.startswith("Model name")), platform.processor())
    return f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}; load average {os.getloadavg()[0]:.2f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=10_000, help="mutants per loader (default: %(default)s)")
    ap.add_argument("--loader", action="append", choices=list(LOADERS), help="only these loaders (default: all)")
    ap.add_argument("--target", type=int, default=0, metavar="N",
                    help="also send N fuzz requests to a real built-in target (benchmarks/fuzz_target.py)")
    args = ap.parse_args(argv)
    if args.cases < 1:
        ap.error("--cases must be >= 1")
    import yaml

    print(f"Machine: {machine()}; PyYAML {yaml.__version__} with libyaml: {yaml.__with_libyaml__}\n")
    crashed = 0
    with tempfile.TemporaryDirectory(prefix="gala-fuzz-") as tmp:
        folder = Path(tmp)
        print("| loader | cases | clean refusals | accepted | crashes | wall | slowest case |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        results = []
        for name in args.loader or list(LOADERS):
            r = fuzz_loader(name, args.cases, folder)
            results.append(r)
            crashed += r["crashed"]
            print(f"| {name} | {r['cases']:,} | {r['refused']:,} | {r['accepted']:,} | **{r['crashed']}** | "
                  f"{r['wall_s']:.0f} s | {r['slowest_ms']:.0f} ms |", flush=True)
        print("\n| file under 1 MiB | bytes | loader | outcome | time | peak memory (tracemalloc) |")
        print("|---|---:|---|---|---:|---:|")
        for row in big_file_figures(folder):
            crashed += row["outcome"].startswith("CRASHED")
            print(f"| {row['shape']} | {row['bytes']:,} | {row['loader']} | {row['outcome']} | {row['ms']:.0f} ms | "
                  f"{row['peak_mb']:.1f} MB |", flush=True)
    print(f"\npeak RSS of this process (every case above, Python and hypothesis included): "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    for r in results:
        for example in r["crashes"]:
            print(f"\ncrash ({r['loader']}): {example}")
    if args.target:
        import fuzz_target

        t = fuzz_target.run(args.target)
        crashed += t["unclean"]
        print(f"\ntarget ({t['store']}): {t['requests']:,} requests, {t['2xx']:,} 2xx, {t['4xx']:,} 4xx, "
              f"{t['5xx']} 5xx, {t['unclean']} unclean, audit {'passed' if t['audit_passed'] else 'FAILED'}, "
              f"{t['wall_s']} s")
    return 0 if crashed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
