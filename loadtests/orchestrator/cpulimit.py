"""Node emulation: confine a target's process tree to a fraction of a core with a cgroup CPU quota.

A small node the generator can saturate (issue 11): `CpuLimit(0.25)` makes a cgroup of its own,
`gala-<pid>-<token>`, with a CFS quota of 0.25 core, beneath this process's own cgroup (or
`GALA_CGROUP_PARENT`) in a hierarchy that has the cpu controller: cgroup v2 (`cpu.max`) where such a hierarchy is writable,
else cgroup v1 (`cpu.cfs_quota_us` / `cpu.cfs_period_us`). `apply(pid)` moves a process and its
descendants in; processes it forks later inherit the cgroup. `remove()` moves whatever is left
back (each applied process to where it came from, the rest to the parent) and deletes the cgroup:
on leaving the `with` block, on an exception, at interpreter exit, on SIGTERM/SIGHUP where nobody
else handles them; and a cgroup left by a `gala` killed outright is swept by the next one.
Where no hierarchy can be used, `CpuLimitError` (an InputError: exit 2) says what was tried and
why each failed, and nothing is left behind.
"""

from __future__ import annotations

import atexit
import errno
import os
import re
import secrets
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psutil

from gala.contract.errors import InputError

Mechanism = Literal["cgroup-v2", "cgroup-v1"]
PERIOD_US = 100_000           # the CFS period: 100 ms, the kernel's default
MIN_QUOTA_US = 1_000          # the kernel refuses a quota or a period under 1 ms ...
MAX_PERIOD_US = 1_000_000     # ... and a period over 1 s
MIN_CORES = MIN_QUOTA_US / PERIOD_US
RMDIR_TRIES = 20              # an exiting task can keep a cgroup busy for a moment
NAME_RE = re.compile(r"^gala-(\d+)-[0-9a-f]+$")


class CpuLimitError(InputError):
    """No cgroup could be made to limit the target's CPU; the message says what was tried and why."""


@dataclass(frozen=True)
class CpuLimitRecord:
    """What run.json records about a limit: cores, mechanism, the cgroup's path, and its throttling."""

    cores: float
    mechanism: Mechanism
    cgroup: str
    periods: int = 0            # CFS periods in which the group ran
    throttled_periods: int = 0  # ... and in which it hit its quota
    throttled_s: float = 0.0

    def as_run_json(self) -> dict:
        return {"cpu_limit_cores": self.cores, "cpu_limit_mechanism": self.mechanism,
                "cpu_limit_cgroup": self.cgroup, "cpu_limit_periods": self.periods,
                "cpu_limit_throttled_periods": self.throttled_periods,
                "cpu_limit_throttled_s": round(self.throttled_s, 3)}


# ------------------------------------------------------------------ where a cgroup can be made


def _own_cgroup(controller: str | None, proc_cgroup: str) -> str:
    """This process's path in the hierarchy of `controller` (None: the v2 one) from /proc/<pid>/cgroup."""
    for line in proc_cgroup.splitlines():
        _, names, path = line.split(":", 2)
        if (controller is None and names == "") or (controller and controller in names.split(",")):
            return path
    return "/"


def candidates() -> list[tuple[Mechanism, Path]]:
    """The directories to make a cgroup in, v2 first: this process's own cgroup in each hierarchy
    mounted with the cpu controller (v2: every cgroup2 mount, whether it has cpu is checked on use,
    and its top too, which alone may hold processes and enable controllers for its children)."""
    try:
        mountinfo = Path("/proc/self/mountinfo").read_text()
        own = Path("/proc/self/cgroup").read_text()
    except OSError:
        return []
    found: list[tuple[Mechanism, Path]] = []
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields, (fstype, _src, options) = left.split(), (right.split() + ["", "", ""])[:3]
        root, mount = fields[3], Path(fields[4])
        if fstype == "cgroup2":
            mech, path = "cgroup-v2", _own_cgroup(None, own)
        elif fstype == "cgroup" and "cpu" in options.split(","):
            mech, path = "cgroup-v1", _own_cgroup("cpu", own)
        else:
            continue
        rel = os.path.relpath(path, root) if path.startswith(root) else "."
        found.append((mech, mount / rel if rel != "." else mount))
        if mech == "cgroup-v2" and rel != ".":
            found.append((mech, mount))
    return sorted(found, key=lambda c: c[0] != "cgroup-v2")


def configured() -> list[tuple[Mechanism, Path]]:
    """`GALA_CGROUP_PARENT=DIR`: make the cgroup there and nowhere else (a delegated cgroup v2
    subtree a non-root user may write, say); v2 if DIR has cgroup.controllers, else v1."""
    parent = os.environ.get("GALA_CGROUP_PARENT")
    if not parent:
        return []
    path = Path(parent)
    return [("cgroup-v2" if (path / "cgroup.controllers").exists() else "cgroup-v1", path)]


def _quota_files(mech: Mechanism) -> tuple[str, ...]:
    return ("cpu.max",) if mech == "cgroup-v2" else ("cpu.cfs_period_us", "cpu.cfs_quota_us")


