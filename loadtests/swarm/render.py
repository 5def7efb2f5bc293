"""The swarm's Kubernetes manifests, rendered in Python from the kustomize base (`k8s/base/`).

One source of truth: `kubectl kustomize k8s/base` and `render(SwarmSpec)` read the same YAML files;
this module applies the few per-run settings (namespace, run id, image, workers, target, scenario,
TTL, Secret reference) that the overlays express as kustomize patches. `gala swarm render` prints
what `gala swarm up` creates, object for object.
"""

from __future__ import annotations

import copy
import ipaddress
import re
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

from gala.contract.errors import InputError
from gala.contract.loopback import is_loopback_host
from gala.contract.yamlfile import describe_error, parse_marked

# The kustomize files live in the checkout's k8s/ folder: one source of truth with `kubectl kustomize`.
K8S_DIR = Path(__file__).resolve().parents[2] / "k8s"
BASE_DIR = K8S_DIR / "base"
OVERLAYS_DIR = K8S_DIR / "overlays"
RUN_ID_LABEL = "gala.run-id"
WEB_PORT = 8089
# Label values: at most 63 characters, alphanumerics with -_. inside.
_LABEL_VALUE = r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$"
_DNS_LABEL = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"


class SwarmSpec(BaseModel):
    """What one swarm run needs: everything `render` varies from the base."""

    run_id: str = Field(pattern=_LABEL_VALUE)
    namespace: str = Field(pattern=_DNS_LABEL)
    image: str = Field(default="gala:0.1.0", min_length=1)
    workers: int = Field(ge=1, le=100_000)
    target_url: str
    target_cidr: str | None = None
    target_port: int | None = Field(default=None, ge=1, le=65535)
    scenario_text: str
    ttl_s: int | None = Field(default=None, ge=0)
    target_secret: str | None = Field(default=None, pattern=_DNS_LABEL)
    web_ui_secret: str | None = Field(default=None, pattern=_DNS_LABEL)

    @field_validator("target_url")
    @classmethod
    def _target_url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http(s) URL like http://192.0.2.10:8080, got {v!r}")
        if parts.username or parts.password:
            raise ValueError("credentials do not belong in the URL: put them in a Secret (--target-secret)")
        host = parts.hostname
        if is_loopback_host(host):
            raise ValueError(f"{host} inside a pod is the pod itself: give the target's address in the cluster")
        return v.rstrip("/")

    @field_validator("target_cidr")
    @classmethod
    def _cidr(cls, v: str | None) -> str | None:
        if v is not None:
            ipaddress.ip_network(v, strict=False)  # ValueError names the bad CIDR
        return v

    def egress(self) -> tuple[str, int]:
        """The target's CIDR and port for the NetworkPolicies, from the URL where it holds an IP."""
        parts = urlsplit(self.target_url)
        port = self.target_port or parts.port or (443 if parts.scheme == "https" else 80)
        if self.target_cidr:
            return str(ipaddress.ip_network(self.target_cidr, strict=False)), port
        try:
            ip = ipaddress.ip_address(parts.hostname)
        except ValueError:
            raise InputError(
                f"--target-cidr: the target host {parts.hostname!r} is a name; give the CIDR of its addresses "
                "(the NetworkPolicy allows egress to IPs only)"
            ) from None
        return f"{ip}/{ip.max_prefixlen}", port


def new_run_id(scenario_name: str) -> str:
    """A run id in the results format: `YYYYMMDD-HHMMSS-<scenario>-<6 hex>` (UTC), label-safe."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", scenario_name)[:30].strip("-_.") or "swarm"
    return f"{stamp}-{name}-{secrets.token_hex(3)}"


# SwarmSpec fields whose command-line option has another name.
_OPTION_OF = {"web_ui_secret": "web-ui", "ttl_s": "ttl",
              "scenario_text": "scenario"}


def make_spec(**fields: Any) -> SwarmSpec:
    """Build a SwarmSpec, turning a validation error into one InputError line naming the option."""
    try:
        return SwarmSpec(**fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else "swarm"
        field = _OPTION_OF.get(name, name.replace("_", "-"))
        raise InputError(f"--{field}: {describe_error(err, SwarmSpec)}") from None


def swarm_scenario(text: str, source: str) -> str:
    """The scenario as the swarm runs it: `gala run --host` loads a non-loopback target only when
    the scenario sets target.allow_remote_target, and a swarm's target is never the pod's loopback.
    A scenario that already allows it is kept byte for byte (comments included)."""
    data, _ = parse_marked(text, source)  # the shared reader: bounded, and its scalars are the checks' scalars
    if not isinstance(data, dict):
        raise InputError(f"{source}: expected a scenario mapping")
    target = data.get("target") or {}
    if target.get("allow_remote_target") is True:
        return text
    data["target"] = {**target, "allow_remote_target": True}
    header = (f"# {source}, as `gala swarm` runs it: target.allow_remote_target set to true, because the\n"
              "# swarm's target is --target-url, outside the pods.\n")
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _load_yaml_docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def load_base(base_dir: Path = BASE_DIR) -> list[dict]:
    """The base's objects as kustomize builds them: its resources, then its ConfigMap generators."""
    if not (base_dir / "kustomization.yaml").is_file():
        raise InputError(f"{base_dir}: no kustomize base there; gala swarm renders from a gala checkout's k8s/ "
                         "folder (install gala with `pip install -e .` from the clone)")
    kust = yaml.safe_load((base_dir / "kustomization.yaml").read_text(encoding="utf-8"))
    docs: list[dict] = []
    for res in kust.get("resources", []):
        docs.extend(_load_yaml_docs(base_dir / res))
    for gen in kust.get("configMapGenerator", []):
        data = {}
        for f in gen.get("files", []):
            key, _, rel = f.partition("=")
            data[key] = (base_dir / (rel or key)).read_text(encoding="utf-8")
        labels = dict(gen.get("options", {}).get("labels", {}))
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": gen["name"], "labels": labels}, "data": data})
    return docs


