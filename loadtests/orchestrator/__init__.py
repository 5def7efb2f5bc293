"""The code that runs in the `gala` process to orchestrate a run: start the target and Locust as
subprocesses, sample their CPU, show the live line, and write the results folder.

Never imports Locust, gevent or aiohttp (Locust runs as `python -m locust` children).
"""
