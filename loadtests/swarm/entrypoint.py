"""The master container's entry point: run `gala <args>`, then print the results folder to the log.

`python -m loadtests.swarm.entrypoint run --out /results ...` runs gala's runner as a child process (its output
goes straight to the pod log). While it runs, the new run folder's `locust.log` is followed onto
stdout too (the runner writes Locust's log to that file; `gala swarm up` reads "N workers
connected" from the pod log). After it ends, each new folder under `--out` is printed as a bundle
(loadtests/swarm/bundle.py), and the runner's exit code is this process's: the Job's pass/fail.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

from loadtests.swarm import bundle

FOLLOW_PREFIX = "[locust] "


def _out_dir(args: list[str]) -> Path:
    for i, a in enumerate(args):
        if a == "--out" and i + 1 < len(args):
            return Path(args[i + 1])
        if a.startswith("--out="):
            return Path(a.split("=", 1)[1])
    return Path("results")


def _new_folders(out: Path, before: set[str]) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir() and p.name not in before) if out.is_dir() else []


def _follow_locust_logs(out: Path, before: set[str], done: threading.Event, poll_s: float = 0.5) -> None:
    """Copy every new run folder's locust.log onto stdout, line by line, until `done` (then drain)."""
    offsets: dict[Path, int] = {}
    while True:
        finished = done.is_set()
        for folder in _new_folders(out, before):
            log = folder / "locust.log"
            if not log.exists():
                continue
            with log.open("rb") as f:
                f.seek(offsets.get(log, 0))
                chunk = f.read()
            # Only whole lines, unless the writer is gone.
            cut = len(chunk) if finished else chunk.rfind(b"\n") + 1
            if cut > 0:
                text = chunk[:cut].decode("utf-8", "replace")
                sys.stdout.write("".join(FOLLOW_PREFIX + line + "\n" for line in text.splitlines()))
                sys.stdout.flush()
                offsets[log] = offsets.get(log, 0) + cut
        if finished:
            return
        done.wait(poll_s)


def main(argv: list[str] | None = None, command: list[str] | None = None) -> int:
    """Run `command` (default: this Python's `-m gala`) with argv; print new results folders."""
    args = list(sys.argv[1:] if argv is None else argv)
    out = _out_dir(args)
    before = {p.name for p in out.iterdir()} if out.is_dir() else set()
    done = threading.Event()
    follower = threading.Thread(target=_follow_locust_logs, args=(out, before, done), daemon=True)
    child = subprocess.Popen([*(command or [sys.executable, "-m", "gala"]), *args])
    follower.start()
    # As PID 1 we alone get the kubelet's SIGTERM: pass it on so the runner writes what it measured.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: child.send_signal(signum))
    code = child.wait()
    done.set()
    follower.join(10)
    new = [p for p in _new_folders(out, before) if (p / "run.json").exists()]
    sys.stdout.flush()
    for folder in new:
        sys.stdout.write(bundle.pack(folder))
    if not new:
        print(f"gala swarm: no results folder was written under {out}", file=sys.stderr)
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