def _find(docs: list[dict], kind: str, name: str) -> dict:
    for d in docs:
        if d["kind"] == kind and d["metadata"]["name"] == name:
            return d
    raise KeyError(f"k8s/base has no {kind} {name}")  # a broken base is a bug, not bad input


def _set_env(container: dict, name: str, value: str) -> None:
    for e in container.setdefault("env", []):
        if e["name"] == name:
            e["value"] = value
            return
    container["env"].append({"name": name, "value": value})


def _pod_templates(doc: dict) -> list[dict]:
    tmpl = doc.get("spec", {}).get("template")
    return [tmpl] if tmpl else []


def render(spec: SwarmSpec, base: list[dict] | None = None) -> list[dict]:
    """The manifests of one swarm run: the base with this run's settings applied."""
    docs = copy.deepcopy(base if base is not None else load_base())
    cidr, port = spec.egress()
    for d in docs:
        d["metadata"]["namespace"] = spec.namespace
        d["metadata"].setdefault("labels", {})[RUN_ID_LABEL] = spec.run_id
        for tmpl in _pod_templates(d):
            tmpl.setdefault("metadata", {}).setdefault("labels", {})[RUN_ID_LABEL] = spec.run_id
            for c in tmpl["spec"]["containers"]:
                c["image"] = spec.image
                if spec.target_secret:
                    # Target credentials reach the pods only as environment from a Secret reference.
                    c["envFrom"] = [{"secretRef": {"name": spec.target_secret}}]
        if d["kind"] == "NetworkPolicy":
            rule = d["spec"]["egress"][0]
            rule["to"][0]["ipBlock"]["cidr"] = cidr
            rule["ports"][0]["port"] = port
        if d["kind"] == "Job" and spec.ttl_s is not None:
            d["spec"]["ttlSecondsAfterFinished"] = spec.ttl_s

    master = _find(docs, "Job", "gala-master")["spec"]["template"]["spec"]["containers"][0]
    _set_env(master, "GALA_WORKERS", str(spec.workers))
    _set_env(master, "TARGET_URL", spec.target_url)
    workers = _find(docs, "Job", "gala-worker")["spec"]
    _set_env(workers["template"]["spec"]["containers"][0], "TARGET_URL", spec.target_url)
    workers["parallelism"] = workers["completions"] = spec.workers
    _find(docs, "ConfigMap", "gala-scenario")["data"] = {"scenario.yaml": spec.scenario_text}
    if spec.web_ui_secret:
        _add_web_ui(docs, master, spec.web_ui_secret)
    return docs


def _add_web_ui(docs: list[dict], master: dict, secret: str) -> None:
    """Locust's web UI, only when asked: port 8089 on the ClusterIP Service (reach it with
    `kubectl port-forward`), behind Locust's login page, its credentials from a Secret."""
    master["ports"].append({"name": "web", "containerPort": WEB_PORT, "protocol": "TCP"})
    _set_env(master, "LOCUST_WEB_LOGIN", "true")
    master.setdefault("envFrom", []).append({"secretRef": {"name": secret}})
    _find(docs, "Service", "gala-master")["spec"]["ports"].append(
        {"name": "web", "port": WEB_PORT, "targetPort": WEB_PORT, "protocol": "TCP"})
    # From pods of this namespace only (port-forwarding does not pass through NetworkPolicies).
    _find(docs, "NetworkPolicy", "gala-master")["spec"]["ingress"].append(
        {"from": [{"podSelector": {}}], "ports": [{"protocol": "TCP", "port": WEB_PORT}]})


def pod_templates(docs: list[dict]) -> list[tuple[str, dict]]:
    """(object name, pod spec) of every pod template in a rendered set."""
    return [(f"{d['kind']}/{d['metadata']['name']}", t["spec"]) for d in docs for t in _pod_templates(d)]


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the scenario) as literal blocks, readable in a GitOps diff."""


_Dumper.add_representer(str, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", v, style="|" if "\n" in v else None))


def to_yaml(docs: list[dict]) -> str:
    return yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)


def write_dir(docs: list[dict], out: Path) -> list[Path]:
    """One file per object (`<kind>-<name>.yaml`) plus a kustomization.yaml listing them, for GitOps."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for d in docs:
        p = out / f"{d['kind'].lower()}-{d['metadata']['name']}.yaml"
        p.write_text(to_yaml([d]), encoding="utf-8")
        paths.append(p)
    kust = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": [p.name for p in paths]}
    (out / "kustomization.yaml").write_text(yaml.safe_dump(kust, sort_keys=False), encoding="utf-8")
    return paths
