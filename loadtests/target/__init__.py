"""The built-in reference target: a real red-envelope service (grab, share, chat) on loopback.

It runs in its own process(es) (`gala target serve`) and never imports Locust or gevent. Layout:
`config.py` (validated settings), `faults.py` (fault injection), `split.py` (pure money
arithmetic), `schedule.py` (the drop schedule as arithmetic), `store.py` (the one store interface),
`state.py` + `memory.py` (the in-memory store), `redis_store.py` + `lua/` (the Redis store, one
script per state change), `audit.py` (invariants over a store's snapshot), `metrics.py`
(Prometheus counters), `linkcpu.py` (CPU per link), `app.py` (HTTP handlers), `guard.py`
(connections: timeouts, cap, JSON parser errors), `server.py` (a serving process),
`supervisor.py` (N processes over Redis), `client.py` (a small blocking JSON client for tests and
scripts).
"""
