"""Fault injection for rehearsing bad days: a link answers slowly, with 503s, or hangs.

Specs come from `--inject LINK:KIND=VALUE` (repeatable) and the config file's `faults:` mapping.
Faults run before a handler touches state, so an injected failure never changes anything.
"""

from __future__ import annotations

import asyncio
import random

from gala.contract.errors import InputError

from .config import LINKS, LinkFaults

# --inject kind -> LinkFaults field
_KINDS = {"latency": "latency_ms", "errors": "errors", "stall": "stall_s"}
_USAGE = f"expected LINK:latency=MS, LINK:errors=RATIO or LINK:stall=SECONDS with LINK one of {', '.join(LINKS)}"


def parse_inject(spec: str) -> tuple[str, str, float]:
    """Parse one `LINK:KIND=VALUE` spec into (link, LinkFaults field, value); InputError if malformed."""
    link, sep, rest = spec.partition(":")
    kind, eq, value = rest.partition("=")
    link, kind = link.strip(), kind.strip()
    if not sep or not eq or link not in LINKS or kind not in _KINDS:
        raise InputError(f"--inject {spec!r}: {_USAGE}")
    try:
        number = float(value)
    except ValueError:
        raise InputError(f"--inject {spec!r}: {value!r} is not a number; {_USAGE}") from None
    field = _KINDS[kind]
    try:
        LinkFaults(**{field: number})
    except Exception:
        limits = {"latency_ms": "0..600000 ms", "errors": "a ratio in 0..1", "stall_s": "0..3600 s"}[field]
        raise InputError(f"--inject {spec!r}: {kind} must be {limits}") from None
    return link, field, number


def merge_faults(base: dict[str, LinkFaults], specs: list[str]) -> dict[str, LinkFaults]:
    """Config-file faults overlaid with --inject specs (the command line wins, field by field)."""
    merged = {link: f.model_dump() for link, f in base.items()}
    for spec in specs:
        link, field, value = parse_inject(spec)
        merged.setdefault(link, {})[field] = value
    return {link: LinkFaults(**f) for link, f in merged.items() if LinkFaults(**f).active}


def describe(faults: dict[str, LinkFaults]) -> list[str]:
    """Faults back as `LINK:KIND=VALUE` strings, for logs and the results folder."""
    out = []
    for link, f in sorted(faults.items()):
        for kind, field in _KINDS.items():
            value = getattr(f, field)
            if value:
                out.append(f"{link}:{kind}={value:g}")
    return out


async def apply(f: LinkFaults, rng: random.Random) -> str | None:
    """Sleep as injected; return the reason to answer 503 instead of running the handler, or None."""
    if f.latency_ms:
        await asyncio.sleep(f.latency_ms / 1000.0)
    if f.stall_s:
        await asyncio.sleep(f.stall_s)
        return "injected stall"
    if f.errors and rng.random() < f.errors:
        return "injected error"
    return None
