"""Everything about running load, kept apart by the process it runs in (docs/architecture.md):

- `locust_plugin/`: runs inside Locust's processes (gevent): user classes, pacing, the shape that
  plays a scenario's phases, the stats plugin. `locustfile.py` is its entry point (`locust -f`).
- `orchestrator/`: runs in the `gala` process: starts the target and Locust as subprocesses,
  samples CPU, writes the results folder. Never imports Locust, gevent or aiohttp.
- `target/`: the built-in reference target, the system under test: its own program.
- `swarm/`: the rehearsal as pods on Kubernetes (render, launch, collect, size) and the master
  pod's entry point; the manifests themselves are in the top-level `k8s/` folder.
- `scenario/`: the scenario format, read by all of the above; `scenarios/`: the packaged files.
"""
