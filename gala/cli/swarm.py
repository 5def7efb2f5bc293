"""`gala swarm`: the rehearsal as a Locust master and workers on Kubernetes (k8s/)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gala.contract.errors import ExitCode, exit_codes_help


EXAMPLES = """examples:
  gala swarm size --rps 50000 --from results/<run-id>      workers for 50,000 req/s (and for the night)
  gala swarm up -n gala --image registry.example/gala:0.1.0 --workers 8 \\
      --target-url http://192.0.2.10:8080 --target-secret staging-creds --scenario my.yaml
  gala swarm status -n gala --run-id <id>
  gala swarm collect -n gala --run-id <id>                  the master's results into results/<gala run id>/
  gala swarm down -n gala --run-id <id>                     (or --ttl 600: let the Jobs expire after the run)
  gala swarm render --target-url http://192.0.2.10:8080 --out deploy/   the same objects, for GitOps

""" + exit_codes_help(ExitCode.OK, ExitCode.BAD_INPUT, ExitCode.CLUSTER_ERROR) + "\n"


def _kube_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config, else in-cluster)")
    p.add_argument("--context", help="kubeconfig context (default: the current one)")
    p.add_argument("--namespace", "-n", default="gala", help="namespace of the swarm (must exist; default: gala)")


def _spec_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target-url", required=True,
                   help="the system under test as the pods reach it, e.g. http://192.0.2.10:8080 (required; no default)")
    p.add_argument("--target-cidr", help="CIDR the NetworkPolicy lets the pods reach (default: the URL's IP/32; needed for a host name)")
    p.add_argument("--target-port", type=int, help="target port for the NetworkPolicy (default: the URL's)")
    p.add_argument("--target-secret", metavar="NAME",
                   help="Secret whose keys become the pods' environment (target credentials: never an argument or ConfigMap)")
    p.add_argument("--web-ui", metavar="SECRET",
                   help="also expose Locust's web UI (ClusterIP port 8089, Locust's --web-login, the login from this "
                        "Secret); gala run's master is headless today, so nothing serves it yet")
    p.add_argument("--scenario", help="scenario file (default: the packaged feb1.yaml)")
    p.add_argument("--image", default="gala:0.1.0", help="container image built from the Dockerfile (default: gala:0.1.0)")
    p.add_argument("--workers", type=int, default=2, help="Locust workers, one pod each (default: 2; see `gala swarm size`)")
    p.add_argument("--run-id", help="label value for every object (default: YYYYMMDD-HHMMSS-<scenario>-<hex>)")
    p.add_argument("--ttl", type=int, metavar="S", help="ttlSecondsAfterFinished of the Jobs (default: kept until `down`)")


def register(sub) -> None:
    p = sub.add_parser("swarm", help="run the rehearsal as a Locust swarm on Kubernetes",
                       description="Render, launch, watch, collect and remove a distributed rehearsal on Kubernetes. "
                                   "Exit 2 for bad input, 3 for a cluster error (after cleaning up what `up` created).",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES)
    ssub = p.add_subparsers(dest="swarm_command", metavar="SWARM_COMMAND")

    r = ssub.add_parser("render", help="print the manifests (or write them to a folder, for GitOps)")
    _spec_options(r)
    r.add_argument("--namespace", "-n", default="gala", help="namespace of the swarm (default: gala)")
    r.add_argument("--out", type=Path, help="write one file per object and a kustomization.yaml into this folder")
    r.set_defaults(func=_render)

    u = ssub.add_parser("up", help="create the swarm and wait (bounded) until its workers connect")
    _kube_options(u)
    _spec_options(u)
    u.add_argument("--connect-timeout", type=float, default=300, metavar="S",
                   help="fail (and clean up) when the workers have not connected after S seconds (default: 300)")
    u.set_defaults(func=_up)

    s = ssub.add_parser("status", help="jobs, pods and connected workers of a run")
    _kube_options(s)
    s.add_argument("--run-id", help="the run (default: every gala run in the namespace)")
    s.set_defaults(func=_status)

    c = ssub.add_parser("collect", help="copy the master's results folder into results/<run-id>/")
    _kube_options(c)
    c.add_argument("--run-id", required=True, help="the swarm's run id (as `up` printed it)")
    c.add_argument("--out", type=Path, default=Path("results"), help="where results folders go (default: results)")
    c.set_defaults(func=_collect)

    d = ssub.add_parser("down", help="delete everything the run created (by its label)")
    _kube_options(d)
    d.add_argument("--run-id", required=True, help="the swarm's run id")
    d.add_argument("--ttl", type=int, metavar="S",
                   help="instead of deleting now, let the Jobs (and what they own) expire S seconds after finishing")
    d.set_defaults(func=_down)

    z = ssub.add_parser("size", help="workers and pods needed for a request rate, from a measured run")
    z.add_argument("--rps", type=float, required=True, help="requests per second to generate")
    z.add_argument("--from", dest="from_run", type=Path, help="results folder to measure (default: the newest under results/)")
    z.add_argument("--worker-cpu", type=float, default=0.7, help="planned CPU of one worker, in cores (default: 0.7)")
    z.add_argument("--pod-cpu-limit", type=float, default=1.0, help="CPU limit of a worker pod, in cores (default: 1)")
    z.add_argument("--write-overlay", action="store_true",
                   help="write the worker count (and the measured run's scenario) into k8s/overlays/gala-night")
    z.add_argument("--overlay-dir", type=Path, help=argparse.SUPPRESS)
    z.set_defaults(func=_size)

    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _guard(fn):
    """Cluster errors: one line and exit 4 (bad input stays InputError: exit 2 from gala.cli)."""
    def run(args) -> int:
        from loadtests.swarm.launcher import ClusterError

        try:
            return fn(args)
        except ClusterError as exc:
            print(f"gala swarm: {exc}", file=sys.stderr)
            return int(exc.exit_code)
    return run


def _build_spec(args):
    from gala.cli.check import checked_scenario
    from gala.contract.errors import InputError
    from gala.contract.yamlfile import read_text
    from loadtests.swarm.render import make_spec, new_run_id, swarm_scenario
    from loadtests.scenario import DEFAULT_SCENARIO

    path = Path(args.scenario) if args.scenario else DEFAULT_SCENARIO
    scenario = checked_scenario(path)  # every check of `gala check`: faults are one line each, exit 2
    if args.ttl is not None and args.ttl < 0:
        raise InputError(f"--ttl: expected seconds >= 0, got {args.ttl}")
    spec = make_spec(run_id=args.run_id or new_run_id(scenario.name), namespace=args.namespace, image=args.image,
                     workers=args.workers, target_url=args.target_url, target_cidr=args.target_cidr,
                     target_port=args.target_port,
                     scenario_text=swarm_scenario(read_text(path, "scenario"), path.name),
                     ttl_s=args.ttl,
                     target_secret=args.target_secret, web_ui_secret=args.web_ui)
    spec.egress()  # a host name without --target-cidr is an input error, found before any cluster call
    return spec


def _render(args) -> int:
    from loadtests.swarm.render import render, to_yaml, write_dir

    spec = _build_spec(args)
    docs = render(spec)
    if args.out:
        paths = write_dir(docs, args.out)
        print(f"wrote {len(paths)} manifests and kustomization.yaml to {args.out} (run {spec.run_id})", file=sys.stderr)
    else:
        sys.stdout.write(to_yaml(docs))
    return 0


@_guard
def _up(args) -> int:
    from loadtests.swarm.launcher import connect, up

    spec = _build_spec(args)
    cluster = connect(args.kubeconfig, args.context)
    up(cluster, spec, connect_timeout_s=args.connect_timeout,
       progress=lambda m: print(f"gala swarm: {m}", file=sys.stderr, flush=True))
    print(spec.run_id)
    print(f"gala swarm: run {spec.run_id} is up in {spec.namespace}; then: gala swarm status -n {spec.namespace} "
          f"--run-id {spec.run_id}, gala swarm collect ..., gala swarm down ...", file=sys.stderr)
    return 0


@_guard
def _status(args) -> int:
    from loadtests.swarm.launcher import connect, status

    st = status(connect(args.kubeconfig, args.context), args.namespace, args.run_id)
    if not st.jobs and not st.pods:
        print(f"namespace {args.namespace}: no gala swarm" + (f" with run id {args.run_id}" if args.run_id else ""))
        return 1
    for name, j in sorted(st.jobs.items()):
        print(f"job {name}: run {j['run_id']} active={j['active']} succeeded={j['succeeded']} failed={j['failed']}")
    for pod in st.pods:
        print(f"pod {pod.label()} [{pod.component}]")
    print(f"workers connected: {st.connected}")
    return 0


@_guard
def _collect(args) -> int:
    from loadtests.swarm.collect import collect
    from loadtests.swarm.launcher import connect

    folder = collect(connect(args.kubeconfig, args.context), args.namespace, args.run_id, args.out)
    print(folder)
    return 0


@_guard
def _down(args) -> int:
    from loadtests.swarm.launcher import connect, down

    if args.ttl is not None and args.ttl < 0:
        from gala.contract.errors import InputError
        raise InputError(f"--ttl: expected seconds >= 0, got {args.ttl}")
    done = down(connect(args.kubeconfig, args.context), args.namespace, args.run_id, ttl_s=args.ttl)
    verb = "set to expire" if args.ttl is not None else "deleted"
    print(f"{verb}: {', '.join(done) if done else 'nothing (no object has that run id)'}")
    return 0


def _size(args) -> int:
    from gala.cli.check import checked_scenario
    from gala.contract.atomic import write_text_atomic
    from gala.contract.results import load_run
    from gala.contract.yamlfile import read_text
    from loadtests.swarm.render import OVERLAYS_DIR, swarm_scenario
    from loadtests.swarm.size import NIGHT_RPS, generator_cost, latest_run, size_for, write_overlay

    run = load_run(args.from_run or latest_run(Path("results")))
    scenario = run.path / "scenario.yaml"
    if args.write_overlay and scenario.exists():
        # what the swarm will run: held to every check of `gala check` before anything is written
        checked_scenario(scenario)
    cost = generator_cost(run)
    print(f"run {cost.run_id}: {cost.requests} requests, generator {cost.generator_cpu_s:.2f} CPU-s over "
          f"{cost.processes} process(es): {cost.cpu_s_per_request * 1e3:.3f} ms CPU per request")
    sizes = [size_for(args.rps, cost.cpu_s_per_request, worker_cpu_target=args.worker_cpu, pod_cpu_limit=args.pod_cpu_limit)]
    if args.rps != NIGHT_RPS:
        sizes.append(size_for(NIGHT_RPS, cost.cpu_s_per_request, worker_cpu_target=args.worker_cpu, pod_cpu_limit=args.pod_cpu_limit))
    for s in sizes:
        label = " (the night: 17.7e9 requests/min)" if s.rps == NIGHT_RPS else ""
        print(f"{s.rps:,.0f} req/s{label}: {s.cores:,.1f} cores -> {s.workers:,} workers at {s.worker_cpu_target} core "
              f"-> {s.pods:,} pods ({s.workers_per_pod} worker(s) per pod, limit {s.pod_cpu_limit} core)")
    if args.write_overlay:
        overlay = args.overlay_dir or OVERLAYS_DIR / "gala-night"
        path = write_overlay(overlay, sizes[0].workers, f"{sizes[0].workers} workers for {args.rps:,.0f} req/s, "
                                                        f"measured on run {cost.run_id}")
        if scenario.exists():
            text = swarm_scenario(read_text(scenario, "scenario"), f"{run.path.name}/scenario.yaml")
            write_text_atomic(overlay / "scenario.yaml", text)
        print(f"wrote {path}")
    return 0
