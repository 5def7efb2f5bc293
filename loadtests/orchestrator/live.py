"""The live line `gala run` shows once a second, from the stats plugin's `live.json`."""

from __future__ import annotations

import shutil
import sys
from typing import TextIO


def live_line(live: dict | None, *, elapsed_s: float, generator_cpu: float | None = None,
              links: list[str] | None = None) -> str:
    """`[ 12s] share-burst  users 260  grab 512/s  share 230/s  chat 0/s  fail 3  gen 64%`."""
    if not live:
        return f"starting Locust… ({elapsed_s:.0f} s)"
    t = live.get("t_s", elapsed_s)
    parts = [f"[{float(t):4.0f}s]", f"{live.get('phase') or '-':<12}", f"users {live.get('users', 0)}"]
    stats = live.get("links") or {}
    names = [n for n in (links or []) if n in stats] + [n for n in stats if n not in (links or [])]
    failures = 0
    for name in names:
        s = stats[name] or {}
        parts.append(f"{name} {float(s.get('rps') or 0):.0f}/s")
        failures += int(s.get("failures") or 0)
    parts.append(f"fail {failures}")
    if generator_cpu is not None:
        parts.append(f"gen {generator_cpu:.0f}%")
    return "  ".join(parts)


class LivePrinter:
    """One line rewritten in place on a terminal; one line per update otherwise; nothing when quiet."""

    def __init__(self, stream: TextIO = sys.stdout, *, quiet: bool = False):
        self.stream = stream
        self.quiet = quiet
        self.tty = stream.isatty()
        self._open = False

    def update(self, line: str) -> None:
        if self.quiet:
            return
        if self.tty:
            width = shutil.get_terminal_size((100, 20)).columns - 1
            self.stream.write("\r\x1b[K" + line[:width])
            self._open = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def say(self, line: str) -> None:
        """A message on its own line (ending the live line first)."""
        self.end()
        if not self.quiet:
            print(line, file=self.stream, flush=True)

    def end(self) -> None:
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False
