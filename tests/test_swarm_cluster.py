"""`gala swarm up/status/collect/down` and their error paths against kmock's Kubernetes emulator.

The emulator is a stateful API server on 127.0.0.1 (in a thread); the real `gala swarm` command
line talks to it with the official client over HTTP through a kubeconfig. The test plays the
cluster's controllers: it creates the Jobs' pods, moves them through Running / ErrImagePull /
Succeeded, and serves the master's log (Locust's "N workers connected" lines, then the results
bundle the master prints after its run).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import kmock
import pytest
import yaml
from kubernetes import client

from conftest import GALA, REPO
from gala.contract.results import load_run
from loadtests.swarm import bundle
from loadtests.swarm.entrypoint import main as entrypoint_main
from loadtests.swarm.launcher import connected_workers
from test_swarm_size import write_synthetic_run

NS = "rehearsal"
SCENARIO = str(REPO / "k8s/base/scenario.yaml")
PODS = kmock.resource("v1/pods")
RESOURCES = {"v1/pods": "Pod", "v1/configmaps": "ConfigMap", "v1/services": "Service", "v1/serviceaccounts": "ServiceAccount",
             "batch/v1/jobs": "Job", "networking.k8s.io/v1/networkpolicies": "NetworkPolicy"}
VERBS = {"get", "list", "watch", "create", "patch", "delete"}


class Emulator:
    """kmock's KubernetesEmulator served from a thread, plus what a kubelet would add."""

    def __init__(self, tmp_path: Path):
        self.logs: dict[str, str] = {}
        self.forbidden: set[str] = set()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)
        self._thread.start()
        assert self._ready.wait(20), "kmock did not start"
        self.kubeconfig = tmp_path / "kubeconfig"
        self.kubeconfig.write_text(kubeconfig_for(self.url))
        cfg = client.Configuration()
        cfg.host = self.url
        self.api = client.ApiClient(cfg)
        self.core, self.batch = client.CoreV1Api(self.api), client.BatchV1Api(self.api)

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with kmock.KubernetesEmulator() as k, kmock.Server(k) as srv:
            self.k, self.url, self._loop = k, str(srv.url).rstrip("/"), asyncio.get_running_loop()
            # The API server's discovery: the kinds a swarm uses exist even before any object does.
            for res, kind in RESOURCES.items():
                k.resources[res] = kmock.ResourceInfo(namespaced=True, kind=kind, verbs=VERBS,
                                                      subresources={"log", "status"} if kind == "Pod" else {"status"})
            # Pod logs are text/plain, as a kubelet serves them.
            k[PODS, kmock.subresource("log")] << kmock.headers({"Content-Type": "text/plain; charset=utf-8"}) << (
                lambda req: self.logs.get(req.name, "").encode())
            # RBAC without rights on some kinds in a namespace: 403, as the API server answers it.
            k[kmock.action.CREATE, kmock.K8sCriteria(namespace="locked")] << kmock.KubernetesError(
                status=403, reason="Forbidden", message='serviceaccounts is forbidden: User "sre" cannot create resource "serviceaccounts" in API group "" in the namespace "locked"')
            k[kmock.action.CREATE, kmock.K8sCriteria(resource=kmock.resource("networking.k8s.io/v1/networkpolicies"),
                                                     namespace="no-netpol")] << kmock.KubernetesError(
                status=403, reason="Forbidden", message="networkpolicies.networking.k8s.io is forbidden")
            # An API server gives every object a uid; kmock does not: add one to the Jobs it creates here.
            k[kmock.action.CREATE, kmock.K8sCriteria(resource=kmock.resource("batch/v1/jobs"), namespace=NS)] << (
                lambda req: {**req.data, "metadata": {**req.data["metadata"], "uid": f"uid-{req.data['metadata']['name']}"}})
            k[kmock.action.CREATE, kmock.K8sCriteria(namespace="missing")] << kmock.KubernetesError(
                status=404, reason="NotFound", message='namespaces "missing" not found')
            self._ready.set()
            await self._stop.wait()

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def live(self, namespace: str) -> list[str]:
        """Objects not deleted in a namespace, as `plural/name`."""
        return sorted(f"{res.plural}/{name}" for (res, ns, name), obj in list(self.k.objects.items())
                      if ns == namespace and not obj.deleted)

    def jobs(self, namespace: str) -> dict[str, object]:
        return {j.metadata.name: j for j in self.batch.list_namespaced_job(namespace).items}

    def make_pod(self, namespace: str, job, *, phase: str, waiting: str | None = None, exit_code: int | None = None) -> str:
        """What the Job controller and kubelet would do: a pod from the Job's template, with a status."""
        name = f"{job.metadata.name}-{secrets.token_hex(3)}"
        labels = dict(job.spec.template.metadata.labels)
        state = ({"waiting": {"reason": waiting, "message": f"Back-off pulling image: {waiting}"}} if waiting else
                 {"terminated": {"exitCode": exit_code, "reason": "Completed"}} if exit_code is not None else
                 {"running": {"startedAt": "2026-02-07T12:00:00Z"}})
        container = job.spec.template.spec.containers[0]
        self.core.create_namespaced_pod(namespace, {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"containers": [{"name": container.name, "image": container.image}]},
            "status": {"phase": phase, "containerStatuses": [{"name": container.name, "image": container.image, "imageID": "",
                                                              "ready": phase == "Running", "restartCount": 0, "state": state}]}})
        return name

    def set_pod(self, namespace: str, name: str, *, phase: str, exit_code: int) -> None:
        self.core.patch_namespaced_pod(name, namespace, {"status": {"phase": phase, "containerStatuses": [{
            "name": "master", "image": "x", "imageID": "", "ready": False, "restartCount": 0,
            "state": {"terminated": {"exitCode": exit_code, "reason": "Completed"}}}]}})


