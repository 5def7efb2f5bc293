"""N target processes over one port, sharing their state in Redis, under a small supervisor.

The supervisor checks the store and writes the run's meta (redis_store.prepare: exit 2 naming the
URL when Redis does not answer), binds and listens on the port itself, then forks N workers that
all accept from that one listening socket (one accept queue: a worker killed with -9 takes only the
connections it had accepted; the queue and the port stay with the others, which SO_REUSEPORT's
per-socket queues would not give). It prints `serving on http://HOST:PORT` once every worker is
ready, reports a worker's death on stderr (the others go on; it does not restart it, so a run
sees the loss), and on SIGTERM/SIGINT stops the workers and deletes the run's keys (unless
--keep-store). Workers get SIGTERM if the supervisor dies (PR_SET_PDEATHSIG): none outlives it.
A supervisor killed with -9 cannot tidy up, so it holds a lease on its run while it lives
(lease.py) and, at start, sweeps the keys of runs whose lease lapsed.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import sys
import time

from .config import LinkFaults, TargetConfig
from .launch import redact
from .lease import DEFAULT_LEASE_S, Lease, sweep
from .server import bind, event_loop_runner, serve, url_of

READY_TIMEOUT_S = 30.0
STOP_GRACE_S = 5.0
PR_SET_PDEATHSIG = 1
SWEEP_BUDGET_S = 10.0  # at start, at most this long sweeping dead runs (~2.5 M keys), then serve; the next start goes on


def _die_with_parent(parent: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the supervisor's stop still reaches every worker
        pass
    if os.getppid() != parent:  # the supervisor died before prctl took effect
        os._exit(1)


def _worker(index: int, sock, config: TargetConfig, url: str, prefix: str, admin_token: str,
            faults: dict[str, LinkFaults], link_cpu: bool, ready_fd: int) -> int:
    from .redis_store import RedisStore

    seed = None if config.seed is None else config.seed * 1000 + index  # distinct dice per worker
    store = RedisStore(config, url, prefix, seed=seed)

    def ready() -> None:
        os.write(ready_fd, b"1")
        os.close(ready_fd)

    event_loop_runner()(serve(sock, store, admin_token, faults, [], link_cpu, ready))
    return 0


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exited with code {os.WEXITSTATUS(status) if os.WIFEXITED(status) else status}"


def run_multi(host: str, port: int, config: TargetConfig, admin_token: str, token_printed: bool,
              faults: dict[str, LinkFaults], fault_specs: list[str], *, processes: int, store_url: str,
              run_id: str, keep_store: bool, link_cpu: bool = True, lease_s: int = DEFAULT_LEASE_S) -> int:
    from .redis_store import cleanup, prepare

    prefix = prepare(store_url, run_id, config, lease_s)  # InputError (exit 2) when the store does not answer
    lease = Lease(store_url, prefix, lease_s)
    _sweep_dead_runs(store_url, prefix, lease)
    code = None
    try:
        code = _serve(host, port, config, admin_token, token_printed, faults, fault_specs, processes, store_url,
                      prefix, link_cpu, lease)
        return code
    finally:  # also when the port or the workers failed: nothing is left to the sweep that the supervisor can tidy
        lease.stop(keep=keep_store)
        if not keep_store:
            try:
                cleanup(store_url, prefix)
            except Exception as exc:  # noqa: BLE001 - stopping must not fail over a tidy-up
                print(f"gala: could not delete the run's keys {prefix}* ({exc}); a sweep will, "
                      f"once its lease lapses", file=sys.stderr)
        if code is not None:  # a refused --port stays one line
            print("target stopped", file=sys.stderr, flush=True)


def _sweep_dead_runs(store_url: str, prefix: str, lease: Lease) -> None:
    """Delete the keys of runs whose supervisor died (their lease lapsed); one line on stderr when any."""
    try:
        swept = sweep(store_url, spare=prefix, between=lease.renew_if_due, budget_s=SWEEP_BUDGET_S)
    except Exception as exc:  # noqa: BLE001 - a failed sweep must not keep the target from serving
        print(f"gala: could not sweep dead runs' keys from {redact(store_url)} ({exc})", file=sys.stderr, flush=True)
        return
    if swept.dead or swept.left:
        print(f"gala: {swept.line(redact(store_url), dry_run=False)}", file=sys.stderr, flush=True)


def _serve(host, port, config, admin_token, token_printed, faults, fault_specs, processes, store_url, prefix,
           link_cpu, lease: Lease) -> int:
    sock = bind(host, port)
    url = url_of(host, sock)
    me, workers, pipes = os.getpid(), {}, {}
    sys.stdout.flush()
    sys.stderr.flush()
    for index in range(processes):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                os.close(r)
                _die_with_parent(me)
                code = _worker(index, sock, config, store_url, prefix, admin_token, faults, link_cpu, w)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        os.close(w)
        workers[pid], pipes[r] = index, pid
    sock.close()  # the workers hold it now
    lease.start()  # a thread: only once every fork is done

    stopping = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.append(True))
    deadline = time.monotonic() + READY_TIMEOUT_S
    while pipes and not stopping and time.monotonic() < deadline:
        ready, _, _ = select.select(list(pipes), [], [], 0.2)
        for r in ready:
            os.read(r, 1)
            os.close(r)
            pipes.pop(r)
        if any(os.waitpid(pid, os.WNOHANG)[0] for pid in list(workers)):
            break
    if pipes or stopping:
        print(f"gala: target workers did not all start within {READY_TIMEOUT_S:.0f} s; see the log above",
              file=sys.stderr, flush=True)
        _stop(workers)
        return 1
    print(f"serving on {url}", flush=True)
    if token_printed:
        print(f"admin token: {admin_token}", flush=True)
    if fault_specs:
        print(f"injected faults: {' '.join(fault_specs)}", flush=True)
    print(f"processes: {processes} sharing {redact(store_url)} under keys {prefix}*, "
          f"lease {lease.ttl_s} s (pids {' '.join(map(str, workers))})", flush=True)

    code = _watch(workers, processes, stopping)
    _stop(workers)
    return code


def _watch(workers: dict[int, int], processes: int, stopping: list) -> int:
    """Wait for a stop signal; report each worker that dies meanwhile. 1 if every worker died."""
    while not stopping:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            pid, status = 0, 0
        if pid and pid in workers:
            workers.pop(pid)
            print(f"gala: target worker {pid} {_describe(status)}; {len(workers)} of {processes} still serving",
                  file=sys.stderr, flush=True)
            if not workers:
                return 1
            continue
        time.sleep(0.1)
    return 0


def _stop(workers: dict[int, int]) -> None:
    for pid in workers:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + STOP_GRACE_S
    for pid in list(workers):
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    break
            except ChildProcessError:
                break
            time.sleep(0.05)
        else:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        workers.pop(pid, None)
