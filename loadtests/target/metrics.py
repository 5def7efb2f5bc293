"""Per-link request counters and a latency histogram, rendered in the Prometheus text format.

Kept dependency-free and cheap: one dict increment and one bisect per request.
"""

from __future__ import annotations

import bisect
from collections import defaultdict

BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.buckets: dict[str, list[int]] = defaultdict(lambda: [0] * (len(BUCKETS_S) + 1))
        self.latency_sum_s: dict[str, float] = defaultdict(float)

    def observe(self, link: str, status: int, seconds: float) -> None:
        self.requests[(link, status)] += 1
        self.buckets[link][bisect.bisect_left(BUCKETS_S, seconds)] += 1
        self.latency_sum_s[link] += seconds

    def render(self, extra: dict[str, float] | None = None, more_lines: list[str] | None = None) -> str:
        lines = ["# HELP gala_target_requests_total Requests answered, by link and HTTP status.",
                 "# TYPE gala_target_requests_total counter"]
        for (link, status), n in sorted(self.requests.items()):
            lines.append(f'gala_target_requests_total{{link="{link}",status="{status}"}} {n}')
        lines += ["# HELP gala_target_request_duration_seconds Time in the target per request, by link.",
                  "# TYPE gala_target_request_duration_seconds histogram"]
        for link in sorted(self.buckets):
            counts, acc = self.buckets[link], 0
            for le, n in zip((*map(str, BUCKETS_S), "+Inf"), counts):
                acc += n
                lines.append(f'gala_target_request_duration_seconds_bucket{{link="{link}",le="{le}"}} {acc}')
            lines.append(f'gala_target_request_duration_seconds_sum{{link="{link}"}} {self.latency_sum_s[link]:.6f}')
            lines.append(f'gala_target_request_duration_seconds_count{{link="{link}"}} {acc}')
        for name, value in (extra or {}).items():
            lines += [f"# TYPE {name} gauge", f"{name} {value:g}"]
        lines += more_lines or []
        return "\n".join(lines) + "\n"
