"""`gala target serve`: run the built-in reference target (a real red-envelope service) on loopback;
`gala target sweep`: delete the Redis keys of runs whose supervisor died."""

from __future__ import annotations

import argparse
import os
import re

from gala.contract.errors import ExitCode, exit_codes_help

MAX_PROCESSES = 64
# --lease-ttl: the default is loadtests.target.lease.DEFAULT_LEASE_S (not imported: it would import redis-py
# into every gala command); below 2 s a stall of the supervisor or of Redis would lose a live run.
DEFAULT_LEASE_S, LEASE_RANGE_S = 60, (2, 3600)
SWEEP_EPILOG = exit_codes_help(ExitCode.OK, ExitCode.BAD_INPUT, ok="swept, or nothing to sweep (--dry-run: counted)")


def register(sub) -> None:
    p = sub.add_parser("target", help="run the built-in reference target (grab, share, chat on loopback)",
                       description="The built-in reference target: a real red-envelope service. See loadtests/target/API.md.")
    tsub = p.add_subparsers(dest="target_command", metavar="ACTION")
    s = tsub.add_parser("serve", help="serve the target until SIGTERM/SIGINT",
                        description="Serve the built-in target. The first stdout line is `serving on http://HOST:PORT`. "
                                    "One process with in-memory state by default; --processes N --store redis://... "
                                    "runs N processes on one port sharing their state in Redis.")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on; loopback only unless --allow-remote (default: %(default)s)")
    s.add_argument("--port", type=int, default=8765, help="port to listen on; 0 picks a free port (default: %(default)s)")
    s.add_argument("--config", metavar="FILE", help="YAML config (drop schedule, pools, odds, caps, faults); "
                   "default: the scaled-down rehearsal settings; the night's figures: loadtests/target/configs/gala-2016.yaml")
    s.add_argument("--inject", action="append", default=[], metavar="LINK:KIND=VALUE",
                   help="fault on a link (setup, grab, share, chat, admin): latency=MS, errors=RATIO (503s), "
                        "stall=SECONDS (hang, then 503); repeatable; overrides the config's faults")
    s.add_argument("--admin-token", metavar="T", help="admin bearer token; default: $GALA_ADMIN_TOKEN, else a random one printed on line 2")
    s.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host or --store (the target has no TLS; think twice)")
    s.add_argument("--store", metavar="URL", help="share state in Redis, e.g. redis://127.0.0.1:6379/0 (default: in memory, one process)")
    s.add_argument("--processes", type=int, default=1, metavar="N",
                   help=f"server processes on the one port, 1..{MAX_PROCESSES}; more than 1 needs --store (default: %(default)s)")
    s.add_argument("--run-id", metavar="ID", help="the run's key prefix in the store, gala:{ID}: (letters, digits, - and _; "
                   "default: a fresh random one, so runs never see each other's data)")
    s.add_argument("--keep-store", action="store_true", help="leave the run's keys in the store after stopping (default: delete "
                   "them); a kept run is never swept")
    s.add_argument("--lease-ttl", type=int, default=DEFAULT_LEASE_S, metavar="SECONDS",
                   help=f"with --store: the supervisor's lease on its run's keys, renewed every third of it; once it lapses "
                        f"(the supervisor was killed), the next supervisor's start or `gala target sweep` deletes them; "
                        f"{LEASE_RANGE_S[0]}..{LEASE_RANGE_S[1]} (default: %(default)s)")
    s.add_argument("--no-link-cpu", dest="link_cpu", action="store_false",
                   help="do not time each link's handlers (GET /admin/cpu; on by default, a few per cent of CPU)")
    s.set_defaults(func=_serve)
    w = tsub.add_parser("sweep", help="delete the Redis keys of runs whose supervisor died (their lease lapsed)",
                        description="Delete the keys gala:{RUN}:* of every run in the store whose supervisor's lease\n"
                                    "lapsed and whose start is older than its lease TTL (a supervisor killed with -9\n"
                                    "cannot tidy up). Live runs and runs stopped with --keep-store are left alone; no\n"
                                    "other key is touched. Prints one line: what it swept and what it left alone.\n"
                                    "Every `gala target serve --store` sweeps the same way when it starts.",
                        epilog=SWEEP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    w.add_argument("--store", metavar="URL", required=True, help="the Redis, e.g. redis://127.0.0.1:6379/0")
    w.add_argument("--dry-run", action="store_true", help="only count and name the dead runs; delete nothing")
    w.add_argument("--allow-remote", action="store_true", help="allow a --store beyond loopback")
    w.set_defaults(func=_sweep)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _check_store(url: str, allow_remote: bool) -> None:
    from urllib.parse import urlsplit

    from gala.contract.errors import InputError
    from gala.contract.loopback import is_loopback_host
    from loadtests.target.launch import check_store_url

    check_store_url(url)
    if not is_loopback_host(urlsplit(url).hostname) and not allow_remote:
        raise InputError(f"--store {url!r} is not on a loopback address; pass --allow-remote to use it")


def _sweep(args) -> int:
    from loadtests.target.launch import redact
    from loadtests.target.lease import sweep

    _check_store(args.store, args.allow_remote)
    print(sweep(args.store, dry_run=args.dry_run).line(redact(args.store), args.dry_run), flush=True)
    return int(ExitCode.OK)


def _serve(args) -> int:
    import secrets

    from gala.contract.errors import InputError
    from gala.contract.loopback import is_loopback_host
    from loadtests.target.config import load_config
    from loadtests.target.faults import describe, merge_faults

    if not is_loopback_host(args.host) and not args.allow_remote:
        raise InputError(f"--host {args.host!r} is not a loopback address; pass --allow-remote to serve beyond this machine")
    if not 0 <= args.port <= 65535:
        raise InputError(f"--port {args.port}: expected 0..65535")
    if not 1 <= args.processes <= MAX_PROCESSES:
        raise InputError(f"--processes {args.processes}: expected 1..{MAX_PROCESSES}")
    if args.processes > 1 and not args.store:
        raise InputError(f"--processes {args.processes} needs --store redis://HOST:PORT/DB: "
                         "in-memory state cannot be shared between processes")
    if args.run_id is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", args.run_id):
        raise InputError(f"--run-id {args.run_id!r}: expected 1..64 letters, digits, '-' or '_'")
    if not LEASE_RANGE_S[0] <= args.lease_ttl <= LEASE_RANGE_S[1]:
        raise InputError(f"--lease-ttl {args.lease_ttl}: expected {LEASE_RANGE_S[0]}..{LEASE_RANGE_S[1]} seconds")
    if args.store:
        _check_store(args.store, args.allow_remote)
    config = load_config(args.config)
    faults = merge_faults(config.faults, args.inject)
    token = args.admin_token or os.environ.get("GALA_ADMIN_TOKEN")
    printed = not token
    if printed:
        token = secrets.token_urlsafe(24)
    if args.store:
        from loadtests.target.supervisor import run_multi

        return run_multi(args.host, args.port, config, token, printed, faults, describe(faults),
                         processes=args.processes, store_url=args.store, run_id=args.run_id or secrets.token_hex(6),
                         keep_store=args.keep_store, link_cpu=args.link_cpu, lease_s=args.lease_ttl)
    from loadtests.target.server import run

    return run(args.host, args.port, config, token, printed, faults, describe(faults), link_cpu=args.link_cpu)
