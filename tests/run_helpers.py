"""Helpers for the `gala run` tests: a run as a watched subprocess, Locust's totals, orphan checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import psutil

REPO = Path(__file__).resolve().parent.parent


@dataclass
class WatchedRun:
    """`gala run` in a subprocess, with every process it ever started remembered (to find orphans)."""

    proc: subprocess.Popen
    out: Path
    seen: dict[int, float] = field(default_factory=dict)  # pid -> create_time

    def note_descendants(self) -> list[psutil.Process]:
        try:
            kids = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            return []
        for k in kids:
            try:
                self.seen.setdefault(k.pid, k.create_time())
            except psutil.Error:
                pass
        return kids

    def run_dir(self) -> Path | None:
        dirs = [p for p in self.out.iterdir() if p.is_dir()] if self.out.exists() else []
        return dirs[0] if len(dirs) == 1 else None

    def live(self) -> dict | None:
        d = self.run_dir()
        try:
            return json.loads((d / "live.json").read_text()) if d else None
        except (OSError, ValueError):
            return None

    def wait_for(self, predicate, timeout_s: float, what: str):
        """Poll (noting descendants) until predicate() is truthy; fail the test with `what` otherwise."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.note_descendants()
            got = predicate()
            if got:
                return got
            if self.proc.poll() is not None:
                raise AssertionError(f"gala run exited ({self.proc.returncode}) before {what}:\n{self.output()}")
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what}:\n{self.output()}")

    def signal_when(self, ready, what: str, pick, sig: int, *, timeout_s: float = 90,
                    finish_s: float = 150) -> tuple[int, int]:
        """Wait for ready(), send sig to the process pick() names, wait for gala to end: (exit code, pid)."""
        try:
            self.wait_for(ready, timeout_s, what)
            pid = pick()
            os.kill(pid, sig)
            return self.finish(finish_s), pid
        finally:
            if self.proc.poll() is None:
                self.kill()

    def finish(self, timeout_s: float = 120) -> int:
        deadline = time.monotonic() + timeout_s
        while self.proc.poll() is None and time.monotonic() < deadline:
            self.note_descendants()
            time.sleep(0.2)
        if self.proc.poll() is None:
            self.kill()
            raise AssertionError(f"gala run did not end within {timeout_s} s:\n{self.output()}")
        return self.proc.returncode

    def output(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        if not hasattr(self, "_out"):
            out, err = self.proc.communicate()
            self._out = (out or "") + (err or "")
        return self._out[-4000:]

    def survivors(self, grace_s: float = 5.0) -> list[str]:
        """Processes gala started that are still alive after it exited (orphans)."""
        deadline = time.monotonic() + grace_s
        while True:
            alive = []
            for pid, created in self.seen.items():
                try:
                    p = psutil.Process(pid)
                    if p.create_time() == created and p.status() != psutil.STATUS_ZOMBIE:
                        alive.append(f"{pid} {' '.join(p.cmdline())[:120]}")
                except psutil.Error:
                    continue
            if not alive or time.monotonic() > deadline:
                return alive
            time.sleep(0.2)

    def kill(self) -> None:
        for pid in [self.proc.pid, *self.seen]:
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        self.proc.wait(timeout=10)


def start_run(out: Path, *args: str) -> WatchedRun:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gala", "run", "--out", str(out), "--no-plan", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    return WatchedRun(proc=proc, out=out)


def locust_totals(run_dir: Path) -> pd.DataFrame:
    """Locust's own request and failure counts per link (request names are `<link>:<label>`)."""
    df = pd.read_csv(run_dir / "locust_stats.csv")
    df = df[df["Name"] != "Aggregated"].copy()
    df["link"] = df["Name"].str.split(":", n=1).str[0]
    return df.groupby("link")[["Request Count", "Failure Count"]].sum()


def gala_totals(run_dir: Path) -> pd.DataFrame:
    st = pd.read_csv(run_dir / "phase_link_stats.csv")
    rows = st[(st["phase"] == "_all") & (st["link"] != "_all")].set_index("link")
    return rows[["requests", "failures"]].rename(columns={"requests": "Request Count", "failures": "Failure Count"})


def assert_totals_match_locust(run_dir: Path) -> pd.DataFrame:
    ours, theirs = gala_totals(run_dir).sort_index(), locust_totals(run_dir).sort_index()
    pd.testing.assert_frame_equal(ours, theirs, check_dtype=False, check_names=False)
    aggregated = pd.read_csv(run_dir / "locust_stats.csv").set_index("Name").loc["Aggregated", "Request Count"]
    st = pd.read_csv(run_dir / "phase_link_stats.csv").set_index(["phase", "link"])
    assert st.loc[("_all", "_all"), "requests"] == aggregated
    return ours
