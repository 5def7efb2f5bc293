"""Drive one swarm run on a cluster with the official `kubernetes` client: up, status, down.

Every object a run creates carries the label `gala.run-id=<id>`; `down` deletes by that label.
Cluster failures raise ClusterError (one line, exit 4) after cleaning up what `up` had created.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Callable

from gala.contract.errors import ExitCode
from loadtests.swarm.render import RUN_ID_LABEL, SwarmSpec, render

REQUEST_TIMEOUT_S = 30  # per API call: a hung API server must not hang `gala swarm`
IMAGE_ERRORS = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
_CONNECTED = [re.compile(r"(\d+) workers connected"), re.compile(r"Waiting for workers to be ready, (\d+) of \d+ connected")]
# Kind -> (API class name, method suffix).
KINDS = {
    "Job": ("BatchV1Api", "namespaced_job"),
    "ServiceAccount": ("CoreV1Api", "namespaced_service_account"),
    "ConfigMap": ("CoreV1Api", "namespaced_config_map"),
    "Service": ("CoreV1Api", "namespaced_service"),
    "NetworkPolicy": ("NetworkingV1Api", "namespaced_network_policy"),
}
# What a pod needs exists before the Jobs make pods (a missing ServiceAccount sends the Job
# controller into back-off; a pod started before its NetworkPolicy has unfiltered egress).
CREATE_ORDER = ["ServiceAccount", "NetworkPolicy", "ConfigMap", "Service", "Job"]


class ClusterError(Exception):
    """The cluster refused or failed: unreachable, forbidden, image not pulled, workers missing."""

    exit_code = ExitCode.CLUSTER_ERROR


Progress = Callable[[str], None]


@dataclass
class Cluster:
    """API objects bound to one kubeconfig context (or the in-cluster service account)."""

    api_client: object
    host: str

    def api(self, name: str):
        from kubernetes import client

        return getattr(client, name)(self.api_client)


def connect(kubeconfig: str | None = None, context: str | None = None) -> Cluster:
    """Load a kubeconfig (or the in-cluster config when there is none) into a Cluster."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    cfg = client.Configuration()
    try:
        config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=cfg)
    except (ConfigException, FileNotFoundError) as exc:
        if kubeconfig or context:
            raise ClusterError(f"kubeconfig {kubeconfig or '(default)'}: {exc}") from None
        try:
            config.load_incluster_config(client_configuration=cfg)
        except ConfigException:
            raise ClusterError("no cluster configured: no kubeconfig (--kubeconfig, $KUBECONFIG, ~/.kube/config) and not in a pod") from None
    cfg.retries = 1  # an unreachable cluster should fail in seconds, not after urllib3's default retries
    return Cluster(client.ApiClient(cfg), cfg.host)


def _explain(exc: Exception, cluster: Cluster, namespace: str, what: str) -> ClusterError:
    """One line for an API failure."""
    from kubernetes.client.rest import ApiException
    from urllib3.exceptions import HTTPError

    if isinstance(exc, ApiException):
        reason = _api_message(exc)
        if exc.status == 403:
            return ClusterError(f"namespace {namespace}: forbidden to {what} ({reason})")
        if exc.status == 401:
            return ClusterError(f"cluster {cluster.host}: unauthorized ({reason}); check the kubeconfig's credentials")
        if exc.status == 404:
            return ClusterError(f"namespace {namespace}: not found while trying to {what} ({reason})")
        if exc.status == 409:
            return ClusterError(f"namespace {namespace}: {what}: already exists; a swarm runs there (gala swarm status/down)")
        return ClusterError(f"cluster {cluster.host}: {what}: HTTP {exc.status} {reason}")
    if isinstance(exc, (HTTPError, OSError)):
        return ClusterError(f"no cluster reachable at {cluster.host} ({type(exc).__name__})")
    raise exc


