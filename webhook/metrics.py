"""Request counters and a latency histogram, in the Prometheus text format."""

from __future__ import annotations

import bisect
from collections import Counter

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class Metrics:
    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.bucket_counts = [0] * (len(BUCKETS) + 1)
        self.latency_sum = 0.0

    def observe(self, outcome: str, seconds: float) -> None:
        self.requests[outcome] += 1
        self.bucket_counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.latency_sum += seconds

    def render(self) -> str:
        lines = [
            "# HELP agentroll_webhook_requests_total Admission requests by outcome.",
            "# TYPE agentroll_webhook_requests_total counter",
        ]
        for outcome in sorted(self.requests):
            count = self.requests[outcome]
            lines.append(f'agentroll_webhook_requests_total{{outcome="{outcome}"}} {count}')
        name = "agentroll_webhook_request_duration_seconds"
        lines += [
            f"# HELP {name} Time to answer an admission request.",
            f"# TYPE {name} histogram",
        ]
        cumulative = 0
        for bound, count in zip((*BUCKETS, float("inf")), self.bucket_counts, strict=True):
            cumulative += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            lines.append(f'{name}_bucket{{le="{le}"}} {cumulative}')
        lines.append(f"{name}_sum {self.latency_sum}")
        lines.append(f"{name}_count {cumulative}")
        return "\n".join(lines) + "\n"
