"""The shape's stages and the dispatcher: per-class user counts are exact through every phase change
(overlapping phases add up; a class leaving does not take another class's users with it).

Importing Locust monkey-patches the whole process with gevent, so the checks run in a child process
(`python tests/test_locust_shape.py`), never inside the pytest session that other tests share.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_dispatcher_and_shape_checks_pass_in_a_locust_process():
    proc = subprocess.run([sys.executable, __file__], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.split() == [f"ok:{name}" for name in CHECKS], proc.stdout


def _classes():
    from locust import User, constant, task

    class A(User):
        wait_time = constant(1)

        @task
        def t(self):
            pass

    class B(A):
        pass

    class C(A):
        pass

    return {"A": A, "B": B, "C": C}


def dispatch(d, counts: dict[str, int], rate: float = 1000.0) -> dict[str, dict[str, int]]:
    classes = []
    for name, n in counts.items():
        CLASSES[name].fixed_count = n
        classes.append(CLASSES[name])
    d.new_dispatch(sum(counts.values()), rate, classes)
    last = None
    for last in d:
        pass
    return last


def per_class(users_on_workers: dict[str, dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for counts in users_on_workers.values():
        for k, v in counts.items():
            out[k] = out.get(k, 0) + v
    return out


def check_per_class_counts_are_exact_across_stages_and_workers():
    from locust.runners import WorkerNode
    from loadtests.locust_plugin.shape import PhaseDispatcher
    A, B, C = CLASSES["A"], CLASSES["B"], CLASSES["C"]
    workers = [WorkerNode(f"w{i}") for i in range(3)]
    d = PhaseDispatcher(worker_nodes=workers, user_classes=[A, B, C])
    assert per_class(dispatch(d, {"A": 100})) == {"A": 100, "B": 0, "C": 0}
    assert per_class(dispatch(d, {"A": 130, "B": 50})) == {"A": 130, "B": 50, "C": 0}   # overlap adds up
    # A leaves while B stays: Locust's own dispatcher would remove the newest users (B) first.
    assert per_class(dispatch(d, {"B": 50})) == {"A": 0, "B": 50, "C": 0}
    # Same total, different classes: still re-dispatched.
    final = dispatch(d, {"C": 50})
    assert per_class(final) == {"A": 0, "B": 0, "C": 50}
    assert sorted(sum(c.values()) for c in final.values()) == [16, 17, 17]  # spread over workers


def check_ramp_respects_the_spawn_rate_in_steps():
    from locust.runners import WorkerNode
    from loadtests.locust_plugin.shape import PhaseDispatcher
    A, B, C = CLASSES["A"], CLASSES["B"], CLASSES["C"]
    d = PhaseDispatcher(worker_nodes=[WorkerNode("w")], user_classes=[A, B, C])
    A.fixed_count, B.fixed_count = 6, 4
    d.new_dispatch(10, 5.0, [A, B])
    steps = [per_class(s) for s in d]
    assert [sum(s.values()) for s in steps] == [5, 10]
    assert steps[0]["A"] == 3 and steps[0]["B"] == 2  # classes interleaved, not one after the other


def check_rebalance_after_a_worker_joins_keeps_class_counts():
    from locust.runners import WorkerNode
    from loadtests.locust_plugin.shape import PhaseDispatcher
    A, B, C = CLASSES["A"], CLASSES["B"], CLASSES["C"]
    w1, w2 = WorkerNode("w1"), WorkerNode("w2")
    d = PhaseDispatcher(worker_nodes=[w1], user_classes=[A, B, C])
    dispatch(d, {"A": 7, "B": 3})
    d.add_worker(w2)
    after = dispatch(d, {"A": 7, "B": 3})
    assert per_class(after) == {"A": 7, "B": 3, "C": 0}
    assert all(sum(c.values()) == 5 for c in after.values())


def check_shape_stages_follow_the_phases():
    from loadtests.scenario import load_scenario
    from loadtests.locust_plugin.shape import ScenarioShape, StageClasses
    A = CLASSES["A"]
    sc = load_scenario(REPO / "loadtests/scenarios/feb1.yaml", duration_scale=0.1)
    classes = {n: type(n, (A,), {}) for n in sc.users}
    shape_cls = type("S", (ScenarioShape,), {"abstract": False, "scenario": sc, "user_classes_by_name": classes})
    shape = shape_cls()
    assert shape.stage(1.0)[0] == {"GrabUser": 250}
    assert shape.stage(3.0)[0] == {"GrabUser": 310, "ShareUser": 200}   # grab and share-burst overlap
    assert shape.stage(5.5)[0] == {"GrabUser": 60, "ShareUser": 200, "ChatUser": 250}
    assert shape.stage(8.5)[0] == {"ChatUser": 250}
    assert StageClasses([A], {"A": 1}) != StageClasses([A], {"A": 2})
    assert StageClasses([A], {"A": 1}) == StageClasses([A], {"A": 1})


def check_ticks_apply_every_stage_on_time():
    """Locust ticks once a second (minus the tick's own time); every stage must still start at its edge."""
    from loadtests.scenario import load_scenario
    from loadtests.locust_plugin.shape import ScenarioShape
    sc = load_scenario(REPO / "tests/scenarios/tiny-gala.yaml")  # edges at 0, 1.5, 2.5, 3, 4, 5
    clock = [0.0]

    class Simulated(ScenarioShape):
        abstract = False
        scenario = sc
        user_classes_by_name = {n: type(n, (CLASSES["A"],), {}) for n in sc.users}

        def get_run_time(self):
            return clock[0]

        def _sleep(self, seconds):
            clock[0] += seconds

    shape, applied = Simulated(), []
    while True:  # Locust's shape_worker: tick, then sleep what is left of one second
        started = clock[0]
        tick = shape.tick()
        if tick is None:
            break
        if not applied or applied[-1][1] != tick[2].counts:
            applied.append((clock[0], tick[2].counts))
        clock[0] += max(1.0 - (clock[0] - started), 0.0) + 0.0003  # a little scheduling delay
    edges = [t for t, _ in applied]
    assert [round(t, 1) for t in edges] == [0.0, 1.5, 2.5, 3.0, 4.0], applied
    assert applied[3][1] == {"GrabUser": 3, "ShareUser": 10, "ChatUser": 10}  # share-burst and chat overlap
    assert shape.finished and clock[0] >= 5.0


CHECKS = ["per_class_counts_are_exact_across_stages_and_workers", "ramp_respects_the_spawn_rate_in_steps",
          "rebalance_after_a_worker_joins_keeps_class_counts", "shape_stages_follow_the_phases",
          "ticks_apply_every_stage_on_time"]

if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    CLASSES = _classes()
    for name in CHECKS:
        globals()[f"check_{name}"]()
        print(f"ok:{name}", flush=True)
