"""Node emulation: a cgroup CPU limit on real CPU-bound processes, on and off, always removed.

The measuring tests compare a limited process with the same process unlimited in the same test
(a ratio: 0.2 core against a whole one is a fault five times larger than this machine's noise).
Run them under the load lock: a concurrent load test would take the core they measure.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from gala.contract.errors import InputError
from loadtests.orchestrator.cpulimit import CpuLimit, CpuLimitError, CpuLimitRecord

REPO = Path(__file__).resolve().parent.parent
BUSY = [sys.executable, "-c", "while True: pass"]
# sleeps, then forks two busy children and spins itself: three processes born under the limit
FORKER = textwrap.dedent("""
    import os, time
    time.sleep(float(os.environ.get("GALA_TEST_DELAY", "0.3")))
    for _ in range(2):
        if os.fork() == 0:
            break
    while True:
        pass
""")


def _tree_cpu_s(pid: int) -> float:
    procs = [psutil.Process(pid)]
    procs += procs[0].children(recursive=True)
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def cores_used(pid: int, window_s: float) -> float:
    """CPU-seconds per wall second used by `pid` and its descendants over `window_s`."""
    c0, t0 = _tree_cpu_s(pid), time.monotonic()
    time.sleep(window_s)
    return (_tree_cpu_s(pid) - c0) / (time.monotonic() - t0)


def _kill(proc: subprocess.Popen) -> None:
    for child in psutil.Process(proc.pid).children(recursive=True):
        child.kill()
    proc.kill()
    proc.wait(timeout=5)


@pytest.fixture(scope="module")
def cgroups_work():
    """Skip (saying why) where this machine offers no cgroup with the cpu controller (not root, say)."""
    try:
        with CpuLimit(0.5):
            pass
    except CpuLimitError as exc:
        pytest.skip(f"no CPU cgroup can be made here: {exc}")


@pytest.fixture
def busy():
    proc = subprocess.Popen(BUSY)
    yield proc
    _kill(proc)


def test_a_cpu_bound_process_gets_its_limit_and_a_whole_core_again_without(cgroups_work, busy):
    free = cores_used(busy.pid, 1.0)
    with CpuLimit(0.2) as limit:
        limit.apply(busy.pid)
        assert limit.pids() == [busy.pid]
        limited = cores_used(busy.pid, 1.5)
        record = limit.record()
    after = cores_used(busy.pid, 1.0)
    print(f"unlimited {free:.3f} core, limited to 0.2: {limited:.3f} core (ratio {limited / free:.3f}), "
          f"limit removed: {after:.3f}; {record}")
    assert 0.1 <= limited / free <= 0.45   # ~0.2; unlimited the ratio would be ~1
    assert after / free > 0.6              # off again: the process has its core back
    assert record.mechanism in ("cgroup-v1", "cgroup-v2") and record.cores == 0.2
    assert record.throttled_periods > 0 and record.throttled_s > 0
    assert not Path(record.cgroup).exists()


def test_processes_forked_after_the_move_are_born_under_the_limit(cgroups_work, busy):
    free_one = cores_used(busy.pid, 1.0)
    forker = subprocess.Popen([sys.executable, "-c", FORKER])
    try:
        with CpuLimit(0.2) as limit:
            limit.apply(forker.pid)  # while it sleeps: its children do not exist yet
            deadline = time.monotonic() + 10
            while len(psutil.Process(forker.pid).children()) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            tree = [forker.pid] + [c.pid for c in psutil.Process(forker.pid).children()]
            assert sorted(limit.pids()) == sorted(tree) and len(tree) == 3
            three = cores_used(forker.pid, 1.5)
        print(f"three busy processes under 0.2 core: {three:.3f} core; one unlimited: {free_one:.3f}")
        # unconfined, three spinning processes would take both cores: 2x one process, not 0.2x
        assert three / free_one <= 0.45
        assert not limit.path.exists()
    finally:
        _kill(forker)


def test_children_alive_at_the_move_go_with_their_parent(cgroups_work):
    forker = subprocess.Popen([sys.executable, "-c", FORKER.replace("while True:\n    pass", "time.sleep(30)")],
                              env=dict(os.environ, GALA_TEST_DELAY="0"))
    try:
        deadline = time.monotonic() + 10
        while len(psutil.Process(forker.pid).children()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        with CpuLimit(0.5) as limit:
            limit.apply(forker.pid)
            assert len(limit.pids()) == 3
            path = limit.path
        assert not path.exists()
    finally:
        _kill(forker)


def test_an_exception_inside_the_block_still_removes_the_cgroup_and_frees_the_process(cgroups_work, busy):
    own = Path(f"/proc/{busy.pid}/cgroup").read_text()
    with pytest.raises(RuntimeError):
        with CpuLimit(0.3) as limit:
            limit.apply(busy.pid)
            assert Path(f"/proc/{busy.pid}/cgroup").read_text() != own
            raise RuntimeError("boom")
    assert not limit.path.exists()
    assert Path(f"/proc/{busy.pid}/cgroup").read_text() == own  # back where it came from
    assert limit.remove() is True  # removing again is harmless


SCRIPT = textwrap.dedent("""
    import subprocess, sys
    from loadtests.orchestrator.cpulimit import CpuLimit
    child = subprocess.Popen(["sleep", "30"])
    limit = CpuLimit(0.3)
    limit.apply(child.pid)
    print(limit.path, child.pid, flush=True)
    sys.stdin.readline()          # SIGTERM or SIGKILL arrives here, or a line to exit on
    sys.exit(0)                   # no remove(): the interpreter's exit does it
