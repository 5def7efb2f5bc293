"""The rehearsal as a Locust swarm on Kubernetes: render the manifests of the top-level `k8s/`
folder for one run, launch and follow it with the official client, collect its results, size it;
and the master pod's entry point (`entrypoint.py`). Runs in the `gala` process (and the entry
point in the master pod); never imports Locust or gevent.
"""
