"""Latency statistics that merge exactly: Locust's rounding, bucket histograms, and `LatencyStats`,
the one statistics type for a (phase, link) or (second, link) cell.

A worker's cells travel to the master as wire rows and add key by key, so totals across workers
equal Locust's own; readers compute percentiles from the merged buckets (histograms.json).
Pure: no Locust, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

Histogram = Mapping[int, int]


def round_response_time(ms: float) -> int:
    """Round a latency as Locust rounds it, so histograms from several workers add key by key."""
    if ms < 100:
        return int(round(ms))
    if ms < 1000:
        return int(round(ms, -1))
    if ms < 10000:
        return int(round(ms, -2))
    return int(round(ms, -3))


def merge_histograms(*hists: Histogram) -> dict[int, int]:
    out: dict[int, int] = {}
    for h in hists:
        for k, v in h.items():
            out[int(k)] = out.get(int(k), 0) + int(v)
    return out


def histogram_percentiles(hist: Histogram, quantiles: list[float]) -> list[float]:
    """Percentiles of a bucket histogram: the smallest bucket whose cumulative count reaches ceil(q*n)."""
    if not hist:
        return [math.nan] * len(quantiles)
    keys = np.array(sorted(int(k) for k in hist), dtype=np.int64)
    counts = np.array([hist[k] if k in hist else hist[str(k)] for k in keys], dtype=np.int64)
    cum = np.cumsum(counts)
    need = np.maximum(np.ceil(np.asarray(quantiles) * cum[-1]), 1)
    idx = np.searchsorted(cum, need, side="left")
    return [float(keys[min(i, len(keys) - 1)]) for i in idx]


def histogram_mean(hist: Histogram) -> float:
    if not hist:
        return math.nan
    keys = np.fromiter((int(k) for k in hist), dtype=np.float64)
    counts = np.fromiter((int(v) for v in hist.values()), dtype=np.float64)
    return float((keys * counts).sum() / counts.sum())


@dataclass(slots=True)
class LatencyStats:
    """Requests, failures, latency sum and max, and a bucket histogram; merges exactly."""

    requests: int = 0
    failures: int = 0
    sum_ms: float = 0.0
    max_ms: float = 0.0
    buckets: dict[int, int] = field(default_factory=dict)

    def add(self, response_time_ms: float, failed: bool) -> None:
        self.requests += 1
        self.failures += failed
        self.sum_ms += response_time_ms
        if response_time_ms > self.max_ms:
            self.max_ms = response_time_ms
        k = round_response_time(response_time_ms)
        self.buckets[k] = self.buckets.get(k, 0) + 1

    def merge(self, other: "LatencyStats") -> "LatencyStats":
        self.requests += other.requests
        self.failures += other.failures
        self.sum_ms += other.sum_ms
        self.max_ms = max(self.max_ms, other.max_ms)
        for k, v in other.buckets.items():
            k = int(k)
            self.buckets[k] = self.buckets.get(k, 0) + v
        return self

    def to_wire(self) -> list:
        return [self.requests, self.failures, self.sum_ms, self.max_ms, self.buckets]

    @classmethod
    def from_wire(cls, row: list) -> "LatencyStats":
        requests, failures, sum_ms, max_ms, buckets = row
        return cls(requests, failures, sum_ms, max_ms, {int(k): v for k, v in buckets.items()})

    def percentiles(self, quantiles: list[float]) -> list[float]:
        return histogram_percentiles(self.buckets, quantiles)

    def summary(self) -> dict[str, float]:
        p50, p90, p95, p99 = self.percentiles([0.5, 0.9, 0.95, 0.99])
        return {"requests": self.requests, "failures": self.failures,
                "mean_ms": self.sum_ms / self.requests if self.requests else math.nan,
                "p50_ms": p50, "p90_ms": p90, "p95_ms": p95, "p99_ms": p99,
                "max_ms": self.max_ms if self.requests else math.nan}


# A table of cells: (phase or second, link) -> LatencyStats. Wire rows: [key1, key2, *to_wire()].
def table_rows(table: dict) -> list:
    return [[k1, k2, *cell.to_wire()] for (k1, k2), cell in table.items()]


def merge_table(into: dict, rows: list) -> None:
    """Add wire rows into a {(k1, k2): LatencyStats} table."""
    for k1, k2, *row in rows:
        cell = into.get((k1, k2))
        if cell is None:
            cell = into[(k1, k2)] = LatencyStats()
        cell.merge(LatencyStats.from_wire(row))