def _api_message(exc) -> str:
    import json

    try:
        return json.loads(exc.body).get("message") or exc.reason
    except (TypeError, ValueError, AttributeError):
        return str(exc.reason)


def _call(cluster: Cluster, namespace: str, what: str, fn, *args, **kwargs):
    from kubernetes.client.rest import ApiException
    from urllib3.exceptions import HTTPError

    kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT_S)
    try:
        return fn(*args, **kwargs)
    except (ApiException, HTTPError, OSError) as exc:
        raise _explain(exc, cluster, namespace, what) from None


@dataclass
class Created:
    kind: str
    name: str


@dataclass
class UpResult:
    spec: SwarmSpec
    created: list[Created] = field(default_factory=list)
    connected: int = 0
    finished: bool = False


def _labels_of(obj) -> dict:
    return dict((obj.metadata.labels or {}) if obj.metadata else {})


def _owner_ref(job) -> list[dict]:
    # The emulator assigns no uid; a real API server always does.
    uid = job.metadata.uid if job.metadata else None
    if not uid:
        return []
    return [{"apiVersion": "batch/v1", "kind": "Job", "name": job.metadata.name, "uid": uid, "blockOwnerDeletion": False}]


def up(cluster: Cluster, spec: SwarmSpec, *, connect_timeout_s: float = 300, poll_s: float = 2.0,
       progress: Progress = print) -> UpResult:
    """Create the run's objects and wait (bounded) until every worker has connected to the master."""
    docs = sorted(render(spec), key=lambda d: (CREATE_ORDER.index(d["kind"]), d["metadata"]["name"] != "gala-master"))
    result = UpResult(spec)
    try:
        owner: list[dict] = []
        for d in docs:
            if owner:
                d["metadata"]["ownerReferences"] = owner
            created = _call(cluster, spec.namespace, f"create {d['kind']} {d['metadata']['name']}",
                            getattr(cluster.api(KINDS[d["kind"]][0]), f"create_{KINDS[d['kind']][1]}"), spec.namespace, d)
            result.created.append(Created(d["kind"], d["metadata"]["name"]))
            if d["kind"] == "Job" and d["metadata"]["name"] == "gala-master":
                owner = _owner_ref(created)
        if owner:
            _adopt(cluster, spec.namespace, result.created, owner)
        progress(f"created {len(result.created)} objects in namespace {spec.namespace} (run {spec.run_id}); "
                 f"waiting up to {connect_timeout_s:.0f} s for {spec.workers} worker(s) to connect")
        _wait_connected(cluster, spec, result, connect_timeout_s, poll_s, progress)
    except ClusterError as exc:
        cleaned = _delete_created(cluster, spec.namespace, result.created)
        raise ClusterError(f"{exc}; cleaned up: {cleaned}") from None
    except BaseException:
        _delete_created(cluster, spec.namespace, result.created)
        raise
    return result


def _adopt(cluster: Cluster, namespace: str, created: list[Created], owner: list[dict]) -> None:
    """Make the master Job the owner of what was created before it: when the master goes (down, or
    its ttlSecondsAfterFinished), Kubernetes' garbage collector removes the rest of the run."""
    for c in created:
        if c.kind != "Job":
            api_name, suffix = KINDS[c.kind]
            _call(cluster, namespace, f"set the owner of {c.kind} {c.name}",
                  getattr(cluster.api(api_name), f"patch_{suffix}"), c.name, namespace,
                  {"metadata": {"ownerReferences": owner}})