""")


@pytest.mark.parametrize("how", ["exit", "SIGTERM", "SIGKILL"])
def test_removed_at_interpreter_exit_and_on_sigterm_and_swept_after_sigkill(cgroups_work, how):
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    line = proc.stdout.readline().split()
    path, sleeper = Path(line[0]), int(line[1])
    assert path.name.startswith(f"gala-{proc.pid}-") and path.is_dir()
    if how == "exit":
        proc.stdin.write("done\n")
        proc.stdin.flush()
    else:
        proc.send_signal(getattr(signal, how))
    code = proc.wait(timeout=20)
    os.kill(sleeper, signal.SIGKILL)  # orphaned by the script's end
    if how == "SIGKILL":
        assert path.is_dir()  # nothing runs on SIGKILL: the next limit made in that parent sweeps it
        with CpuLimit(0.5):
            assert not path.exists()
    else:
        assert code == (0 if how == "exit" else -signal.SIGTERM)
        assert not path.exists()


def test_where_no_cgroup_can_be_made_one_line_says_what_was_tried_and_nothing_is_left(tmp_path):
    plain, fake_v2 = tmp_path / "plain", tmp_path / "fake-v2"
    plain.mkdir()
    fake_v2.mkdir()
    # looks like a v2 cgroup with cpu, but a directory made in it is only a directory
    (fake_v2 / "cgroup.controllers").write_text("cpu io\n")
    (fake_v2 / "cgroup.subtree_control").write_text("cpu\n")
    where = [("cgroup-v2", tmp_path / "missing"), ("cgroup-v2", plain), ("cgroup-v2", fake_v2),
             ("cgroup-v1", plain), ("cgroup-v1", Path("/sys"))]  # sysfs: not writable even by root
    with pytest.raises(CpuLimitError) as err:
        CpuLimit(0.25, where=where, label="--target-cpu-limit").apply(1)
    msg = str(err.value)
    print(msg)
    assert isinstance(err.value, InputError) and err.value.exit_code == 2 and "\n" not in msg
    assert msg.startswith("--target-cpu-limit: cannot limit the target to 0.25 core(s): ")
    assert "no such directory" in msg and "not a cgroup v2 directory" in msg
    assert "the new directory has no cpu.max" in msg and "no cpu.cfs_period_us" in msg
    assert "cgroup-v1 in /sys: cannot create" in msg
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(
        ["plain", "fake-v2", "cgroup.controllers", "cgroup.subtree_control"])
    assert not [p for p in Path("/sys").iterdir() if p.name.startswith("gala-")]


def test_no_hierarchy_at_all_is_an_input_error():
    with pytest.raises(CpuLimitError, match="no cgroup hierarchy with the cpu controller is mounted"):
        CpuLimit(0.5, where=[]).create()


@pytest.mark.parametrize("cores", [0, -1, 0.001, 10_000, "half", float("nan")])
def test_cores_outside_a_sane_range_are_refused(cores):
    with pytest.raises(CpuLimitError, match=r"expected a number of cores from 0\.01 to \d+"):
        CpuLimit(cores)


@pytest.mark.parametrize("period_us", [999, 1_000_001])
def test_a_period_outside_the_kernels_range_is_refused(period_us):
    with pytest.raises(CpuLimitError, match=r"expected a period from 1000 to 1000000 us"):
        CpuLimit(0.5, period_us=period_us)


def test_the_record_for_run_json():
    rec = CpuLimitRecord(0.25, "cgroup-v1", "/sys/fs/cgroup/cpu/gala-1-abc", 50, 40, 1.23456)
    assert rec.as_run_json() == {
        "cpu_limit_cores": 0.25, "cpu_limit_mechanism": "cgroup-v1", "cpu_limit_cgroup": "/sys/fs/cgroup/cpu/gala-1-abc",
        "cpu_limit_periods": 50, "cpu_limit_throttled_periods": 40, "cpu_limit_throttled_s": 1.235}
