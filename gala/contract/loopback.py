"""The loopback rule: load goes only to this machine (127.0.0.0/8, ::1, localhost) unless a
scenario explicitly allows a remote target. One rule for the scenario, `gala run --host`, the
built-in target's listening address and the swarm (where a loopback URL is the pod itself)."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from gala.contract.errors import InputError


def is_loopback_host(host: str) -> bool:
    """A literal loopback address or `localhost` (no name resolution)."""
    host = (host or "").strip("[]").split("%")[0]
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: str) -> bool:
    return is_loopback_host(urlsplit(url).hostname or "")


def require_loopback(url: str, *, allow_remote: bool, where: str) -> None:
    """InputError unless `url` is an http(s) URL whose host resolves only to loopback addresses
    (or `allow_remote`). `where` names the option or field in the message."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"{where}: {url!r} is not an http(s) URL (expected e.g. http://127.0.0.1:8080)")
    if allow_remote:
        return
    try:
        port = parts.port
        addrs = {info[4][0] for info in socket.getaddrinfo(parts.hostname, port or 80)}
    except (socket.gaierror, ValueError, UnicodeError) as exc:
        raise InputError(f"{where}: cannot resolve {parts.hostname!r} ({exc})") from None
    if not all(is_loopback_host(a) for a in addrs):
        raise InputError(
            f"{where}: {url} is not a loopback address; load goes only to 127.0.0.1 unless the "
            f"scenario's target sets allow_remote_target: true"
        )