def _wait_connected(cluster: Cluster, spec: SwarmSpec, result: UpResult, timeout_s: float, poll_s: float,
                    progress: Progress) -> None:
    deadline = time.monotonic() + timeout_s
    last, wait_s = None, 0.25
    while True:
        st = status(cluster, spec.namespace, spec.run_id)
        for pod in st.pods:
            if pod.waiting_reason in IMAGE_ERRORS:
                raise ClusterError(f"image {spec.image} cannot be pulled (pod {pod.name}: {pod.waiting_reason}: {pod.message})")
        if st.master_failed:
            raise ClusterError(f"master Job failed before the workers connected: {st.master_log_tail or 'no log'}")
        result.connected = st.connected
        if st.master_succeeded:
            result.finished = True
            progress("master already finished")
            return
        if st.connected >= spec.workers:
            progress(f"{st.connected} of {spec.workers} workers connected: the run is on")
            return
        line = f"{st.connected} of {spec.workers} workers connected; pods: {st.pod_summary()}"
        if line != last:
            progress(line)
            last = line
        if time.monotonic() >= deadline:
            raise ClusterError(f"workers never connected: {st.connected} of {spec.workers} after {timeout_s:.0f} s "
                               f"(pods: {st.pod_summary()})")
        time.sleep(min(wait_s, max(0.0, deadline - time.monotonic())))
        wait_s = min(poll_s, wait_s * 1.5)  # quick first looks, then one every poll_s


def _delete_created(cluster: Cluster, namespace: str, created: list[Created]) -> str:
    """Delete what `up` created, newest first; say what was deleted (errors included, never raised)."""
    done, failed = [], []
    for c in reversed(created):
        try:
            _delete_one(cluster, namespace, c.kind, c.name)
            done.append(f"{c.kind}/{c.name}")
        except ClusterError as exc:
            failed.append(f"{c.kind}/{c.name} ({exc})")
    if not created:
        return "nothing had been created"
    return ", ".join(done) + (f"; NOT deleted: {', '.join(failed)}" if failed else "")


def _delete_one(cluster: Cluster, namespace: str, kind: str, name: str) -> None:
    from kubernetes.client.rest import ApiException
    from urllib3.exceptions import HTTPError

    api_name, suffix = KINDS.get(kind, ("CoreV1Api", "namespaced_pod"))
    fn = getattr(cluster.api(api_name), f"delete_{suffix}")
    try:
        # Background propagation: the Jobs' pods go with them.
        fn(name, namespace, propagation_policy="Background", _request_timeout=REQUEST_TIMEOUT_S)
    except ApiException as exc:
        if exc.status != 404:
            raise _explain(exc, cluster, namespace, f"delete {kind} {name}") from None
    except (HTTPError, OSError) as exc:
        raise _explain(exc, cluster, namespace, f"delete {kind} {name}") from None


# ---------------------------------------------------------------- status

@dataclass
class PodState:
    name: str
    component: str
    phase: str
    waiting_reason: str | None = None
    message: str = ""
    exit_code: int | None = None

    def label(self) -> str:
        extra = self.waiting_reason or (f"exit {self.exit_code}" if self.exit_code is not None else "")
        return f"{self.name}={self.phase}" + (f"({extra})" if extra else "")


@dataclass
class SwarmStatus:
    namespace: str
    run_id: str | None
    jobs: dict[str, dict] = field(default_factory=dict)
    pods: list[PodState] = field(default_factory=list)
    connected: int = 0
    master_log_tail: str = ""

    @property
    def master_succeeded(self) -> bool:
        return bool(self.jobs.get("gala-master", {}).get("succeeded"))

    @property
    def master_failed(self) -> bool:
        return bool(self.jobs.get("gala-master", {}).get("failed"))

    def pod_summary(self) -> str:
        return ", ".join(p.label() for p in self.pods) or "none yet"


def _run_filter(run_id: str | None) -> tuple[str, Callable[[dict], bool]]:
    selector = f"{RUN_ID_LABEL}={run_id}" if run_id else "app.kubernetes.io/part-of=gala"
    # Filter on our side too: the selector is the server's job, but a wrong match would delete too much.
    if run_id:
        return selector, lambda labels: labels.get(RUN_ID_LABEL) == run_id
    return selector, lambda labels: labels.get("app.kubernetes.io/part-of") == "gala"


