"""From Prometheus to the judge's evidence: cumulative counts since the canary began, per look.

Pure query building and parsing here; `webhook/judgeserver.py` does the HTTP. Every look is one
instant query at a planned look time t, over the window since the canary began,
`sum by (hash, …) (increase(metric[t - start]))` for each series of the contract, so the counts
are the same whichever replica answers and whenever it is asked (a missed or repeated call to the
judge changes nothing). increase() per series before the sum keeps pods that came and went.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from kubectl_agentroll.judge import Counts, Look
from kubectl_agentroll.plan import Plan

_LABEL_VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
HASH = "rollouts_pod_template_hash"


@dataclass(frozen=True)
class Target:
    """Which canary, against which stable version."""

    namespace: str
    rollout: str
    canary_hash: str
    stable_hash: str

    def __post_init__(self) -> None:
        for name in ("namespace", "rollout", "canary_hash", "stable_hash"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _LABEL_VALUE.match(value):
                raise ValueError(f"{name.replace('_', '-')}: {value!r} is not a Kubernetes name or hash")
        if self.canary_hash == self.stable_hash:
            raise ValueError("canary-hash: equals stable-hash; there is no canary to judge")

    def selector(self, which: str = "both") -> str:
        hashes = {"canary": self.canary_hash, "stable": self.stable_hash,
                  "both": f"{self.canary_hash}|{self.stable_hash}"}[which]
        op = "=~" if which == "both" else "="
        return f'namespace="{self.namespace}",{HASH}{op}"{hashes}"'


def canary_start_query(target: Target, lookback_s: int, resolution_s: int) -> str:
    """When the canary's first task series appeared (unix seconds), at the given resolution."""
    return (f'min(min_over_time(timestamp(agentroll_tasks_total{{{target.selector("canary")}}})'
            f"[{lookback_s}s:{resolution_s}s]))")


_PARTS = (
    ("tasks", "agentroll_tasks_total", "outcome"),
    ("evaluations", "agentroll_evaluations_total", "verdict"),
    ("tool_error_tasks", "agentroll_tasks_with_tool_errors_total", None),
    ("cost_bucket", "agentroll_task_cost_usd_bucket", "le"),
    ("cost_sum", "agentroll_task_cost_usd_sum", None),
)


def look_query(target: Target, window_s: float) -> str:
    """Every count a look needs, canary and stable, in one query (a `series` label tells them apart)."""
    ms = max(round(window_s * 1000), 1000)
    window = f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"  # PromQL durations are integers
    parts = []
    for name, metric, by in _PARTS:
        group = f"{HASH}, {by}" if by else HASH
        parts.append(f'label_replace(sum by ({group}) (increase({metric}{{{target.selector()}}}[{window}])), '
                     f'"series", "{name}", "", "")')
    return "\n or ".join(parts)


def counts_from(result: list[dict], target: Target) -> tuple[Counts, Counts]:
    """Parse look_query's vector into (canary, stable) Counts; absent series count as zero."""
    acc = {h: {"tasks": 0.0, "failed": 0.0, "evaluations": 0.0, "hallucinated": 0.0,
               "tool_error_tasks": 0.0, "cost_sum": 0.0, "buckets": {}}
           for h in (target.canary_hash, target.stable_hash)}
    for sample in result:
        labels = sample.get("metric") or {}
        side = acc.get(labels.get(HASH))
        if side is None:
            continue
        value = float(sample["value"][1])
        if not math.isfinite(value) or value < 0:
            continue
        series = labels.get("series")
        if series == "tasks":
            side["tasks"] += value
            if labels.get("outcome") != "success":
                side["failed"] += value
        elif series == "evaluations":
            side["evaluations"] += value
            if labels.get("verdict") == "hallucinated":
                side["hallucinated"] += value
        elif series == "cost_bucket":
            le = float(labels.get("le", "nan"))
            if not math.isnan(le):
                side["buckets"][le] = side["buckets"].get(le, 0.0) + value
        elif series in ("tool_error_tasks", "cost_sum"):
            side[series] += value
    out = []
    for h in (target.canary_hash, target.stable_hash):
        a = acc[h]
        buckets = _monotone(sorted(a["buckets"].items()))
        out.append(Counts(tasks=a["tasks"], tasks_failed=min(a["failed"], a["tasks"]),
                          evaluations=a["evaluations"], hallucinated=min(a["hallucinated"], a["evaluations"]),
                          tasks_with_tool_errors=min(a["tool_error_tasks"], a["tasks"]),
                          cost_buckets=buckets, cost_sum=a["cost_sum"]))
    return out[0], out[1]


def _monotone(buckets: list[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    """Cumulative bucket counts never decrease; extrapolated increase() can make them wobble."""
    if not buckets or buckets[-1][0] != math.inf:
        return ()
    out, top = [], 0.0
    for le, count in buckets:
        top = max(top, count)
        out.append((le, top))
    return tuple(out)


def look_times(plan: Plan, elapsed_s: float) -> list[float]:
    """The planned looks that have happened by elapsed_s seconds after the canary began; past the
    plan's end (a human left it paused), one more every interval."""
    times = [t for t in plan.grid if t <= elapsed_s + 1e-6]
    t = plan.grid[-1] + plan.interval_s
    while t <= elapsed_s + 1e-6 and len(times) < 2000:
        times.append(t)
        t += plan.interval_s
    return times


def weight_at(plan: Plan, at_s: float) -> float:
    return plan.steps[plan.step_of(at_s)].weight


def look(plan: Plan, at_s: float, result: list[dict], target: Target) -> Look:
    canary, stable = counts_from(result, target)
    return Look(at_s=at_s, canary=canary, stable=stable, canary_weight=weight_at(plan, at_s))
