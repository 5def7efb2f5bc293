"""The code that runs inside Locust's processes (local, master or worker), under gevent.

User classes (`users/`), the load shape and its dispatcher (`shape.py`), the stats plugin
(`stats.py`), and how a scenario becomes Locust classes (`classes.py`, `runtime.py`). Nothing
outside this folder (and `loadtests/locustfile.py`) imports Locust or gevent.
"""
