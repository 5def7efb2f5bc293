"""The swarm's manifests: kustomize base and overlays, and `gala swarm render`, validated strictly
against a current Kubernetes schema, with restricted Pod Security asserted on every pod template."""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from conftest import REPO, gala
from loadtests.swarm.render import RUN_ID_LABEL, load_base, make_spec, pod_templates, render
from loadtests.scenario import load_scenario

K8S_VERSION = kubernetes_validate.latest_version()  # the newest schema the package ships (1.37 here)
KUSTOMIZE_DIRS = ["k8s/base", "k8s/overlays/smoke", "k8s/overlays/gala-night"]
SMOKE_ARGS = ["--namespace", "gala-smoke", "--run-id", "smoke", "--workers", "2", "--target-url", "http://192.0.2.10:8080",
              "--target-cidr", "192.0.2.0/24", "--scenario", "k8s/base/scenario.yaml"]
KUBECTL = shutil.which("kubectl")


def kustomize(path: str) -> list[dict]:
    if not KUBECTL:
        pytest.skip("kubectl is not installed: cannot run `kubectl kustomize`")
    proc = subprocess.run([KUBECTL, "kustomize", str(REPO / path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def gala_render(*args: str) -> list[dict]:
    proc = gala("swarm", "render", *args, timeout_s=60)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def assert_restricted(docs: list[dict]) -> None:
    """Restricted Pod Security Standard, the fields the issue names, on every pod template."""
    templates = pod_templates(docs)
    assert {name for name, _ in templates} == {"Job/gala-master", "Job/gala-worker"}
    for name, pod in templates:
        psc = pod["securityContext"]
        assert psc["runAsNonRoot"] is True, name
        assert isinstance(psc["runAsUser"], int) and psc["runAsUser"] > 0, name
        assert psc["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod["automountServiceAccountToken"] is False and pod["serviceAccountName"] == "gala-swarm", name
        mounts_by_volume = {v["name"]: v for v in pod["volumes"]}
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"], name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["runAsNonRoot"] is True and sc["seccompProfile"]["type"] == "RuntimeDefault", name
            for kind in ("requests", "limits"):
                assert set(c["resources"][kind]) == {"cpu", "memory"}, (name, kind)
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            for path in ("/tmp", "/results"):
                assert "emptyDir" in mounts_by_volume[mounts[path]], (name, path)


def assert_valid(docs: list[dict]) -> None:
    for d in docs:
        kubernetes_validate.validate(d, K8S_VERSION, strict=True)  # raises ValidationError with the field


def assert_labelled(docs: list[dict], run_id: str) -> None:
    for d in docs:
        labels = d["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == "gala" and labels[RUN_ID_LABEL] == run_id, d["metadata"]["name"]
    for d in docs:
        if "template" in d.get("spec", {}):
            assert d["spec"]["template"]["metadata"]["labels"][RUN_ID_LABEL] == run_id


def by_key(docs: list[dict]) -> dict[tuple[str, str], dict]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def test_schema_version_is_current():
    major, minor = (int(x) for x in K8S_VERSION.split(".")[:2])
    assert (major, minor) >= (1, 30), f"kubernetes-validate ships schemas up to {K8S_VERSION} only"


@pytest.mark.parametrize("path", KUSTOMIZE_DIRS)
def test_kustomize_renders_valid_restricted_manifests(path):
    docs = kustomize(path)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["ConfigMap", "Job", "Job", "NetworkPolicy", "NetworkPolicy", "Service", "ServiceAccount"]
    assert_valid(docs)
    assert_restricted(docs)
    assert_labelled(docs, {"k8s/base": "unset", "k8s/overlays/smoke": "smoke", "k8s/overlays/gala-night": "gala-night"}[path])
    objs = by_key(docs)
    master = objs["Job", "gala-master"]["spec"]
    assert master["backoffLimit"] == 0
    env = {e["name"]: e["value"] for e in master["template"]["spec"]["containers"][0]["env"]}
    workers = objs["Job", "gala-worker"]["spec"]
    # --remote-workers (the master's --expect-workers) equals the workers' replicas.
    assert int(env["GALA_WORKERS"]) == workers["parallelism"] == workers["completions"]
    assert "--remote-workers" in master["template"]["spec"]["containers"][0]["args"]
    worker_env = {e["name"]: e["value"] for e in workers["template"]["spec"]["containers"][0]["env"]}
    assert worker_env["TARGET_URL"] == env["TARGET_URL"]
    svc = objs["Service", "gala-master"]["spec"]
    # No web UI unless asked: the Service and the master expose 5557 only.
    assert svc["type"] == "ClusterIP" and [p["port"] for p in svc["ports"]] == [5557]
    assert [p["containerPort"] for p in master["template"]["spec"]["containers"][0]["ports"]] == [5557]
    load_scenario_text(objs["ConfigMap", "gala-scenario"]["data"]["scenario.yaml"])


def load_scenario_text(text: str, tmp=Path("/tmp")) -> None:
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=tmp, delete=True) as f:
        f.write(text)
        f.flush()
        load_scenario(f.name)  # raises ScenarioError with the line when the ConfigMap's scenario is wrong


def test_smoke_overlay_has_two_workers_and_its_target():
    objs = by_key(kustomize("k8s/overlays/smoke"))
    assert objs["Job", "gala-worker"]["spec"]["parallelism"] == 2
    assert all(d["metadata"]["namespace"] == "gala-smoke" for d in objs.values())
    for name in ("gala-master", "gala-worker"):
        rule = objs["NetworkPolicy", name]["spec"]["egress"][0]
        assert rule == {"to": [{"ipBlock": {"cidr": "192.0.2.0/24"}}], "ports": [{"protocol": "TCP", "port": 8080}]}


def test_network_policies_allow_master_port_target_and_dns_only():
    objs = by_key(render(make_spec(run_id="r1", namespace="ns", workers=3, target_url="http://198.51.100.3:9000",
                                   scenario_text="name: x\n")))
    master, worker = objs["NetworkPolicy", "gala-master"]["spec"], objs["NetworkPolicy", "gala-worker"]["spec"]
    for pol in (master, worker):
        assert set(pol["policyTypes"]) == {"Ingress", "Egress"}
        assert pol["egress"][0]["to"] == [{"ipBlock": {"cidr": "198.51.100.3/32"}}]
        assert pol["egress"][0]["ports"] == [{"protocol": "TCP", "port": 9000}]
        assert pol["egress"][-1] == {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}
    assert master["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "master"
    assert master["ingress"] == [{"from": [{"podSelector": {"matchLabels": {
        "app.kubernetes.io/name": "gala-swarm", "app.kubernetes.io/component": "worker"}}}],
        "ports": [{"protocol": "TCP", "port": 5557}]}]
    assert worker["ingress"] == []
    assert worker["egress"][1]["ports"] == [{"protocol": "TCP", "port": 5557}]
    assert len(master["egress"]) == 2 and len(worker["egress"]) == 3


def test_base_never_points_at_a_public_address():
    for d in load_base():
        if d["kind"] == "NetworkPolicy":
            cidr = ipaddress.ip_network(d["spec"]["egress"][0]["to"][0]["ipBlock"]["cidr"])
            assert not cidr.is_global, cidr


def test_gala_render_equals_the_smoke_overlay():
    """`gala swarm render` and kustomize read the same base: same objects, same fields."""
    ours = by_key(gala_render(*SMOKE_ARGS))
    theirs = by_key(kustomize("k8s/overlays/smoke"))
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert ours[key] == theirs[key], key


def test_gala_render_validates_and_is_restricted(tmp_path):
    docs = gala_render("--target-url", "https://203.0.113.5", "--workers", "7", "--run-id", "20260207-200000-feb1-abc123",
                       "--target-secret", "staging-creds", "--ttl", "3600", "--image", "registry.local/gala:1")
    assert_valid(docs)
    assert_restricted(docs)
    assert_labelled(docs, "20260207-200000-feb1-abc123")
    objs = by_key(docs)
    assert objs["Job", "gala-worker"]["spec"]["parallelism"] == 7
    for name in ("gala-master", "gala-worker"):
        job = objs["Job", name]["spec"]
        assert job["ttlSecondsAfterFinished"] == 3600
        c = job["template"]["spec"]["containers"][0]
        assert c["image"] == "registry.local/gala:1"
        assert c["envFrom"] == [{"secretRef": {"name": "staging-creds"}}]
    assert objs["NetworkPolicy", "gala-master"]["spec"]["egress"][0]["ports"][0]["port"] == 443
    # The packaged feb1 scenario is the default, as `gala run --host` accepts it for a remote target;
    # no credential travels in a ConfigMap.
    ran = yaml.safe_load(objs["ConfigMap", "gala-scenario"]["data"]["scenario.yaml"])
    feb1 = yaml.safe_load((REPO / "loadtests/scenarios/feb1.yaml").read_text())
    assert ran["target"].pop("allow_remote_target") is True and ran == feb1
    assert "staging-creds" not in yaml.safe_dump(objs["ConfigMap", "gala-scenario"])


def test_web_ui_only_when_asked_clusterip_with_login_from_a_secret():
    docs = gala_render("--target-url", "http://192.0.2.10:8080", "--web-ui", "locust-login", "--run-id", "web")
    assert_valid(docs)
    assert_restricted(docs)
    objs = by_key(docs)
    svc = objs["Service", "gala-master"]["spec"]
    assert svc["type"] == "ClusterIP" and sorted(p["port"] for p in svc["ports"]) == [5557, 8089]
    master = objs["Job", "gala-master"]["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "LOCUST_WEB_LOGIN", "value": "true"} in master["env"]
    assert {"secretRef": {"name": "locust-login"}} in master["envFrom"]
    worker = objs["Job", "gala-worker"]["spec"]["template"]["spec"]["containers"][0]
    assert "envFrom" not in worker and "ports" not in worker


def test_render_out_writes_a_kustomization_that_kubectl_and_the_cli_validate(tmp_path):
    out = tmp_path / "gitops"
    proc = gala("swarm", "render", *SMOKE_ARGS, "--out", str(out), timeout_s=60)
    assert proc.returncode == 0, proc.stderr
    files = sorted(p.name for p in out.iterdir())
    assert "kustomization.yaml" in files and len(files) == 8
    docs = kustomize(str(out))
    assert by_key(docs) == by_key(kustomize("k8s/overlays/smoke"))
    # The command-line validator too, as an SRE would run it on the GitOps folder.
    exe = Path(sys.executable).parent / "kubernetes-validate"
    manifests = [str(out / f) for f in files if f != "kustomization.yaml"]
    cli = subprocess.run([str(exe), "--strict", "--kubernetes-version", K8S_VERSION, *manifests],
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stdout + cli.stderr


@pytest.mark.parametrize("args, expected", [
    (["--target-url", "http://127.0.0.1:8080"], "--target-url: 127.0.0.1 inside a pod is the pod itself"),
    (["--target-url", "ftp://192.0.2.1"], "--target-url: expected an http(s) URL"),
    (["--target-url", "http://user:pw@192.0.2.1"], "--target-url: credentials do not belong in the URL"),
    (["--target-url", "http://staging.internal"], "--target-cidr: the target host 'staging.internal' is a name"),
    (["--target-url", "http://192.0.2.1", "--workers", "0"], "--workers: expected a number >= 1, got 0"),
    (["--target-url", "http://192.0.2.1", "--namespace", "Bad_NS"], "--namespace: expected text matching"),
    (["--target-url", "http://192.0.2.1", "--web-ui", "Not A Name"], "--web-ui: expected text matching"),
    (["--target-url", "http://192.0.2.1", "--scenario", "/nonexistent/s.yaml"], "/nonexistent/s.yaml"),
])
def test_render_bad_input_is_one_line_and_exit_2(args, expected):
    proc = gala("swarm", "render", *args, timeout_s=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert expected in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_target_url_is_required():
    proc = gala("swarm", "render", timeout_s=60)
    assert proc.returncode == 2 and "--target-url" in proc.stderr
