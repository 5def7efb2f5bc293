"""A scenario's `class_path` that names no Locust User class is bad input before any load: real modules
beside a real scenario, through the real `gala check` and `gala run` (subprocesses), each fault one line
on the class_path's line, exit 2; the gala process itself never imports Locust (the import runs in a
child process). No load is sent here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import REPO, gala
from loadtests.locust_plugin.classcheck import import_faults

MODULES = {
    "mine.py": '''
from locust import HttpUser, task

NUMBER = 42
MAYBE = None


def helper():
    pass


class Plain:
    pass


class Good(HttpUser):
    @task
    def t(self):
        pass


helper_alias = helper
''',
    "raises.py": 'raise RuntimeError("the config server is down\\nsecond line")\nclass U: pass\n',
    "exits.py": 'import sys\nprint(\'["K", null]\')  # printed output cannot pass for an answer\nsys.exit("bye")\nclass U: pass\n',
    "dies.py": "import os\nos._exit(3)\nclass U: pass\n",
    "needs.py": "import no_such_dependency_xyz\nclass U: pass\n",
}

# user -> (class_path, what its one line must say)
EXPECTED = {
    "A": ("mine:helper", "'helper' in {dir}/mine.py is a function; expected a Locust User class"),
    "B": ("mine:NUMBER", "mine:NUMBER is an int (42); expected a Locust User class (a subclass of locust.User"),
    "C": ("mine:Plain", "mine:Plain is a class not derived from locust.User; expected a Locust User class"),
    "D": ("mine:MAYBE", "mine:MAYBE is a NoneType (None); expected a Locust User class"),
    "E": ("mine:helper_alias", "mine:helper_alias is a function; expected a Locust User class"),
    "F": ("nowhere_xyz:U", "cannot find module 'nowhere_xyz' (looked beside the scenario and on the Python path)"),
    "G": ("mine:Missing", "{dir}/mine.py has no class 'Missing'"),
    "H": ("raises:U", "importing raises raised RuntimeError: the config server is down; expected a module that "
                      "imports without error"),
    "K": ("exits:U", "importing exits raised SystemExit: bye; expected a module that imports without error"),
    "L": ("needs:U", "cannot import needs (ModuleNotFoundError: No module named 'no_such_dependency_xyz')"),
    "M": ("loadtests.locust_plugin.users.gala:ScenarioUser",
          "users/gala.py has no user class 'ScenarioUser'; expected one of: ChatUser, GalaUser, GrabUser, ShareUser"),
    "N": ("dies:U", "importing dies ended the checking process (exit code 3"),
    "P": ("a..b:U", "'a..b' is not a module name; expected module:Class"),
    "Q": ("m" * 300 + ":U", f"cannot find module '{'m' * 300}'"),  # a file name too long: was a traceback
}


def scenario(folder: Path, users: dict[str, str]) -> Path:
    for name, text in MODULES.items():
        (folder / name).write_text(text, encoding="utf-8")
    lines = ["name: cp", "links: {a: {}}", "users:"]
    lines += [f'  {u}: {{class_path: "{cp}", link_shares: {{a: 1}}}}' for u, cp in users.items()]
    lines += ["phases:", f"  - {{name: one, duration_s: 10, users: {{{', '.join(f'{u}: 1' for u in users)}}}}}"]
    path = folder / "s.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_every_kind_of_wrong_class_path_is_one_line_on_its_line(tmp_path):
    users = {u: cp for u, (cp, _) in EXPECTED.items()} | {"Fine": "mine:Good"}
    path = scenario(tmp_path, users)
    proc = gala("check", str(path), "--quiet", timeout_s=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    faults = [l.removeprefix("gala check: ") for l in proc.stderr.splitlines() if "fault(s)" not in l]
    assert len(faults) == len(EXPECTED), proc.stderr  # one each; the good class and the printed line pass
    for i, (user, (_, expected)) in enumerate(EXPECTED.items()):
        line = next(f for f in faults if f": users.{user}.class_path: " in f)
        assert line.startswith(f"{path}:{4 + i}: users.{user}.class_path: "), line
        assert expected.format(dir=tmp_path) in line, line


def test_a_good_plain_class_passes_and_gala_stays_out_of_locust(tmp_path):
    path = scenario(tmp_path, {"Fine": "mine:Good"})
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "gala", "check", str(path)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # -X importtime lists this process's imports only (the child that imports the module is not given it)
    imported = {l.split("|")[-1].strip() for l in proc.stderr.splitlines() if l.startswith("import time:")}
    assert "loadtests.locust_plugin.classcheck" in imported  # the class was imported, in the child
    assert not {m for m in imported if m.split(".")[0] in ("locust", "gevent", "greenlet")}, sorted(imported)[:20]


def test_gala_run_refuses_a_wrong_class_path_before_it_creates_anything(tmp_path):
    path = scenario(tmp_path, {"Fine": "mine:Good", "C": "mine:Plain"})
    out = tmp_path / "results"
    proc = gala("run", "--scenario", str(path), "--out", str(out), "--no-plan", timeout_s=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr == (f"gala: {path}:5: users.C.class_path: mine:Plain is a class not derived from locust.User; "
                           "expected a Locust User class (a subclass of locust.User: HttpUser, FastHttpUser, or gala's "
                           "loadtests.locust_plugin.users.base.ScenarioUser)\n")
    assert not out.exists()


def test_a_module_that_hangs_on_import_is_a_fault_after_the_timeout(tmp_path):
    (tmp_path / "hangs.py").write_text("import time\ntime.sleep(600)\nclass U: pass\n")
    (tmp_path / "mine.py").write_text(MODULES["mine.py"])
    # the module sleeps 600 s: a fault after 5 s (the timeout mark would catch a hang); the users after it
    # are not known (left to Locust), the ones before it are answered
    faults = import_faults({"Fine": "mine:Good", "Slow": "hangs:U", "After": "mine:Plain"}, tmp_path, timeout_s=5)
    assert faults == {"Slow": "importing hangs did not finish within 5 s; expected a module that imports quickly and "
                              "without ending the process (a locustfile defines classes)"}
