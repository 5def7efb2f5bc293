"""The built-in reference target: a real red-envelope service (grab, share, chat) on loopback.

It runs in its own process (`gala target serve`) and never imports Locust or gevent. Layout:
`config.py` (validated settings), `faults.py` (fault injection), `split.py` (pure money
arithmetic), `state.py` (the in-memory domain), `audit.py` (invariants), `metrics.py`
(Prometheus counters), `app.py` (HTTP handlers), `server.py` (process lifecycle), `client.py`
(a small blocking JSON client for tests and scripts).
"""
