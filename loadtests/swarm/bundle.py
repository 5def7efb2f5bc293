"""A results folder carried in a pod's log: tar.gz, base64, between two marker lines.

The master writes it to stdout after its run (k8s/entrypoint.py); `gala swarm collect` reads the
pod log through the API and unpacks it. This needs no exec and no writable root filesystem, and the
sha256 on the begin marker tells a truncated or rotated log from a whole one.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import tarfile
from pathlib import Path

BEGIN = "----- gala-results-begin"
END = "----- gala-results-end -----"
_BEGIN_RE = re.compile(r"^----- gala-results-begin run_id=(?P<run_id>\S+) sha256=(?P<sha>[0-9a-f]{64}) bytes=(?P<n>\d+) -----$")
LINE_CHARS = 76


class BundleError(Exception):
    """A log that does not hold a whole results bundle (not bad input: a run or log problem)."""


def pack(folder: Path) -> str:
    """The folder as marker-delimited base64 lines (the folder's name is the tarball's top level)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    raw = buf.getvalue()
    b64 = base64.b64encode(raw).decode("ascii")
    body = "\n".join(b64[i:i + LINE_CHARS] for i in range(0, len(b64), LINE_CHARS))
    head = f"{BEGIN} run_id={folder.name} sha256={hashlib.sha256(raw).hexdigest()} bytes={len(raw)} -----"
    return f"{head}\n{body}\n{END}\n"


def unpack(log_text: str, dest: Path) -> Path:
    """Extract the last whole bundle in a log into dest/<run_id>/; return that folder."""
    lines = log_text.splitlines()
    starts = [i for i, line in enumerate(lines) if _BEGIN_RE.match(line.strip())]
    if not starts:
        raise BundleError("master log: no results bundle (the run has not finished, or the log was rotated)")
    start = starts[-1]
    m = _BEGIN_RE.match(lines[start].strip())
    try:
        end = next(i for i in range(start + 1, len(lines)) if lines[i].strip() == END)
    except StopIteration:
        raise BundleError(f"master log: results bundle of {m['run_id']} has no end marker (log truncated)") from None
    raw = base64.b64decode("".join(line.strip() for line in lines[start + 1:end]))
    if len(raw) != int(m["n"]) or hashlib.sha256(raw).hexdigest() != m["sha"]:
        raise BundleError(f"master log: results bundle of {m['run_id']} is damaged (size or sha256 differs)")
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as tar:
        tops = {Path(n).parts[0] for n in tar.getnames()}
        if tops != {m["run_id"]}:
            raise BundleError(f"master log: bundle holds {sorted(tops)}, expected only {m['run_id']}/")
        tar.extractall(dest, filter="data")  # 'data' refuses absolute paths, links out, devices
    return dest / m["run_id"]