def _why_not(mech: Mechanism, parent: Path) -> str | None:
    """Why a cgroup with a CPU quota cannot be made in `parent`, or None if it can be tried."""
    if not parent.is_dir():
        return "no such directory"
    if mech == "cgroup-v2":
        try:
            controllers = (parent / "cgroup.controllers").read_text().split()
        except OSError as exc:
            return f"not a cgroup v2 directory ({exc.strerror or exc})"
        if "cpu" not in controllers:
            return f"the cpu controller is not available there (cgroup.controllers: {' '.join(controllers) or 'none'})"
        try:
            if "cpu" not in (parent / "cgroup.subtree_control").read_text().split():
                (parent / "cgroup.subtree_control").write_text("+cpu")
        except OSError as exc:
            return f"cannot enable the cpu controller for its children ({exc.strerror or exc})"
    return None  # v1: making the directory is the test (the kernel fills it with cpu.* files)


# ------------------------------------------------------------------ cleanup whatever happens

_LIVE: set["CpuLimit"] = set()
_LOCK = threading.RLock()  # re-entered when a signal arrives inside a removal
_SAVED_HANDLERS: dict[int, object] = {}


def _remove_all() -> None:
    for limit in list(_LIVE):
        limit.remove()


def _on_fatal_signal(signum, _frame) -> None:
    # a signal that would kill us outright: remove the cgroups, then die of it as we would have
    _remove_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _guard() -> None:
    """Catch SIGTERM/SIGHUP where nobody else does (a `gala run` handles them itself)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if sig not in _SAVED_HANDLERS and signal.getsignal(sig) is signal.SIG_DFL:
            _SAVED_HANDLERS[sig] = signal.signal(sig, _on_fatal_signal)


def _unguard() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for sig, previous in list(_SAVED_HANDLERS.items()):
        if signal.getsignal(sig) is _on_fatal_signal:
            signal.signal(sig, previous)
        del _SAVED_HANDLERS[sig]


atexit.register(_remove_all)


# ------------------------------------------------------------------ the limit


def _write(path: Path, text: str) -> None:
    with open(path, "w") as fh:  # one write() per value: the kernel reads each as a whole
        fh.write(text)


def _procs(cgroup: Path) -> list[int]:
    try:
        return [int(p) for p in (cgroup / "cgroup.procs").read_text().split()]
    except OSError:
        return []


def _move(pid: int, dest: Path) -> None:
    try:
        _write(dest / "cgroup.procs", str(pid))
    except OSError as exc:
        if exc.errno != errno.ESRCH:  # a process that is gone needs no moving
            raise


def _evict_and_rmdir(cgroup: Path, back: dict[int, Path]) -> bool:
    """Move every task out (to `back[pid]` where it exists, else the parent) and delete the cgroup."""
    for _ in range(RMDIR_TRIES):
        for pid in _procs(cgroup):
            dest = back.get(pid)
            try:
                _move(pid, dest if dest is not None and dest.is_dir() else cgroup.parent)
            except OSError:
                _move(pid, cgroup.parent)
        try:
            cgroup.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError:
            time.sleep(0.05)
    return False


def sweep_stale(parent: Path) -> list[Path]:
    """Delete the cgroups that a `gala` no longer alive left in `parent` (killed before it could)."""
    removed = []
    for entry in parent.iterdir() if parent.is_dir() else []:
        m = NAME_RE.match(entry.name)
        if m and entry.is_dir() and not psutil.pid_exists(int(m.group(1))) and _evict_and_rmdir(entry, {}):
            removed.append(entry)
    return removed


class CpuLimit:
    """A cgroup with a CPU quota of `cores`, made on first use and always removed.

    `where`: the (mechanism, parent directory) pairs to try in order; default: this machine's
    hierarchies (`candidates()`), v2 first.
    """

    def __init__(self, cores: float, *, where: list[tuple[Mechanism, Path]] | None = None,
                 label: str = "CPU limit", period_us: int = PERIOD_US):
        ncpu = os.cpu_count() or 1
        if not (isinstance(cores, (int, float)) and MIN_CORES <= cores <= ncpu):
            raise CpuLimitError(f"{label}: expected a number of cores from {MIN_CORES:g} to {ncpu} "
                                f"(this machine's), got {cores!r}")
        if not MIN_QUOTA_US <= period_us <= MAX_PERIOD_US:
            raise CpuLimitError(f"{label}: expected a period from {MIN_QUOTA_US} to {MAX_PERIOD_US} us, got {period_us}")
        self.cores = float(cores)
        # a shorter period throttles more often for less long: the same share, finer grained
        self.period_us = int(period_us)
        self.label = label
        self.where = list(where) if where is not None else configured() or candidates()
        self.path: Path | None = None
        self.mechanism: Mechanism | None = None
        self.removed = False
        self._origin: dict[int, Path] = {}
        self._record: CpuLimitRecord | None = None

    # -------------------------------------------------------------- make

    def create(self) -> Path:
        """Make the cgroup (once); CpuLimitError, with nothing left behind, if no hierarchy can be used."""
        if self.path is not None:
            return self.path
        quota = max(MIN_QUOTA_US, round(self.cores * self.period_us))
        tried = []
        for mech, parent in self.where:
            why = _why_not(mech, parent)
            if why is None:
                sweep_stale(parent)
                path = parent / f"gala-{os.getpid()}-{secrets.token_hex(3)}"
                why = self._make(mech, path, quota)
                if why is None:
                    return self.path
            tried.append(f"{mech} in {parent}: {why}")
        raise CpuLimitError(f"{self.label}: cannot limit the target to {self.cores:g} core(s): "
                            + ("; ".join(tried) if tried else "no cgroup hierarchy with the cpu controller is mounted")
                            + " (needs root and a writable cgroup v2 with cpu, or cgroup v1 cpu)")

    def _make(self, mech: Mechanism, path: Path, quota: int) -> str | None:
        try:
            path.mkdir()
        except OSError as exc:
            return f"cannot create {path.name} ({exc.strerror or exc})"
        with _LOCK:  # from here on, every way out removes it
            self.path, self.mechanism = path, mech
            _LIVE.add(self)
            _guard()
        try:
            missing = [f for f in _quota_files(mech) if not (path / f).exists()]
            if missing:
                raise OSError(errno.ENOENT, f"the new directory has no {', '.join(missing)}: not a cgroup with cpu")
            if mech == "cgroup-v2":
                _write(path / "cpu.max", f"{quota} {self.period_us}")
            else:
                _write(path / "cpu.cfs_period_us", str(self.period_us))
                _write(path / "cpu.cfs_quota_us", str(quota))
        except OSError as exc:
            self.remove()
            self.path, self.mechanism, self.removed = None, None, False
            return f"cannot set the quota ({exc.strerror or exc})"
        return None

    # -------------------------------------------------------------- use

    def apply(self, pid: int, *, children: bool = True) -> None:
        """Move `pid` (and, with `children`, its descendants now alive) into the cgroup; what it
        forks from now on is born there."""
        path = self.create()
        try:
            tree = [psutil.Process(pid)]
            if children:
                tree += tree[0].children(recursive=True)
        except psutil.Error as exc:
            raise CpuLimitError(f"{self.label}: cannot limit pid {pid}: {exc}") from None
        for proc in tree:
            self._origin.setdefault(proc.pid, self._cgroup_of(proc.pid) or path.parent)
            try:
                _move(proc.pid, path)
            except OSError as exc:
                raise CpuLimitError(f"{self.label}: cannot move pid {proc.pid} into {path} "
                                    f"({exc.strerror or exc})") from None

    def _cgroup_of(self, pid: int) -> Path | None:
        """The directory of `pid`'s cgroup in this limit's hierarchy, to move it back to on removal:
        the hierarchy's top is our parent directory less this process's own cgroup path."""
        controller = None if self.mechanism == "cgroup-v2" else "cpu"
        try:
            theirs = _own_cgroup(controller, Path(f"/proc/{pid}/cgroup").read_text())
            mine = Path(_own_cgroup(controller, Path("/proc/self/cgroup").read_text()))
        except OSError:
            return None
        parent = self.path.parent
        depth = len(mine.parts) - 1
        if depth and parent.parts[-depth:] != mine.parts[1:]:
            return None  # a parent given by hand, not this process's own cgroup: back to it
        top = parent.parents[depth - 1] if depth else parent
        return top / theirs.lstrip("/")

    def pids(self) -> list[int]:
        """The processes in the cgroup now."""
        return _procs(self.path) if self.path is not None else []

    def record(self) -> CpuLimitRecord | None:
        """Cores, mechanism, path and throttling so far (the last reading, once removed)."""
        if self.path is None or self.removed:
            return self._record
        stat: dict[str, int] = {}
        try:
            for line in (self.path / "cpu.stat").read_text().splitlines():
                key, _, value = line.partition(" ")
                stat[key] = int(value)
        except (OSError, ValueError):
            pass
        throttled_s = stat.get("throttled_usec", 0) / 1e6 + stat.get("throttled_time", 0) / 1e9
        self._record = CpuLimitRecord(self.cores, self.mechanism, str(self.path), stat.get("nr_periods", 0),
                                      stat.get("nr_throttled", 0), throttled_s)
        return self._record

    # -------------------------------------------------------------- remove

    def remove(self) -> bool:
        """Move every task back out and delete the cgroup; True once it is gone. Idempotent, never raises."""
        with _LOCK:
            if self.path is None or self.removed:
                return True
            try:
                self.record()
            except Exception:  # a record is worth having, not worth leaving a cgroup behind for
                pass
            gone = _evict_and_rmdir(self.path, self._origin)
            if gone:
                self.removed = True
                _LIVE.discard(self)
                if not _LIVE:
                    _unguard()
            return gone

    def __enter__(self) -> "CpuLimit":
        self.create()
        return self

    def __exit__(self, *exc) -> None:
        self.remove()
