"""`gala run --target-cpu-limit`: the built-in target and a `--target-pid` process held in one cgroup
while the load runs, the limit in run.json, the cgroup gone afterwards; and what cannot be limited
refused as bad input before any results folder exists."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import psutil
import pytest
from conftest import gala
from run_helpers import REPO, start_run

from gala.contract.results import load_run
from loadtests.orchestrator.cpulimit import CpuLimit, CpuLimitError

pytestmark = pytest.mark.timeout(240)
TINY = str(REPO / "tests" / "scenarios" / "tiny-gala.yaml")


def _procs(cgroup: Path) -> set[int]:
    try:
        return {int(p) for p in (cgroup / "cgroup.procs").read_text().split()}
    except OSError:
        return set()


def _running_limit(run) -> Path | None:
    d = run.run_dir()
    try:
        info = json.loads((d / "run.json").read_text()) if d else {}
    except (OSError, ValueError):
        return None
    path = info.get("target", {}).get("cpu_limit_cgroup")
    return Path(path) if path else None


def test_the_target_and_a_target_pid_run_in_one_limited_cgroup_that_is_gone_afterwards(tmp_path):
    try:
        with CpuLimit(0.5):
            pass
    except CpuLimitError as exc:
        pytest.skip(f"no CPU cgroup can be made here: {exc}")
    sleeper = subprocess.Popen(["sleep", "120"])
    own = Path(f"/proc/{sleeper.pid}/cgroup").read_text()
    run = start_run(tmp_path / "out", "--scenario", TINY, "--target-cpu-limit", "0.3",
                    "--target-pid", str(sleeper.pid), "--quiet")
    try:
        cgroup = run.wait_for(lambda: _running_limit(run), 60, "run.json naming the cgroup")
        # the built-in target joins the --target-pid process as soon as it serves
        inside = run.wait_for(lambda: _procs(cgroup) if len(_procs(cgroup)) >= 2 else None, 60,
                              "the target in the cgroup")
        target = [psutil.Process(p).cmdline() for p in inside - {sleeper.pid}]
        assert sleeper.pid in inside and any("serve" in cmd for cmd in target), (inside, target)
        code = run.finish(timeout_s=180)
        assert code == 0, run.output()
        info = load_run(run.run_dir()).info
        t = info.target
        assert t.cpu_limit_cores == 0.3 and t.cpu_limit_mechanism in ("cgroup-v1", "cgroup-v2")
        assert t.cpu_limit_cgroup == str(cgroup) and t.cpu_limit_periods > 0
        assert t.cpu_limit_throttled_periods is not None and t.cpu_limit_throttled_s is not None
        assert sleeper.pid in t.pids
        assert not cgroup.exists()                                        # removed ...
        assert Path(f"/proc/{sleeper.pid}/cgroup").read_text() == own     # ... and the pid given back
        assert run.survivors() == []
    finally:
        if run.proc.poll() is None:
            run.kill()
        sleeper.kill()
        sleeper.wait(timeout=5)


@pytest.mark.parametrize("args, env, says", [
    (["--target-cpu-limit", "0"], {}, "--target-cpu-limit: expected a number of cores from 0.01 to"),
    (["--target-cpu-limit", "0.5", "--host", "http://127.0.0.1:9"], {},
     "--target-cpu-limit: limits the built-in target or the --target-pid processes"),
    # sysfs: a directory nobody, root included, can make a cgroup in
    (["--target-cpu-limit", "0.5"], {"GALA_CGROUP_PARENT": "/sys"},
     "--target-cpu-limit: cannot limit the target to 0.5 core(s): cgroup-v1 in /sys: cannot create gala-"),
], ids=["zero-cores", "host-without-pid", "unwritable-parent"])
def test_what_cannot_be_limited_is_one_line_of_bad_input_and_no_folder(tmp_path, args, env, says):
    out = tmp_path / "out"
    proc = gala("run", "--scenario", TINY, "--no-plan", "--out", str(out), *args, env=env, timeout_s=60)
    print(proc.stderr)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith(f"gala: {says}") and proc.stderr.count("\n") == 1
    assert not out.exists() or not any(out.iterdir())
    assert not [p for p in Path("/sys").iterdir() if p.name.startswith("gala-")]
