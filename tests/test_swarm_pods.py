"""The pods' own commands, run as local processes: what the rendered master and worker containers
would run (command, args, environment with Kubernetes' $(VAR) expansion), against a real built-in
target on 127.0.0.1. No cluster is involved; this checks that the manifests' commands fit gala's
runner and locustfile, that the master's log carries "N workers connected" for `up`, and that the
results bundle it prints is what `collect` unpacks."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

from conftest import REPO
from gala.contract.results import ALL, load_run
from loadtests.swarm import bundle
from loadtests.swarm.launcher import connected_workers
from loadtests.swarm.render import make_spec, render, swarm_scenario


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def container(docs: list[dict], job: str) -> dict:
    d = next(d for d in docs if d["kind"] == "Job" and d["metadata"]["name"] == job)
    return d["spec"]["template"]["spec"]["containers"][0]


def local_argv(c: dict, env: dict[str, str], paths: dict[str, str], port: str) -> list[str]:
    """The container's command line as Kubernetes would expand it, mapped onto this machine."""
    expand = lambda a: re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], a)  # noqa: E731
    argv = [paths.get(a, a) for a in (expand(a) for a in c["command"] + c["args"])]
    argv = [port if a == "5557" else "127.0.0.1" if a == "gala-master" else a for a in argv]
    exe = {"python": [sys.executable], "locust": [sys.executable, "-m", "locust"]}[argv[0]]
    return exe + argv[1:]


def test_master_and_worker_commands_run_a_rehearsal_and_the_log_carries_the_results(target, tmp_path):
    scenario = swarm_scenario((REPO / "loadtests/scenarios/feb1.yaml").read_text(), "feb1.yaml")
    docs = render(make_spec(run_id="pods", namespace="gala", workers=1, target_url="http://192.0.2.10:8080",
                            scenario_text=scenario))
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    (tmp_path / "scenario.yaml").write_text(cm["data"]["scenario.yaml"])
    paths = {"/etc/gala/scenario.yaml": str(tmp_path / "scenario.yaml"), "/results": str(tmp_path / "results"),
             "/opt/gala/locustfile.py": str(REPO / "loadtests/locustfile.py")}
    port = str(free_port())
    procs: dict[str, subprocess.Popen] = {}
    logs = {role: open(tmp_path / f"{role}.log", "w") for role in ("master", "worker")}
    try:
        for role, job in (("master", "gala-master"), ("worker", "gala-worker")):
            c = container(docs, job)
            # The pod's environment, with the target this test runs (a Secret would bring the token).
            env = {e["name"]: e["value"] for e in c["env"]} | {"TARGET_URL": target.url, "GALA_ADMIN_TOKEN": target.admin_token}
            argv = local_argv(c, env, paths, port) + ["--duration-scale", "0.1"]  # a short run, for the test only
            procs[role] = subprocess.Popen(argv, cwd=tmp_path, stdout=logs[role],
                                           stderr=subprocess.STDOUT, env={**os.environ, **env})
        codes = {role: p.wait(timeout=150) for role, p in procs.items()}
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(10)
        for f in logs.values():
            f.close()
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
