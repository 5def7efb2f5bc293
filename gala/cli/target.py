"""`gala target serve`: run the built-in reference target (a real red-envelope service) on loopback."""

from __future__ import annotations

import os


def register(sub) -> None:
    p = sub.add_parser("target", help="run the built-in reference target (grab, share, chat on loopback)",
                       description="The built-in reference target: a real red-envelope service. See loadtests/target/API.md.")
    tsub = p.add_subparsers(dest="target_command", metavar="ACTION")
    s = tsub.add_parser("serve", help="serve the target until SIGTERM/SIGINT",
                        description="Serve the built-in target. The first stdout line is `serving on http://HOST:PORT`.")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on; loopback only unless --allow-remote (default: %(default)s)")
    s.add_argument("--port", type=int, default=8765, help="port to listen on; 0 picks a free port (default: %(default)s)")
    s.add_argument("--config", metavar="FILE", help="YAML config (drop schedule, pools, odds, caps, faults); "
                   "default: the scaled-down rehearsal settings; the night's figures: loadtests/target/configs/gala-2016.yaml")
    s.add_argument("--inject", action="append", default=[], metavar="LINK:KIND=VALUE",
                   help="fault on a link (setup, grab, share, chat, admin): latency=MS, errors=RATIO (503s), "
                        "stall=SECONDS (hang, then 503); repeatable; overrides the config's faults")
    s.add_argument("--admin-token", metavar="T", help="admin bearer token; default: $GALA_ADMIN_TOKEN, else a random one printed on line 2")
    s.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host (the target has no TLS; think twice)")
    s.set_defaults(func=_serve)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _serve(args) -> int:
    import secrets

    from gala.contract.errors import InputError
    from loadtests.target.config import load_config
    from loadtests.target.faults import describe, merge_faults
    from gala.contract.loopback import is_loopback_host
    from loadtests.target.server import run

    if not is_loopback_host(args.host) and not args.allow_remote:
        raise InputError(f"--host {args.host!r} is not a loopback address; pass --allow-remote to serve beyond this machine")
    if not 0 <= args.port <= 65535:
        raise InputError(f"--port {args.port}: expected 0..65535")
    config = load_config(args.config)
    faults = merge_faults(config.faults, args.inject)
    token = args.admin_token or os.environ.get("GALA_ADMIN_TOKEN")
    printed = not token
    if printed:
        token = secrets.token_urlsafe(24)
    return run(args.host, args.port, config, token, printed, faults, describe(faults))