def kubeconfig_for(url: str) -> str:
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "emulator",
        "clusters": [{"name": "emulator", "cluster": {"server": url}}],
        "users": [{"name": "sre", "user": {"token": "not-a-secret"}}],
        "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "sre", "namespace": NS}}],
    })


@pytest.fixture
def emulator(tmp_path):
    emu = Emulator(tmp_path)
    yield emu
    emu.stop()


def swarm(*args: str, kubeconfig: Path, timeout_s: float = 90) -> subprocess.Popen:
    return subprocess.Popen([*GALA, "swarm", *args, "--kubeconfig", str(kubeconfig)], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ, PYTHONUNBUFFERED="1"))


def run_in_process(*args: str, kubeconfig: Path) -> tuple[int, str, str]:
    """The same command line, in this process (no interpreter start-up): for commands that do not wait."""
    from gala.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["swarm", *args, "--kubeconfig", str(kubeconfig)])
    return code, out.getvalue(), err.getvalue()


class InProcess:
    """`gala swarm ...` in a thread of this process, with the poll/communicate of a Popen."""

    def __init__(self, *args: str, kubeconfig: Path):
        self.result: tuple[int, str, str] | None = None
        self.thread = threading.Thread(target=lambda: setattr(self, "result", run_in_process(*args, kubeconfig=kubeconfig)),
                                       daemon=True)
        self.thread.start()

    def poll(self) -> int | None:
        return None if self.result is None else self.result[0]

    def communicate(self, timeout: float) -> tuple[str, str]:
        self.thread.join(timeout)
        if self.result is None:
            raise subprocess.TimeoutExpired("gala swarm", timeout)
        return self.result[1], self.result[2]

    @property
    def returncode(self) -> int:
        return self.result[0]

    def kill(self) -> None:
        pass  # the command is bounded by its own --connect-timeout


