"""A run's lease in Redis, and the sweep that deletes the keys of runs whose supervisor died.

A supervisor killed with SIGKILL cannot delete its run's keys (`gala:{RUN}:*`). So while it lives
it holds `gala:{RUN}:lease`, a key with a TTL (60 s by default) that a thread of the supervisor
renews every third of it; its workers do not hold it (they may die while the run goes on). A run
is dead when its lease is gone and its meta was written more than one TTL ago (the lease and the
meta are written together, the age is a second guard). A run stopped with --keep-store keeps a
lease without TTL (`kept`): it is never swept. The sweep finds runs by their meta key only (a run's
meta and lease are deleted last, so a tidy-up cut short leaves the run findable), deletes each dead
run's keys with SCAN + UNLINK in batches, each batch a script that first checks the lease is still
absent (a supervisor restarting that run id wins), and touches nothing outside gala's own prefixes.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass, field

import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from gala.contract.errors import InputError

DEFAULT_LEASE_S = 60  # also the TTL assumed for a run whose meta does not say (written by an older gala)
KEPT = "kept"
BATCH = 1000  # keys per UNLINK: a batch frees memory in the background and keeps each call short
RUN_META = re.compile(r"gala:\{([A-Za-z0-9_-]{1,64})\}:meta")  # the run ids `gala target serve --run-id` allows

# Unlink KEYS[2..] unless the run's lease (KEYS[1]) exists: the check and the delete are one step.
_GUARDED_UNLINK = """
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
return redis.call('UNLINK', unpack(KEYS, 2))
"""


def client_for(url: str, timeout_s: float = 10.0) -> redis.Redis:
    """A synchronous client that never retries (a failed call is reported, not sent twice)."""
    return redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=timeout_s, retry=Retry(NoBackoff(), 0))


def store_error(url: str, exc: Exception) -> InputError:
    """The one line (exit 2) for a store that cannot be used, naming its URL."""
    return InputError(f"--store {url}: cannot use Redis there ({exc})")


def lease_key(prefix: str) -> str:
    return prefix + "lease"


def holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def delete_run(client: redis.Redis, prefix: str, *, guarded: bool, go_on=None) -> tuple[int, bool]:
    """Delete a run's keys, its meta and lease last; (keys deleted, whether it got to the end).

    `guarded` (the sweep): every batch is skipped once the run holds a lease again, and the sweep
    stops there. `go_on()` is called between batches; False stops there (meta and lease stay, so the
    next sweep finds the run again).
    """
    last = [prefix + "meta", lease_key(prefix)]
    unlink = client.register_script(_GUARDED_UNLINK) if guarded else None
    n, batch = 0, []

    def flush(keys: list) -> bool:
        nonlocal n
        got = unlink(keys=[lease_key(prefix), *keys]) if guarded else client.unlink(*keys)
        if got < 0:
            return False
        n += got
        return go_on is None or go_on()

    for key in client.scan_iter(match=prefix + "*", count=2000):
        if key.decode(errors="replace") in last:
            continue
        batch.append(key)
        if len(batch) >= BATCH:
            if not flush(batch):
                return n, False
            batch = []
    if batch and not flush(batch):
        return n, False
    got = unlink(keys=[lease_key(prefix), *last]) if guarded else client.unlink(*last)
    return n + max(got, 0), got >= 0


def count_keys(client: redis.Redis, prefix: str) -> int:
    return sum(1 for _ in client.scan_iter(match=prefix + "*", count=2000))


@dataclass
class Swept:
    """What a sweep found: dead runs (swept, or to sweep when dry) and the runs it left alone."""

    dead: list[str] = field(default_factory=list)
    keys: int = 0
    live: int = 0
    kept: int = 0
    starting: int = 0
    left: int = 0  # dead runs not (wholly) swept within the time budget

    def line(self, url: str, dry_run: bool) -> str:
        runs = f"{len(self.dead)} dead run{'s' if len(self.dead) != 1 else ''} ({self.keys} keys)"
        head = f"would sweep {runs}" if dry_run else f"swept {runs}"
        named = ""
        if dry_run and self.dead:
            named = ": " + ", ".join(self.dead[:10]) + (f" and {len(self.dead) - 10} more" if len(self.dead) > 10 else "")
        left = f"; {self.left} dead left for the next sweep (time budget)" if self.left else ""
        return (f"{head} from {url}{named}; untouched: {self.live} live, {self.kept} kept (--keep-store), "
                f"{self.starting} starting{left}")


def sweep(url: str, *, dry_run: bool = False, spare: str | None = None, between=None,
          budget_s: float | None = None) -> Swept:
    """Find the runs under gala:{*}: whose lease is gone and delete their keys (or only count them).

    `spare` is a prefix never swept (the sweeping supervisor's own run); `between` is called between
    batches (that supervisor renews its lease); past `budget_s` the sweep stops between two batches.
    Raises InputError naming the URL when the store cannot be reached or refuses a command.
    """
    client = client_for(url)
    out = Swept()
    deadline = None if budget_s is None else time.monotonic() + budget_s

    def go_on() -> bool:
        if between is not None:
            between()
        return deadline is None or time.monotonic() < deadline

    try:
        client.ping()
        runs = []
        for key in client.scan_iter(match="gala:{*}:meta", count=5000):
            m = RUN_META.fullmatch(key.decode(errors="replace"))
            if m and f"gala:{{{m.group(1)}}}:" != spare:
                runs.append(m.group(1))
        if not runs:
            return out
        pipe = client.pipeline(transaction=False)
        for run in runs:
            prefix = f"gala:{{{run}}}:"
            pipe.ttl(lease_key(prefix))
            pipe.hmget(prefix + "meta", "started", "lease_s")
        answers = pipe.execute(raise_on_error=False)  # a key that is not a gala meta answers WRONGTYPE: skipped
        sec, usec = client.time()
        now = sec + usec / 1e6
        for run, ttl, meta in zip(runs, answers[0::2], answers[1::2]):
            prefix = f"gala:{{{run}}}:"
            if isinstance(meta, Exception) or isinstance(ttl, Exception) or meta[0] is None:
                continue  # not a gala run's meta, or deleted since the scan
            started, lease_s = meta
            if ttl == -1:  # a lease without TTL: a run stopped with --keep-store
                out.kept += 1
                continue
            if ttl >= 0:
                out.live += 1
                continue
            if now - _number(started, 0.0) <= _number(lease_s, DEFAULT_LEASE_S):
                out.starting += 1  # a meta younger than its run's TTL: never sweep a run that is just starting
                continue
            if dry_run:
                out.dead.append(prefix)
                out.keys += count_keys(client, prefix)
                continue
            if not go_on():
                out.left += 1
                continue
            n, whole = delete_run(client, prefix, guarded=True, go_on=go_on)
            out.keys += n
            if whole:
                out.dead.append(prefix)
            elif client.exists(lease_key(prefix)):  # its supervisor came back with the same run id
                out.live += 1
            else:
                out.left += 1
        return out
    except RedisError as exc:
        raise store_error(url, exc) from None
    finally:
        client.close()


def _number(raw, default: float) -> float:
    try:
        return float(raw)
    except (TypeError, ValueError):
        return default


class Lease:
    """The supervisor's lease on its run: renewed by a thread of its own every third of the TTL.

    Start the thread after the workers are forked (forking a process with threads may deadlock the
    child). A renewal that fails, or finds the lease gone (the supervisor or Redis stalled
    longer than the TTL, and a sweep may have taken the run), is reported once on stderr; the run goes on.
    """

    def __init__(self, url: str, prefix: str, ttl_s: int):
        self.url, self.key, self.ttl_s = url, lease_key(prefix), ttl_s
        # a renewal that hangs must not outlast the next one (nor keep a stop waiting for long)
        self.client = client_for(url, timeout_s=min(5.0, max(1.0, ttl_s / 3)))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._renewed = time.monotonic()
        self._warned: set[str] = set()

    def renew(self) -> None:
        try:
            if not self.client.set(self.key, holder(), ex=self.ttl_s, xx=True):
                self.client.set(self.key, holder(), ex=self.ttl_s)
                self._warn("lapsed", "the run's lease had lapsed (a stall longer than its TTL?); a sweep may have deleted its keys")
        except RedisError as exc:
            self._warn("failed", f"could not renew the run's lease {self.key} ({exc}); it lapses {self.ttl_s} s after the last renewal")
        self._renewed = time.monotonic()

    def renew_if_due(self) -> None:
        if time.monotonic() - self._renewed >= self.ttl_s / 3:
            self.renew()

    def _warn(self, kind: str, text: str) -> None:
        if kind not in self._warned:  # once of each kind: a Redis down for minutes is one line, not hundreds
            self._warned.add(kind)
            print(f"gala: {text}", file=sys.stderr, flush=True)

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.wait(self.ttl_s / 3):
                self.renew()

        self.renew()
        self._thread = threading.Thread(target=loop, name="gala-lease", daemon=True)
        self._thread.start()

    def stop(self, keep: bool) -> None:
        """Stop renewing; `keep` (--keep-store) leaves a lease without TTL, so no sweep takes the run."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            if keep:
                self.client.set(self.key, KEPT)
        except RedisError as exc:
            print(f"gala: could not mark the kept run's lease {self.key} ({exc}); a sweep may delete its keys "
                  f"{self.ttl_s} s from now", file=sys.stderr, flush=True)
        finally:
            self.client.close()