def _pod_state(pod) -> PodState:
    labels = _labels_of(pod)
    st = pod.status
    waiting, message, exit_code = None, "", None
    for cs in (st.container_statuses or []) if st else []:
        if cs.state and cs.state.waiting and cs.state.waiting.reason:
            waiting, message = cs.state.waiting.reason, cs.state.waiting.message or ""
        if cs.state and cs.state.terminated:
            exit_code = cs.state.terminated.exit_code
    return PodState(pod.metadata.name, labels.get("app.kubernetes.io/component", "?"),
                    (st.phase if st and st.phase else "Pending"), waiting, message, exit_code)


def read_log(cluster: Cluster, namespace: str, pod: str) -> str:
    return _call(cluster, namespace, f"read the log of pod {pod}",
                 cluster.api("CoreV1Api").read_namespaced_pod_log, pod, namespace, container="master")


def connected_workers(log_text: str) -> int:
    """The latest count of connected workers the Locust master logged."""
    counts = [(m.start(), int(m.group(1))) for rx in _CONNECTED for m in rx.finditer(log_text)]
    return max(counts)[1] if counts else 0


def status(cluster: Cluster, namespace: str, run_id: str | None = None) -> SwarmStatus:
    """Jobs, pods, and connected workers of a run (or of any gala run in the namespace)."""
    selector, keep = _run_filter(run_id)
    batch, core = cluster.api("BatchV1Api"), cluster.api("CoreV1Api")
    st = SwarmStatus(namespace, run_id)
    for job in _call(cluster, namespace, "list Jobs", batch.list_namespaced_job, namespace, label_selector=selector).items:
        if keep(_labels_of(job)):
            s = job.status
            st.jobs[job.metadata.name] = {"active": (s.active or 0) if s else 0, "succeeded": (s.succeeded or 0) if s else 0,
                                          "failed": (s.failed or 0) if s else 0, "run_id": _labels_of(job).get(RUN_ID_LABEL)}
    pods = [p for p in _call(cluster, namespace, "list pods", core.list_namespaced_pod, namespace, label_selector=selector).items
            if keep(_labels_of(p))]
    st.pods = sorted((_pod_state(p) for p in pods), key=lambda p: (p.component != "master", p.name))
    master = next((p for p in st.pods if p.component == "master" and p.phase in ("Running", "Succeeded", "Failed")), None)
    if master is not None:
        log = read_log(cluster, namespace, master.name)
        st.connected = connected_workers(log)
        st.master_log_tail = " | ".join(line for line in log.splitlines()[-3:] if "gala-results" not in line)[-300:]
    return st


# ---------------------------------------------------------------- down

def down(cluster: Cluster, namespace: str, run_id: str, *, ttl_s: int | None = None) -> list[str]:
    """Delete everything labelled with the run id (or, with ttl_s, let the Jobs expire after finishing)."""
    selector, keep = _run_filter(run_id)
    if ttl_s is not None:
        batch = cluster.api("BatchV1Api")
        names = [j.metadata.name for j in _call(cluster, namespace, "list Jobs", batch.list_namespaced_job, namespace,
                                                label_selector=selector).items if keep(_labels_of(j))]
        for name in names:
            _call(cluster, namespace, f"patch Job {name}", batch.patch_namespaced_job, name, namespace,
                  {"spec": {"ttlSecondsAfterFinished": ttl_s}})
        return [f"Job/{n} (ttlSecondsAfterFinished={ttl_s})" for n in names]
    deleted = []
    for kind, (api_name, suffix) in [*KINDS.items(), ("Pod", ("CoreV1Api", "namespaced_pod"))]:
        api = cluster.api(api_name)
        items = _call(cluster, namespace, f"list {kind}s", getattr(api, f"list_{suffix}"), namespace, label_selector=selector).items
        for obj in items:
            if keep(_labels_of(obj)):
                _delete_one(cluster, namespace, kind, obj.metadata.name)
                deleted.append(f"{kind}/{obj.metadata.name}")
    return deleted