def finish(proc: subprocess.Popen, timeout_s: float = 90) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"gala swarm did not finish in {timeout_s} s: {err[-2000:]}")
    return proc.returncode, out, err


def up_args(namespace: str, run_id: str, *extra: str) -> list[str]:
    return ["up", "--namespace", namespace, "--run-id", run_id, "--workers", "2", "--target-url", "http://192.0.2.10:8080",
            "--scenario", SCENARIO, "--image", "registry.local/gala:test", "--connect-timeout", "30", *extra]


def play_cluster(emu: Emulator, proc: subprocess.Popen, namespace: str, *, worker_state: str, connect: bool,
                 master_gives_up: bool = False, timeout_s: float = 60) -> dict[str, str]:
    """While `up` waits, create the Jobs' pods in the given state; return {component: pod name}."""
    pods: dict[str, str] = {}
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None and time.monotonic() < deadline:
        jobs = emu.jobs(namespace)
        if not pods and {"gala-master", "gala-worker"} <= jobs.keys():
            pods["master"] = emu.make_pod(namespace, jobs["gala-master"], phase="Running")
            emu.logs[pods["master"]] = "[gala] master up: waiting for workers\n"
            for i in range(2):
                waiting = worker_state if worker_state != "Running" else None
                pods[f"worker{i}"] = emu.make_pod(namespace, jobs["gala-worker"], phase="Pending" if waiting else "Running",
                                                  waiting=waiting)
            if connect:
                emu.logs[pods["master"]] += ("INFO/locust.runners: w1 (index 0) reported as ready. 1 workers connected.\n"
                                             "INFO/locust.runners: w2 (index 1) reported as ready. 2 workers connected.\n")
            else:
                emu.logs[pods["master"]] += "INFO/locust.main: Waiting for workers to be ready, 1 of 2 connected\n"
            if master_gives_up:  # Locust's --expect-workers-max-wait ran out: the master exits 1
                emu.logs[pods["master"]] += "ERROR/locust.main: Gave up waiting for workers to connect\n"
                emu.set_pod(namespace, pods["master"], phase="Failed", exit_code=1)
                emu.batch.patch_namespaced_job_status("gala-master", namespace, {"status": {"failed": 1}})
        time.sleep(0.2)
    return pods


