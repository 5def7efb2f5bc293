"""Reusing what SREs have (issue 14): a plain Locust FastHttpUser class in a scenario, paced by gala and its
requests attributed to links by name prefix or `request_links`; a declarative user that checks replies
(status, a JSON field), reads request data from a CSV feeder, and takes a path from the environment.
One real ~3 s run of tests/scenarios/reuse.yaml against the built-in target."""

from __future__ import annotations

import os
import subprocess

import pandas as pd
import pytest

from conftest import REPO, gala
from gala.contract.results import load_run
from loadtests.orchestrator.generator import locust_argv

pytestmark = pytest.mark.timeout(180)
SCENARIO = REPO / "tests" / "scenarios" / "reuse.yaml"


@pytest.fixture(scope="module")
def reuse_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("reuse")
    proc = gala("run", "--scenario", str(SCENARIO), "--no-plan", "--quiet", "--out", str(out),
                env={"GALA_TEST_HEALTH_PATH": "healthz"}, timeout_s=150)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    (folder,) = [p for p in out.iterdir() if (p / "run.json").exists()]
    locust = pd.read_csv(folder / "locust_stats.csv").set_index("Name")
    failures = pd.read_csv(folder / "locust_failures.csv")
    return load_run(folder), locust, failures


def test_a_plain_fasthttpuser_is_paced_and_its_requests_attributed(reuse_run):
    run, locust, _ = reuse_run
    st = run.phase_link.set_index(["phase", "link"])
    grab = int(st.loc[("_all", "grab"), "requests"])
    # its own `grab:tap` (by the name's prefix) and `/drop` (by request_links) both count as grab
    assert grab == locust.loc["grab:tap", "Request Count"] + locust.loc["/drop", "Request Count"]
    assert locust.loc["/drop", "Request Count"] > 0
    assert st.loc[("_all", "setup"), "requests"] == locust.loc["/users", "Request Count"] == 6  # on_start, once each
    # its class says constant(30): at most one action per user in 3 s (6 in all). gala's pace (5/s) replaces it
    assert grab > 4 * 6, grab
    assert st.loc[("reuse", "grab"), "intended_rps"] == pytest.approx(30.0)


def test_declarative_users_check_replies_and_read_a_feeder(reuse_run):
    run, locust, failures = reuse_run
    errors = failures.set_index("Name")["Error"].to_dict()
    # the env-substituted path is /healthz: every reply has the expected status and its `ok` field
    assert locust.loc["health:ok", "Request Count"] > 0 and locust.loc["health:ok", "Failure Count"] == 0
    # a field the reply lacks fails every request of that kind, saying which field
    assert locust.loc["health:wrong", "Failure Count"] == locust.loc["health:wrong", "Request Count"] > 0
    assert "reply has no field data.id" in errors["health:wrong"]
    # the feeder's rows in turn: /healthz, /drop, /no-such-page: exactly one request in three is a 404
    n, failed = locust.loc["pages:page", "Request Count"], locust.loc["pages:page", "Failure Count"]
    assert n >= 6 and abs(failed - n / 3) <= 1, (n, failed)
    assert "HTTP 404, expected 200" in errors["pages:page"]
    st = run.phase_link.set_index(["phase", "link"])
    assert st.loc[("_all", "pages"), "failures"] == failed  # gala counts the same failures per link


def test_a_class_path_that_cannot_work_is_refused(tmp_path):
    env = {"GALA_TEST_HEALTH_PATH": "healthz"}
    for name in ("plain_locustfile.py", "pages.csv"):
        (tmp_path / name).write_text((SCENARIO.parent / name).read_text())
    missing = tmp_path / "missing.yaml"
    missing.write_text(SCENARIO.read_text().replace("plain_locustfile:Tapper", "plain_locustfile:Nobody"))
    proc = gala("check", str(missing), env=env, timeout_s=60)
    assert proc.returncode == 2
    assert f"{missing}:14: users.Tapper.class_path: " in proc.stderr and "has no class 'Nobody'" in proc.stderr
    nowhere = tmp_path / "nowhere.yaml"
    nowhere.write_text(SCENARIO.read_text().replace("plain_locustfile:Tapper", "no_such_locustfile:Tapper"))
    proc = gala("check", str(nowhere), env=env, timeout_s=60)
    assert proc.returncode == 2 and "cannot find module 'no_such_locustfile'" in proc.stderr
    # a name that exists but is no Locust user (locust's `constant`, a function): `gala check` imports it (in a
    # child process) and refuses it, and so does Locust's process, in the same one line, exit 2
    bad = tmp_path / "bad.yaml"
    bad.write_text(SCENARIO.read_text().replace("plain_locustfile:Tapper", "plain_locustfile:constant"))
    said = f"{bad}:14: users.Tapper.class_path: plain_locustfile:constant is a function; expected a Locust User class"
    proc = gala("check", str(bad), env=env, timeout_s=60)
    assert proc.returncode == 2 and said in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    proc = subprocess.run(locust_argv(scenario=bad), cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert said in proc.stderr, proc.stderr
