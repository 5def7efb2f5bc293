"""`gala swarm collect`: the master's results folder, read from its pod log, into results/<run-id>/.

The master prints its folder as a bundle (loadtests/swarm/bundle.py) after the run; reading the log needs only
`get pods/log`, no exec, and works although the pod's root filesystem is read-only. The folder
lands as the master wrote it, with run.json's generator marked `kubernetes` and the swarm described.
"""

from __future__ import annotations

from pathlib import Path

from gala.contract.atomic import write_json_atomic
from gala.contract.results import load_run_info
from loadtests.swarm import bundle
from loadtests.swarm.launcher import Cluster, ClusterError, read_log, status


def collect(cluster: Cluster, namespace: str, run_id: str, dest: Path) -> Path:
    """Unpack the results of a finished master into dest/<gala run id>/ and return that folder."""
    st = status(cluster, namespace, run_id)
    master = next((p for p in st.pods if p.component == "master"), None)
    if master is None:
        raise ClusterError(f"namespace {namespace}: run {run_id} has no master pod (gone after its TTL, or never started)")
    if master.phase not in ("Succeeded", "Failed"):
        raise ClusterError(f"run {run_id}: master pod {master.name} is {master.phase}; collect after it finishes (gala swarm status)")
    try:
        folder = bundle.unpack(read_log(cluster, namespace, master.name), dest)
    except bundle.BundleError as exc:
        raise ClusterError(f"run {run_id}: pod {master.name}: {exc}") from None
    info = load_run_info(folder)
    workers = st.jobs.get("gala-worker", {})
    info.generator.mode = "kubernetes"
    extra = {"namespace": namespace, "swarm_run_id": run_id, "master_pod": master.name,
             "master_exit_code": master.exit_code, "worker_pods": sum(p.component == "worker" for p in st.pods),
             "workers_succeeded": workers.get("succeeded", 0), "workers_failed": workers.get("failed", 0)}
    data = info.model_dump(mode="json")
    data["swarm"] = extra
    write_json_atomic(folder / "run.json", data)
    return folder