def test_up_status_collect_down(emulator, tmp_path):
    run_id = "20260207-200000-feb1-c0ffee"
    proc = swarm(*up_args(NS, run_id), kubeconfig=emulator.kubeconfig)
    pods = play_cluster(emulator, proc, NS, worker_state="Running", connect=True)
    code, out, err = finish(proc)
    assert code == 0, err
    assert out.strip() == run_id and "2 of 2 workers connected" in err
    created = emulator.live(NS)
    assert {"jobs/gala-master", "jobs/gala-worker", "services/gala-master", "configmaps/gala-scenario",
            "serviceaccounts/gala-swarm", "networkpolicies/gala-master", "networkpolicies/gala-worker"} <= set(created)
    # Every object the run created carries its run id; the workers' Job has the replicas asked.
    for job in emulator.batch.list_namespaced_job(NS).items:
        assert job.metadata.labels["gala.run-id"] == run_id
    assert emulator.jobs(NS)["gala-worker"].spec.parallelism == 2
    # The master Job owns the rest of the run: its TTL or deletion takes everything with it.
    owner = [{"apiVersion": "batch/v1", "kind": "Job", "name": "gala-master", "uid": "uid-gala-master", "blockOwnerDeletion": False}]
    for plural, name in (("configmaps", "gala-scenario"), ("services", "gala-master"), ("serviceaccounts", "gala-swarm"),
                         ("networkpolicies", "gala-master"), ("networkpolicies", "gala-worker"), ("jobs", "gala-worker")):
        res = next(r for r in RESOURCES if r.endswith("/" + plural))
        assert emulator.k.objects[kmock.resource(res), NS, name]["metadata"]["ownerReferences"] == owner, (plural, name)
    cm = emulator.core.read_namespaced_config_map("gala-scenario", NS)
    assert cm.data["scenario.yaml"] == Path(SCENARIO).read_text() and cm.metadata.labels["gala.run-id"] == run_id

    code, out, err = finish(swarm("status", "--namespace", NS, "--run-id", run_id, kubeconfig=emulator.kubeconfig))
    assert code == 0, err
    assert "workers connected: 2" in out and f"pod {pods['master']}=Running [master]" in out

    # collect before the master finished: refused, nothing written.
    code, out, err = finish(swarm("collect", "--namespace", NS, "--run-id", run_id, "--out", str(tmp_path / "results"),
                                  kubeconfig=emulator.kubeconfig))
    assert code == 4 and "is Running; collect after it finishes" in err and not (tmp_path / "results").exists()

    # The master finishes; a log without the bundle (rotated, say) is refused, nothing written.
    emulator.logs[pods["master"]] += "INFO/locust.main: Shutting down (exit code 0)\n"
    emulator.set_pod(NS, pods["master"], phase="Succeeded", exit_code=0)
    emulator.batch.patch_namespaced_job_status("gala-master", NS, {"status": {"succeeded": 1}})
    code, out, err = run_in_process("collect", "--namespace", NS, "--run-id", run_id, "--out", str(tmp_path / "results"),
                                    kubeconfig=emulator.kubeconfig)
    assert code == 4 and f"run {run_id}: pod {pods['master']}: master log: no results bundle" in err
    assert not (tmp_path / "results").exists()
    # With the results bundle at the end of its log, as k8s/entrypoint.py prints it.
    folder = write_synthetic_run(tmp_path / "master-results", run_id="20260207-200001-feb1-abcdef")
    emulator.logs[pods["master"]] += bundle.pack(folder)
    code, out, err = finish(swarm("collect", "--namespace", NS, "--run-id", run_id, "--out", str(tmp_path / "results"),
                                  kubeconfig=emulator.kubeconfig))
    assert code == 0, err
    collected = Path(out.strip())
    assert collected == tmp_path / "results" / folder.name
    run = load_run(collected)
    assert run.info.generator.mode == "kubernetes"
    swarm_info = json.loads((collected / "run.json").read_text())["swarm"]
    assert swarm_info["namespace"] == NS and swarm_info["swarm_run_id"] == run_id and swarm_info["master_exit_code"] == 0
    assert (collected / "cpu.csv").read_bytes() == (folder / "cpu.csv").read_bytes()
    assert run.phase_link.equals(load_run(folder).phase_link)

    code, out, err = finish(swarm("down", "--namespace", NS, "--run-id", run_id, kubeconfig=emulator.kubeconfig))
    assert code == 0, err
    assert "Job/gala-master" in out and f"Pod/{pods['worker0']}" in out
    assert emulator.live(NS) == []


def test_down_ttl_then_down_touch_only_their_run(emulator):
    for run_id, ns in (("run-a", NS), ("run-b", "other")):
        proc = InProcess(*up_args(ns, run_id), kubeconfig=emulator.kubeconfig)
        play_cluster(emulator, proc, ns, worker_state="Running", connect=True)
        assert finish(proc)[0] == 0
    before, other_before = emulator.live(NS), emulator.live("other")
    code, out, err = run_in_process("down", "--namespace", NS, "--run-id", "run-a", "--ttl", "600", kubeconfig=emulator.kubeconfig)
    assert code == 0, err
    assert out.strip() == "set to expire: Job/gala-master (ttlSecondsAfterFinished=600), Job/gala-worker (ttlSecondsAfterFinished=600)"
    assert {j.spec.ttl_seconds_after_finished for j in emulator.jobs(NS).values()} == {600}
    assert {j.spec.ttl_seconds_after_finished for j in emulator.jobs("other").values()} == {None}
    assert emulator.live(NS) == before
    assert run_in_process("down", "--namespace", NS, "--run-id", "run-a", kubeconfig=emulator.kubeconfig)[0] == 0
    assert emulator.live(NS) == [] and emulator.live("other") == other_before


