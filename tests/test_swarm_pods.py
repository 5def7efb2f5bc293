"""The pods' own commands, run as local processes exactly as the rendered master and worker containers
would run them, against a real built-in target on 127.0.0.1. No cluster is involved; this checks that
the manifests' commands fit gala's runner and locustfile, that the master's log carries "N workers
connected" for `up`, and that the results bundle it prints is what `collect` unpacks.

Nothing in the command lines is rewritten: they are the containers' `command` + `args`, with $(VAR)
expanded from the container's `env` as the kubelet does. What differs on this machine (the target URL,
the master's host and port, the mounted scenario, the results volume, the locustfile's path) is given
the way a user gives it, by overriding those `env` entries as an overlay's env patch would; the test
checks that every one of them is an entry the manifests declare. The scenario is the user's choice:
tests/scenarios/tiny-gala.yaml (5 s), rendered into the ConfigMap by `gala swarm render`'s code."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

from conftest import REPO
from gala.contract.results import ALL, load_run
from loadtests.swarm import bundle
from loadtests.swarm.launcher import connected_workers
from loadtests.swarm.render import make_spec, render, swarm_scenario

SCENARIO = REPO / "tests" / "scenarios" / "tiny-gala.yaml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def container(docs: list[dict], job: str) -> dict:
    d = next(d for d in docs if d["kind"] == "Job" and d["metadata"]["name"] == job)
    return d["spec"]["template"]["spec"]["containers"][0]


def kubelet_expand(arg: str, env: dict[str, str]) -> str:
    """Kubernetes' expansion of a container's command and args: $(VAR) becomes the value of VAR in the
    container's env when it is defined (else stays as written), and $$ is a literal $."""
    return re.sub(r"\$\$|\$\((\w+)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), arg)


def test_master_and_worker_commands_run_a_rehearsal_and_the_log_carries_the_results(target, tmp_path):
    scenario = swarm_scenario(SCENARIO.read_text(), SCENARIO.name)
    docs = render(make_spec(run_id="pods", namespace="gala", workers=1, target_url="http://192.0.2.10:8080",
                            scenario_text=scenario))
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    (tmp_path / "scenario.yaml").write_text(cm["data"]["scenario.yaml"])
    # This machine, as an overlay's env patch gives it (a Secret would bring the admin token).
    here = {"TARGET_URL": target.url, "GALA_MASTER_HOST": "127.0.0.1", "GALA_MASTER_PORT": str(free_port()),
            "GALA_SCENARIO": str(tmp_path / "scenario.yaml"), "GALA_RESULTS": str(tmp_path / "results"),
            "GALA_LOCUSTFILE": str(REPO / "loadtests" / "locustfile.py")}
    # The image's PATH: its python and locust are this environment's.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    procs: dict[str, subprocess.Popen] = {}
    logs = {role: open(tmp_path / f"{role}.log", "w") for role in ("master", "worker")}
    try:
        for role, job in (("master", "gala-master"), ("worker", "gala-worker")):
            c = container(docs, job)
            declared = {e["name"]: e["value"] for e in c["env"]}
            env = declared | {k: v for k, v in here.items() if k in declared}
            # each value this machine changes is both declared by the container and used by its args
            assert {k for k in here if k in declared} == {k for k in here if any(f"$({k})" in a for a in c["args"])}
            argv = [kubelet_expand(a, env) for a in c["command"] + c["args"]]
            assert not any("$(" in a for a in argv), argv  # every variable the args name is declared
            procs[role] = subprocess.Popen(argv, cwd=tmp_path, stdout=logs[role], stderr=subprocess.STDOUT,
                                           env={**os.environ, "PATH": path, **env,
                                                "GALA_ADMIN_TOKEN": target.admin_token})
        codes = {role: p.wait(timeout=150) for role, p in procs.items()}
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(10)
        for f in logs.values():
            f.close()
    # every machine-specific value was an env entry of the manifests: nothing else needed changing
    named = {m for role in ("gala-master", "gala-worker") for a in container(docs, role)["args"]
             for m in re.findall(r"\$\((\w+)\)", a)}
    assert set(here) <= named, set(here) - named
    master_log = (tmp_path / "master.log").read_text()
    assert codes == {"master": 0, "worker": 0}, master_log[-3000:] + (tmp_path / "worker.log").read_text()[-2000:]
    assert connected_workers(master_log) == 1
    folder = bundle.unpack(master_log, tmp_path / "collected")
    run = load_run(folder)
    assert run.info.status == "complete" and run.info.generator.workers == 1
    total = run.phase_link[(run.phase_link["phase"] == ALL) & (run.phase_link["link"] == ALL)]
    assert int(total["requests"].iloc[0]) > 0
    # The bundle is the folder the master wrote, file for file.
    written = next(p for p in (tmp_path / "results").iterdir() if p.is_dir())
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in written.iterdir())
    assert (folder / "phase_link_stats.csv").read_bytes() == (written / "phase_link_stats.csv").read_bytes()
