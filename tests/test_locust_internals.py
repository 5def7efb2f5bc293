"""The private Locust internals gala relies on are still there (pyproject pins locust to the range
this was verified on). When Locust changes them, this fails first, naming what moved, instead of a
rehearsal silently dispatching the wrong users.

`loadtests/locust_plugin/shape.py`'s PhaseDispatcher overrides UsersDispatcher internals; the shape
reads `runner.shape_last_tick`; the GC freeze reads `runner.user_greenlets`; the stats plugin relies
on the `report_to_master`/`worker_report` events and `reported_user_classes_count`. Importing Locust
patches the process with gevent, so the check runs in a child process.
"""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO

CHECK = r"""
import inspect, json
from locust import User, constant, task
from locust.dispatch import UsersDispatcher
from locust.env import Environment
from locust.event import Events
from locust.runners import LocalRunner, MasterRunner, WorkerNode
import locust

class A(User):
    wait_time = constant(1)
    @task
    def t(self):
        pass

missing = []
d = UsersDispatcher(worker_nodes=[WorkerNode("w1")], user_classes=[A])
d.new_dispatch(1, 1.0, [A])
for name in ("_user_classes", "_original_user_classes", "_users_on_workers", "_worker_node_generator",
             "_current_user_count", "_active_users", "_user_count_per_dispatch_iteration", "_dispatch_in_progress",
             "_rebalance", "_wait_between_dispatch", "_target_user_count", "_user_generator", "_dispatcher_generator"):
    if not hasattr(d, name):
        missing.append(f"UsersDispatcher.{name}")
for name in ("_dispatcher", "_add_users_on_workers", "_remove_users_from_workers", "_get_user_current_count", "_user_gen"):
    if not callable(getattr(UsersDispatcher, name, None)):
        missing.append(f"UsersDispatcher.{name}()")
params = list(inspect.signature(UsersDispatcher.new_dispatch).parameters)
if params[:4] != ["self", "target_user_count", "spawn_rate", "user_classes"]:
    missing.append(f"UsersDispatcher.new_dispatch(self, target_user_count, spawn_rate, user_classes), got {params}")
if "self._dispatcher_generator = self._dispatcher()" not in inspect.getsource(UsersDispatcher.new_dispatch):
    missing.append("new_dispatch() no longer starts self._dispatcher(): PhaseDispatcher's override would not run")
for ev in ("report_to_master", "worker_report", "spawning_complete", "request", "test_start", "test_stop", "quitting", "quit"):
    if not hasattr(Events(), ev):
        missing.append(f"events.{ev}")
env = Environment(user_classes=[A])
runner = LocalRunner(env)
for name in ("user_greenlets", "user_classes_count"):
    if not hasattr(runner, name):
        missing.append(f"LocalRunner.{name}")
src = inspect.getsource(MasterRunner)
for name in ("shape_last_tick", "reported_user_classes_count"):
    if name not in src and name not in inspect.getsource(LocalRunner.__mro__[1]):
        missing.append(f"runner.{name}")
print(json.dumps({"version": locust.__version__, "missing": missing}))
"""


def test_locust_internals_gala_overrides_are_there():
    proc = subprocess.run([sys.executable, "-c", CHECK], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not found["missing"], (
        f"Locust {found['version']} changed internals gala relies on: {', '.join(found['missing'])}. "
        "Pin locust to a verified version in pyproject.toml, or port loadtests/locust_plugin/shape.py "
        "(PhaseDispatcher) and the stats plugin to the new internals.")