def test_image_cannot_be_pulled_fails_and_cleans_up(emulator):
    proc = swarm(*up_args(NS, "pull-run"), kubeconfig=emulator.kubeconfig)
    play_cluster(emulator, proc, NS, worker_state="ErrImagePull", connect=False)
    code, out, err = finish(proc)
    assert code == 4, err
    line = err.strip().splitlines()[-1]
    assert "image registry.local/gala:test cannot be pulled" in line and "ErrImagePull" in line
    assert "cleaned up: " in line and "Job/gala-master" in line
    assert [o for o in emulator.live(NS) if not o.startswith("pods/")] == []


def test_workers_never_connect_times_out_and_cleans_up(emulator):
    proc = InProcess(*up_args(NS, "slow-run")[:-2], "--connect-timeout", "3", kubeconfig=emulator.kubeconfig)
    play_cluster(emulator, proc, NS, worker_state="Running", connect=False)
    code, out, err = finish(proc)
    assert code == 4, err
    line = err.strip().splitlines()[-1]
    assert "workers never connected: 1 of 2 after 3 s" in line and "cleaned up: " in line
    assert [o for o in emulator.live(NS) if not o.startswith("pods/")] == []


def test_master_giving_up_on_its_workers_fails_up_and_cleans_up(emulator):
    proc = InProcess(*up_args(NS, "gave-up"), kubeconfig=emulator.kubeconfig)
    play_cluster(emulator, proc, NS, worker_state="Running", connect=False, master_gives_up=True)
    code, out, err = finish(proc)
    assert code == 4, err
    line = err.strip().splitlines()[-1]
    assert "master Job failed before the workers connected: " in line and "Gave up waiting for workers" in line
    assert "cleaned up: " in line and [o for o in emulator.live(NS) if not o.startswith("pods/")] == []


def test_a_second_swarm_in_the_namespace_is_refused_and_the_first_kept(emulator):
    proc = InProcess(*up_args(NS, "first"), kubeconfig=emulator.kubeconfig)
    play_cluster(emulator, proc, NS, worker_state="Running", connect=True)
    assert finish(proc)[0] == 0
    before = emulator.live(NS)
    code, out, err = run_in_process(*up_args(NS, "second"), kubeconfig=emulator.kubeconfig)
    assert code == 4
    assert err.strip() == (f"gala swarm: namespace {NS}: create ServiceAccount gala-swarm: already exists; a swarm runs "
                           "there (gala swarm status/down); cleaned up: nothing had been created")
    assert emulator.live(NS) == before
    assert {j.metadata.labels["gala.run-id"] for j in emulator.jobs(NS).values()} == {"first"}


def test_namespace_missing(emulator):
    code, out, err = run_in_process(*up_args("missing", "m"), kubeconfig=emulator.kubeconfig)
    assert code == 4
    assert err.strip().startswith('gala swarm: namespace missing: not found while trying to create ServiceAccount '
                                  'gala-swarm (namespaces "missing" not found)')


def test_namespace_forbidden(emulator):
    code, out, err = run_in_process(*up_args("locked", "locked-run"), kubeconfig=emulator.kubeconfig)
    assert code == 4
    assert err.strip() == ('gala swarm: namespace locked: forbidden to create ServiceAccount gala-swarm (serviceaccounts is '
                           'forbidden: User "sre" cannot create resource "serviceaccounts" in API group "" in the namespace '
                           '"locked"); cleaned up: nothing had been created')


