"""Whether each scenario `class_path` names a Locust User class, known before any load (`gala check`, and
`gala run` before it creates a results folder).

Finding a class's module without importing it (loadtests/scenario/check.py) cannot tell a class from a
function or an int, nor see a module that raises when imported: only importing it can. But a user's
module imports Locust, and importing Locust patches the whole process with gevent, so the gala process
stays out of it (pyproject's import contracts). `import_faults` runs the import in a child Python process
(`python -m loadtests.locust_plugin.classcheck`) with `import_user_class`, the function Locust's own
processes use; this module imports neither Locust nor gevent until it is that child.

The child reads the class paths as JSON on stdin and writes one JSON line per user on its own copy of
stdout (what the user's code prints goes to stderr). A module that hangs or ends the process is the
first user without a line: that user's fault says so; the users after it are left to Locust.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# An import that takes longer is a module that does work at import (a locustfile defines classes); the
# child itself (Python, Locust, the plugin) starts in about 0.6 s here.
IMPORT_TIMEOUT_S = 60.0


def _text(data: bytes | str | None) -> str:
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else (data or "")


def import_faults(class_paths: dict[str, str], search_dir: Path | None,
                  timeout_s: float = IMPORT_TIMEOUT_S) -> dict[str, str]:
    """{user: what is wrong} for the class paths (user -> module:Class) that do not import as Locust User
    classes; {} when they all do. Modules beside the scenario are found in `search_dir`."""
    if not class_paths:
        return {}
    request = json.dumps({"class_paths": class_paths, "search_dir": str(search_dir) if search_dir else None})
    try:
        proc = subprocess.run([sys.executable, "-m", __name__], input=request.encode(), capture_output=True,
                              timeout=timeout_s)
        out, err = _text(proc.stdout), _text(proc.stderr)
        last = (err.strip().splitlines() or ["no message"])[-1][:200]
        ended = f"ended the checking process (exit code {proc.returncode}: {last})"
    except subprocess.TimeoutExpired as exc:
        out, ended = _text(exc.stdout), f"did not finish within {timeout_s:g} s"
    answered: dict[str, str | None] = {}
    for line in out.splitlines():
        try:
            name, message = json.loads(line)
        except (ValueError, TypeError):
            continue
        answered[name] = message
    faults = {name: message for name, message in answered.items() if message}
    unanswered = [name for name in class_paths if name not in answered]
    if unanswered:  # the first module not answered for is the one that hung or ended the process
        module = class_paths[unanswered[0]].partition(":")[0]
        faults[unanswered[0]] = (f"importing {module} {ended}; expected a module that imports "
                                 "quickly and without ending the process (a locustfile defines classes)")
    return faults


def main() -> int:
    """The child: import each class path, one JSON line [user, fault or null] each, in the order given."""
    request = json.loads(sys.stdin.read())
    results = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # what the user's module prints goes to stderr, not into the answers
    from loadtests.locust_plugin.classes import NotAUserClass, import_user_class

    search_dir = Path(request["search_dir"]) if request["search_dir"] else None
    for name, class_path in request["class_paths"].items():
        try:
            import_user_class(class_path, search_dir)
            message = None
        except NotAUserClass as exc:
            message = str(exc)
        results.write(json.dumps([name, message]) + "\n")
        results.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
