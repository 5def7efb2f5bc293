"""`gala run --target-processes N --target-store URL`: the rehearsal against the built-in target as N
processes sharing Redis, each process's CPU sampled (and the store's), the audit from the store."""

from __future__ import annotations

import json

import pandas as pd

from conftest import gala


def test_run_against_two_target_processes_over_redis(tmp_path, redis_url):
    proc = gala("run", "--duration-scale", "0.1", "--no-plan", "--quiet", "--out", str(tmp_path),
                "--target-processes", "2", "--target-store", redis_url, timeout_s=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run_dir = next(p for p in tmp_path.iterdir() if (p / "run.json").exists())
    info = json.loads((run_dir / "run.json").read_text())
    assert info["target"]["store"] == redis_url and info["target"]["target_processes"] == 2
    assert info["audit"]["passed"], info["audit"]
    cpu = pd.read_csv(run_dir / "cpu.csv")
    target = cpu[cpu["role"] == "target"]
    names = target.groupby("name")["pid"].nunique()
    # the supervisor and its two workers (one program), and the shared redis-server
    assert names.get("redis-server", 0) == 1 and names.drop("redis-server").max() >= 3, names
    busy = target.groupby("pid")["cpu_s"].max()
    assert (busy > 0).sum() >= 3, busy  # each worker did work


def test_target_processes_need_a_store(tmp_path):
    proc = gala("run", "--no-plan", "--out", str(tmp_path), "--target-processes", "2", timeout_s=60)
    assert proc.returncode == 2 and "needs --target-store" in proc.stderr and "Traceback" not in proc.stderr
    assert not list(tmp_path.iterdir())