def test_forbidden_midway_deletes_what_was_created(emulator):
    code, out, err = run_in_process(*up_args("no-netpol", "np-run"), kubeconfig=emulator.kubeconfig)
    # The NetworkPolicy comes before any pod-making Job: refused, no pod ever ran unfiltered.
    assert code == 4
    line = err.strip()
    assert line.startswith("gala swarm: namespace no-netpol: forbidden to create NetworkPolicy gala-master")
    assert line.endswith("cleaned up: ServiceAccount/gala-swarm")
    # kmock records even a refused create; everything `up` really created is gone.
    assert emulator.live("no-netpol") == ["networkpolicies/gala-master"]


def test_no_cluster_reachable(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(kubeconfig_for(f"http://127.0.0.1:{port}"))
    for i, args in enumerate((up_args(NS, "r"), ["status", "--namespace", NS], ["down", "--namespace", NS, "--run-id", "r"])):
        # The first through a real process, the others in this one.
        code, out, err = finish(swarm(*args, kubeconfig=kubeconfig)) if i == 0 else run_in_process(*args, kubeconfig=kubeconfig)
        assert code == 4, err
        assert f"no cluster reachable at http://127.0.0.1:{port}" in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1


def test_missing_kubeconfig_is_a_clear_error(tmp_path):
    code, out, err = run_in_process("status", kubeconfig=tmp_path / "nope")
    assert code == 4 and "kubeconfig" in err and "Traceback" not in err


def test_status_of_an_empty_namespace(emulator):
    code, out, err = run_in_process("status", "--namespace", "empty", kubeconfig=emulator.kubeconfig)
    assert code == 1 and "namespace empty: no gala swarm" in out


# ---------------------------------------------------------------- the bundle in the log

def test_entrypoint_prints_the_new_results_folder_and_keeps_the_exit_code(tmp_path, capfd):
    """loadtests/swarm/entrypoint.py runs a real child process that writes a results folder and exits 3."""
    out = tmp_path / "results"
    out.mkdir()
    (out / "older-run").mkdir()
    (out / "older-run" / "run.json").write_text("{}")
    child = ("import sys, pathlib, time; sys.path.insert(0, sys.argv[1]); from test_swarm_size import write_synthetic_run; "
             "f = write_synthetic_run(pathlib.Path(sys.argv[3]), run_id='20260207-210000-feb1-123456'); "
             "log = open(f / 'locust.log', 'a'); log.write('w1 reported as ready. 1 workers connected.\\n'); log.flush(); "
             "time.sleep(1.2); log.write('w2 reported as ready. 2 workers connected.\\n'); log.close(); "
             "print('run done'); sys.exit(3)")
    code = entrypoint_main([str(Path(__file__).parent), "--out", str(out)], command=[sys.executable, "-c", child])
    assert code == 3
    log = capfd.readouterr().out
    assert "run done" in log and "run_id=20260207-210000-feb1-123456" in log and "older-run" not in log
    # Locust's own log, written to a file by the runner, reaches the pod log before the bundle.
    assert log.index("[locust] w2 reported as ready. 2 workers connected.") < log.index(bundle.BEGIN)
    assert connected_workers(log) == 2
    folder = bundle.unpack(log, tmp_path / "collected")
    assert load_run(folder).info.run_id == "20260207-210000-feb1-123456"


def test_bundle_refuses_truncated_or_damaged_logs(tmp_path):
    text = bundle.pack(write_synthetic_run(tmp_path / "src"))
    lines = text.splitlines()
    with pytest.raises(bundle.BundleError, match="no results bundle"):
        bundle.unpack("just locust output\n", tmp_path / "a")
    with pytest.raises(bundle.BundleError, match="has no end marker"):
        bundle.unpack("\n".join(lines[:-3]), tmp_path / "b")
    damaged = lines[:2] + [("A" if lines[2][0] != "A" else "B") + lines[2][1:]] + lines[3:]
    with pytest.raises(bundle.BundleError, match="is damaged"):
        bundle.unpack("\n".join(damaged), tmp_path / "c")
    assert not (tmp_path / "c").exists()
